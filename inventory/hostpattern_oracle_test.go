package inventory

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestHostPatternsAgainstAnsible gives each --limit value of
// testdata/patterns/patterns.txt to kplay and to `ansible all -l VALUE
// --list-hosts` on the same inventory: the same hosts must come out; where
// kplay refuses a pattern that matches nothing, Ansible must have warned
// that it ignored that very pattern.
func TestHostPatternsAgainstAnsible(t *testing.T) {
	bin := ansibleBin(t)
	dir, err := filepath.Abs("testdata/patterns")
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "hosts.ini")
	inv, err := Load(src)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "patterns.txt"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, limit := range strings.Split(string(data), "\n") {
		if limit = strings.TrimSpace(limit); limit == "" || strings.HasPrefix(limit, "#") {
			continue
		}
		n++
		limit = strings.ReplaceAll(limit, "@testdata/patterns/", "@"+dir+"/")
		t.Run(limit, func(t *testing.T) {
			want, warned, refused := ansibleListHosts(t, bin, src, limit)
			got, err := selectLimit(inv, limit)
			var pe *PatternError
			switch {
			case refused != "":
				if err == nil {
					t.Errorf("kplay %q; Ansible refused it: %s", got, refused)
				}
			case errors.As(err, &pe) && pe.NoMatch:
				if !strings.Contains(warned, "Could not match supplied host pattern, ignoring: "+strings.TrimLeft(pe.Pattern.Text, "&!")) {
					t.Errorf("kplay: %v; Ansible did not warn about that pattern (hosts %q, stderr %q)", err, want, warned)
				}
			case err != nil:
				t.Errorf("kplay: %v; Ansible: hosts %q", err, want)
			case fmt.Sprint(got) != fmt.Sprint(want):
				t.Errorf("kplay %q, Ansible %q", got, want)
			}
		})
	}
	if n < 30 {
		t.Fatalf("corpus has %d patterns, want at least 30", n)
	}
}

// selectLimit is what --limit does: the hosts of all, in the all group's
// order, that the limit's patterns select.
func selectLimit(inv *Inventory, limit string) ([]string, error) {
	pats, err := LimitPatterns(limit)
	if err != nil {
		return nil, err
	}
	sel, err := inv.Select(pats)
	if err != nil {
		return nil, err
	}
	in := map[*Host]bool{}
	for _, h := range sel {
		in[h] = true
	}
	var out []string
	for _, h := range inv.HostsOf(inv.Group("all")) {
		if in[h] {
			out = append(out, h.Name)
		}
	}
	return out, nil
}

func ansibleBin(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("ansible")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("ansible not found (CI=true): apt-get install ansible-core (make deps)")
		}
		fmt.Fprintf(os.Stderr, "SKIP: %s: ansible not found; install ansible-core to compare kplay's host patterns with Ansible's\n", t.Name())
		t.Skip("SKIP: ansible not found")
	}
	return bin
}

// ansibleListHosts runs ansible all -l limit --list-hosts and returns the
// hosts it lists, its stderr, and its error when it refused the limit.
func ansibleListHosts(t *testing.T, bin, src, limit string) (hosts []string, stderrText, refused string) {
	t.Helper()
	cmd := exec.Command(bin, "all", "-i", src, "-l", limit, "--list-hosts")
	cmd.Dir = t.TempDir()
	cfg := filepath.Join(cmd.Dir, "ansible.cfg")
	if err := os.WriteFile(cfg, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), "ANSIBLE_CONFIG="+cfg, "HOME="+cmd.Dir, "ANSIBLE_NOCOLOR=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	stderrText = strings.Join(strings.Fields(stderr.String()), " ")
	if err != nil && !strings.Contains(stderrText, "leaves us with no hosts") {
		if _, found := strings.CutPrefix(stderrText, "ERROR! "); !found {
			t.Fatalf("ansible -l %s: %v\n%s", limit, err, stderr.String())
		}
		return nil, stderrText, stderrText
	}
	for _, line := range strings.Split(string(out), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "hosts (") {
			hosts = append(hosts, line)
		}
	}
	return hosts, stderrText, ""
}
