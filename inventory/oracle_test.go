package inventory

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files from ansible-inventory's output")

// oracleCases lists the corpus: each directory of testdata/oracle holds
// inventories and a SOURCES file, one -i source per line (relative to
// testdata/oracle, or a host list).
func oracleCases(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir("testdata/oracle")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	if len(out) < 8 {
		t.Fatalf("corpus has %d cases, want at least 8", len(out))
	}
	return out
}

func caseSources(t *testing.T, name string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata/oracle", name, "SOURCES"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		p := filepath.Join("testdata/oracle", line)
		if _, err := os.Stat(p); err == nil {
			abs, err := filepath.Abs(p)
			if err != nil {
				t.Fatal(err)
			}
			line = abs
		}
		out = append(out, line)
	}
	return out
}

// ansibleInventory runs ansible-inventory with args on sources, or skips
// (fails under CI=true) when it is not installed.
func ansibleInventory(t *testing.T, sources []string, args ...string) []byte {
	t.Helper()
	bin, err := exec.LookPath("ansible-inventory")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("ansible-inventory not found (CI=true): apt-get install ansible-core (make deps)")
		}
		fmt.Fprintf(os.Stderr, "SKIP: %s: ansible-inventory not found; install ansible-core to compare kplay with Ansible\n", t.Name())
		t.Skip("SKIP: ansible-inventory not found")
	}
	for _, s := range sources {
		args = append(args, "-i", s)
	}
	cmd := exec.Command(bin, args...)
	// Ansible's defaults: an empty ansible.cfg, and no group_vars or
	// host_vars in the working directory.
	cmd.Dir = t.TempDir()
	cfg := filepath.Join(cmd.Dir, "ansible.cfg")
	if err := os.WriteFile(cfg, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), "ANSIBLE_INVENTORY_UNPARSED_FAILED=true", "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED=true",
		"ANSIBLE_CONFIG="+cfg, "HOME="+cmd.Dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || strings.Contains(stderr.String(), "Unable to parse") {
		t.Fatalf("ansible-inventory %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

// listDoc is ansible-inventory --list, decoded.
type listDoc map[string]any

func decodeList(t *testing.T, data []byte) listDoc {
	t.Helper()
	var d listDoc
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("bad --list JSON: %v\n%s", err, data)
	}
	return d
}

// compareLists compares groups, each group's hosts and children, and every
// host's variables, and reports each difference.
func compareLists(t *testing.T, want, got listDoc) {
	t.Helper()
	if w, g := sortedKeys(want), sortedKeys(got); !reflect.DeepEqual(w, g) {
		t.Errorf("groups: Ansible %v, kplay %v", w, g)
	}
	for name, wv := range want {
		if name == "_meta" {
			continue
		}
		gv, _ := got[name].(map[string]any)
		w := wv.(map[string]any)
		for _, field := range []string{"hosts", "children"} {
			if !reflect.DeepEqual(w[field], gv[field]) {
				t.Errorf("group %s %s: Ansible %v, kplay %v", name, field, w[field], gv[field])
			}
		}
	}
	wh := want["_meta"].(map[string]any)["hostvars"].(map[string]any)
	gh, _ := got["_meta"].(map[string]any)["hostvars"].(map[string]any)
	if w, g := sortedKeys(wh), sortedKeys(gh); !reflect.DeepEqual(w, g) {
		t.Errorf("hosts with variables: Ansible %v, kplay %v", w, g)
	}
	for host, wv := range wh {
		w, g := wv.(map[string]any), map[string]any{}
		if x, ok := gh[host].(map[string]any); ok {
			g = x
		}
		for _, k := range sortedKeys(w) {
			if !reflect.DeepEqual(w[k], g[k]) {
				t.Errorf("host %s var %s: Ansible %#v, kplay %#v", host, k, w[k], g[k])
			}
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				t.Errorf("host %s var %s: only kplay has it (%#v)", host, k, g[k])
			}
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestOracle compares kplay with ansible-inventory --list on every
// inventory of the corpus.
func TestOracle(t *testing.T) {
	for _, name := range oracleCases(t) {
		t.Run(name, func(t *testing.T) {
			sources := caseSources(t, name)
			want := decodeList(t, ansibleInventory(t, sources, "--list"))
			inv, err := Load(sources...)
			if err != nil {
				t.Fatal(err)
			}
			compareLists(t, want, decodeList(t, []byte(inv.ListJSON())))
			graph, err := inv.Graph("all")
			if err != nil {
				t.Fatal(err)
			}
			if wantGraph := string(ansibleInventory(t, sources, "--graph")); graph != wantGraph {
				t.Errorf("--graph:\nAnsible:\n%s\nkplay:\n%s", wantGraph, graph)
			}
		})
	}
}

// TestGolden checks --list and --graph output byte for byte against golden
// files, which are ansible-inventory's own output (go test -update
// rewrites them from ansible-inventory).
func TestGolden(t *testing.T) {
	for _, name := range oracleCases(t) {
		t.Run(name, func(t *testing.T) {
			sources := caseSources(t, name)
			inv, err := Load(sources...)
			if err != nil {
				t.Fatal(err)
			}
			graph, err := inv.Graph("all")
			if err != nil {
				t.Fatal(err)
			}
			for ext, got := range map[string]string{".list.json": inv.ListJSON(), ".graph": graph} {
				path := filepath.Join("testdata/golden", name+ext)
				if *update {
					arg := map[string]string{".list.json": "--list", ".graph": "--graph"}[ext]
					// Ansible's absolute paths never appear in these outputs.
					if err := os.WriteFile(path, ansibleInventory(t, sources, arg), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (go test ./inventory -run TestGolden -update writes it)", err)
				}
				if got != string(want) {
					t.Errorf("%s differs from %s:\n%s", ext, path, lineDiff(string(want), got))
				}
			}
		})
	}
}

// lineDiff shows the first differing lines of two texts.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n  want %q\n  got  %q", i+1, wl, gl)
		}
	}
	return "(equal)"
}
