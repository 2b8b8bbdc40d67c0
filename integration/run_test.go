package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kplay/kplay/internal/schematest"
	"github.com/kplay/kplay/testbed"
)

// markerPlaybook writes a per-host marker with an undo, then runs more steps.
const markerPlaybook = `
name: markers
hosts: control_plane
serial: %s
max_fail: %d
rollback: %s
vars:
  marker: /tmp/kplay-marker
steps:
  - name: write marker
    shell:
      cmd: printf '%%s\n' {{ host.name }} {{ host.address }} > {{ marker }}
      undo: rm -f {{ marker }}
  - name: write second
    shell:
      cmd: echo second > /root/kplay-second
      undo: rm -f /root/kplay-second
  - name: maybe fail
    shell: test {{ host.name }} != {{ fail_on }} || { echo "failing on purpose on $(hostname)" >&2; exit 7; }
`

func TestRunThreeHosts(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 3})
	inv := inventory(t, b, "", "")
	pb := writeFile(t, "pb.yaml", fmt.Sprintf(markerPlaybook, "3", 0, "host"))
	r := run(t, nil, "run", pb, "-i", inv, "--var", "fail_on=none")
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	for _, h := range b.Hosts {
		got, err := os.ReadFile(h.Path("/tmp/kplay-marker"))
		if err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
		if want := h.Name + "\n" + h.Address + "\n"; string(got) != want {
			t.Errorf("%s marker = %q, want %q", h.Name, got, want)
		}
		if !strings.Contains(r.stdout, h.Name+" ") {
			t.Errorf("no line for %s in output", h.Name)
		}
	}
	if !strings.Contains(r.stdout, "RECAP") {
		t.Error("no recap")
	}
	// Exactly one SSH connection (and authentication) per host per run.
	for _, h := range b.Hosts {
		log, err := os.ReadFile(h.Path("/var/log/sshd.log"))
		if err != nil {
			t.Fatalf("%s sshd log: %v", h.Name, err)
		}
		if n := strings.Count(string(log), "Accepted publickey"); n != 1 {
			t.Errorf("%s: %d authentications, want 1 for the whole run", h.Name, n)
		}
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 2})
	inv := inventory(t, b, "", "")
	pb := writeFile(t, "pb.yaml", fmt.Sprintf(markerPlaybook, "1", 0, "host"))
	before := map[string]map[string]string{}
	for _, h := range b.Hosts {
		before[h.Name] = snapshot(t, h)
	}
	r := run(t, nil, "run", pb, "-i", inv, "--dry-run", "--var", "fail_on=cp1")
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	for _, h := range b.Hosts {
		if d := diffSnapshots(before[h.Name], snapshot(t, h)); len(d) > 0 {
			t.Errorf("%s changed by a dry run: %v", h.Name, d)
		}
		// The plan shows the exact command after substitution.
		want := fmt.Sprintf("would run: printf '%%s\\n' %s %s > /tmp/kplay-marker", h.Name, h.Address)
		if !strings.Contains(r.stdout, want) {
			t.Errorf("plan for %s does not show %q", h.Name, want)
		}
	}
}

func TestFailureRollsBackHost(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 3})
	inv := inventory(t, b, "", "")
	pb := writeFile(t, "pb.yaml", fmt.Sprintf(markerPlaybook, "3", 0, "host"))
	r := run(t, nil, "run", pb, "-i", inv, "--var", "fail_on=cp2", "--output", "json")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1", r.code)
	}
	rep := decodeReport(t, r.stdout)
	for _, h := range b.Hosts {
		_, err := os.Stat(h.Path("/tmp/kplay-marker"))
		exists := err == nil
		if h.Name == "cp2" && exists {
			t.Error("cp2 failed but its marker was not rolled back")
		}
		if h.Name != "cp2" && !exists {
			t.Errorf("%s succeeded but lost its marker", h.Name)
		}
	}
	cp2 := rep.host(t, "cp2")
	if cp2.Status != "failed" || !strings.Contains(cp2.Error, "exit status 7") || !strings.Contains(cp2.Error, "failing on purpose on cp2") {
		t.Errorf("cp2 = %+v; want failed with exit status and stderr tail", cp2)
	}
	if cp2.Steps[0].Status != "rolled back" || cp2.Steps[1].Status != "rolled back" {
		t.Errorf("cp2 steps not rolled back: %s, %s", cp2.Steps[0].Status, cp2.Steps[1].Status)
	}
}

func TestFailureRollsBackAllAndSerialStops(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 3})
	inv := inventory(t, b, "", "")
	// serial 1, rollback all: cp2 fails, so cp1 (already done) is undone and
	// cp3 never starts.
	pb := writeFile(t, "pb.yaml", fmt.Sprintf(markerPlaybook, "1", 0, "all"))
	before := snapshot(t, b.Hosts[2])
	r := run(t, nil, "run", pb, "-i", inv, "--var", "fail_on=cp2", "--output", "json")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1", r.code)
	}
	for _, h := range b.Hosts[:2] {
		for _, f := range []string{"/tmp/kplay-marker", "/root/kplay-second"} {
			if _, err := os.Stat(h.Path(f)); err == nil {
				t.Errorf("%s: %s still exists after rollback: all", h.Name, f)
			}
		}
	}
	if d := diffSnapshots(before, snapshot(t, b.Hosts[2])); len(d) > 0 {
		t.Errorf("cp3 was touched after the serial stop: %v", d)
	}
	rep := decodeReport(t, r.stdout)
	if s := rep.host(t, "cp3").Status; s != "not run" {
		t.Errorf("cp3 status %q, want not run", s)
	}
	if s := rep.host(t, "cp1").Status; s != "rolled back" {
		t.Errorf("cp1 status %q, want rolled back", s)
	}
	if !strings.Contains(rep.Stopped, "max_fail") {
		t.Errorf("stopped = %q", rep.Stopped)
	}
}

func TestUnreachableHost(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 2})
	inv := inventory(t, b, "", fmt.Sprintf("  ghost: {address: %s, connect_timeout: 2s}\n", b.UnusedAddress()))
	pb := writeFile(t, "pb.yaml", "hosts: all\nsteps:\n  - shell: hostname\n")
	start := time.Now()
	r := run(t, nil, "run", pb, "-i", inv, "--output", "json")
	took := time.Since(start)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1", r.code)
	}
	rep := decodeReport(t, r.stdout)
	g := rep.host(t, "ghost")
	if g.Status != "unreachable" || !strings.Contains(g.Error, "connect") {
		t.Errorf("ghost = %+v", g)
	}
	for _, h := range b.Hosts {
		if s := rep.host(t, h.Name).Status; s != "changed" {
			t.Errorf("%s = %s, want changed (a shell step counts as a change)", h.Name, s)
		}
	}
	if took > 2*time.Second+3*time.Second {
		t.Errorf("run took %s with connect_timeout 2s", took)
	}
}

func TestHostKeys(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 2})
	pb := writeFile(t, "pb.yaml", "hosts: all\nsteps:\n  - shell: touch /tmp/ran\n")
	known, err := os.ReadFile(b.KnownHostsPath)
	if err != nil {
		t.Fatal(err)
	}
	cp1, cp2 := b.Hosts[0], b.Hosts[1]

	t.Run("unknown", func(t *testing.T) {
		// known_hosts lists cp2 only.
		var keep []string
		for _, l := range strings.Split(string(known), "\n") {
			if l != "" && !strings.HasPrefix(l, cp1.Address+" ") {
				keep = append(keep, l)
			}
		}
		kh := writeFile(t, "known_hosts", strings.Join(keep, "\n")+"\n")
		r := run(t, nil, "run", pb, "-i", inventory(t, b, kh, ""), "--limit", "cp1")
		if r.code != 1 || !strings.Contains(r.stdout, "unknown host key") || !strings.Contains(r.stdout, "ssh-keyscan") {
			t.Errorf("exit %d; want 1 with an unknown-host-key error naming ssh-keyscan", r.code)
		}
		if _, err := os.Stat(cp1.Path("/tmp/ran")); err == nil {
			t.Error("a command ran on a host with an unknown key")
		}
	})
	t.Run("changed", func(t *testing.T) {
		// known_hosts claims cp1 has cp2's key.
		var lines []string
		for _, l := range strings.Split(string(known), "\n") {
			if strings.HasPrefix(l, cp2.Address+" ") {
				lines = append(lines, cp1.Address+" "+strings.SplitN(l, " ", 2)[1])
			}
		}
		kh := writeFile(t, "known_hosts", strings.Join(lines, "\n")+"\n")
		r := run(t, nil, "run", pb, "-i", inventory(t, b, kh, ""), "--limit", "cp1", "--accept-new-host-keys")
		if r.code != 1 || !strings.Contains(r.stdout, "HOST KEY CHANGED") || !strings.Contains(r.stdout, "man-in-the-middle") {
			t.Errorf("exit %d; want 1 with a changed-key warning, even with --accept-new-host-keys", r.code)
		}
		if _, err := os.Stat(cp1.Path("/tmp/ran")); err == nil {
			t.Error("a command ran on a host with a changed key")
		}
	})
	t.Run("accept new in a dry run records nothing", func(t *testing.T) {
		// An empty known_hosts, and none at all: the dry run trusts the
		// new keys for itself and writes neither.
		kh := writeFile(t, "known_hosts", "")
		missing := filepath.Join(t.TempDir(), "ssh", "known_hosts")
		for _, f := range []string{kh, missing} {
			r := run(t, nil, "run", pb, "-i", inventory(t, b, f, ""), "--accept-new-host-keys", "--dry-run")
			if r.code != 0 {
				t.Fatalf("dry run with %s: exit %d\n%s", f, r.code, r.stderr)
			}
		}
		if got, _ := os.ReadFile(kh); len(got) != 0 {
			t.Errorf("a dry run wrote known_hosts: %q", got)
		}
		if _, err := os.Stat(filepath.Dir(missing)); !os.IsNotExist(err) {
			t.Errorf("a dry run created %s: %v", filepath.Dir(missing), err)
		}
	})
	t.Run("accept new", func(t *testing.T) {
		kh := writeFile(t, "known_hosts", "")
		r := run(t, nil, "run", pb, "-i", inventory(t, b, kh, ""), "--accept-new-host-keys")
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		got, _ := os.ReadFile(kh)
		for _, h := range b.Hosts {
			if !strings.Contains(string(got), h.Address+" ") {
				t.Errorf("%s's key was not recorded: %q", h.Name, got)
			}
		}
		// And now it is trusted without the flag.
		if r := run(t, nil, "run", pb, "-i", inventory(t, b, kh, "")); r.code != 0 {
			t.Errorf("second run with recorded keys: exit %d", r.code)
		}
	})
	t.Run("hashed", func(t *testing.T) {
		kh := writeFile(t, "known_hosts", string(known))
		if out, err := exec.Command("ssh-keygen", "-H", "-f", kh).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen -H: %v %s", err, out)
		}
		hashed, _ := os.ReadFile(kh)
		if strings.Contains(string(hashed), cp1.Address) {
			t.Fatal("known_hosts was not hashed")
		}
		if r := run(t, nil, "run", pb, "-i", inventory(t, b, kh, "")); r.code != 0 {
			t.Errorf("hashed known_hosts: exit %d", r.code)
		}
	})
}

func TestInterruptRollsBack(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 2})
	inv := inventory(t, b, "", "")
	pb := writeFile(t, "pb.yaml", `
hosts: all
steps:
  - name: change
    shell: {cmd: touch /tmp/changed, undo: rm -f /tmp/changed}
  - name: hang
    shell: sh -c 'sleep 300; echo never' ; sleep 301
  - name: after
    shell: touch /tmp/after
`)
	cmd := exec.Command(kplay.path, "run", pb, "-i", inv)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the hang step is running on every host, then interrupt.
	deadline := time.Now().Add(30 * time.Second)
	for {
		n := 0
		for _, h := range b.Hosts {
			if len(hostProcs(t, h, "sleep 300")) > 0 {
				n++
			}
		}
		if n == len(b.Hosts) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hang step never started\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	t.Logf("output:\n%s", out.String())
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("exit %d (%v), want 130", code, err)
	}
	time.Sleep(500 * time.Millisecond)
	for _, h := range b.Hosts {
		if _, err := os.Stat(h.Path("/tmp/changed")); err == nil {
			t.Errorf("%s: change not rolled back", h.Name)
		}
		if _, err := os.Stat(h.Path("/tmp/after")); err == nil {
			t.Errorf("%s: a step started after the interrupt", h.Name)
		}
		if p := hostProcs(t, h, "sleep 30"); len(p) > 0 {
			t.Errorf("%s: processes of the run left behind: %v", h.Name, p)
		}
	}
}

// validateRunReport holds a run report to its published schema.
func validateRunReport(t *testing.T, doc string) error {
	return schematest.Validate(schematest.Compile(t, "../docs/schema/run.v1.json"), []byte(doc))
}

// report mirrors the documented JSON shape (README: "JSON output").
type report struct {
	SchemaVersion int            `json:"schema_version"`
	Playbook      string         `json:"playbook"`
	File          string         `json:"file"`
	RunID         string         `json:"run_id"`
	DryRun        bool           `json:"dry_run"`
	Started       string         `json:"started"`
	DurationSec   float64        `json:"duration_seconds"`
	Interrupted   bool           `json:"interrupted"`
	Stopped       string         `json:"stopped"`
	Resume        string         `json:"resume"`
	Plays         []playJSON     `json:"plays"`
	Hosts         []hostJSON     `json:"hosts"`
	Totals        map[string]int `json:"totals"`
}

type playJSON struct {
	Name   string   `json:"name"`
	Hosts  []string `json:"hosts"`
	Serial string   `json:"serial"`
	Ran    bool     `json:"ran"`
}

type hostJSON struct {
	Name    string         `json:"name"`
	Address string         `json:"address"`
	Batch   int            `json:"batch"`
	Status  string         `json:"status"`
	Error   string         `json:"error"`
	State   string         `json:"state"`
	Restore []string       `json:"restore"`
	Steps   []stepJSON     `json:"steps"`
	Totals  map[string]int `json:"totals"`
}

type stepJSON struct {
	Play        int             `json:"play"`
	Index       int             `json:"index"`
	Name        string          `json:"name"`
	Type        string          `json:"type"`
	Status      string          `json:"status"`
	Changed     bool            `json:"changed"`
	Started     string          `json:"started"`
	DurationSec float64         `json:"duration_seconds"`
	Attempts    int             `json:"attempts"`
	Message     string          `json:"message"`
	Details     []string        `json:"details"`
	Error       string          `json:"error"`
	Rollback    string          `json:"rollback"`
	Plan        json.RawMessage `json:"plan"`
	Data        json.RawMessage `json:"data"`
}

func (r *report) host(t *testing.T, name string) *hostJSON {
	t.Helper()
	for i := range r.Hosts {
		if r.Hosts[i].Name == name {
			return &r.Hosts[i]
		}
	}
	t.Fatalf("host %s not in report", name)
	return nil
}

// decodeReport parses stdout as exactly one JSON document of the documented
// shape, rejecting unknown fields.
func decodeReport(t *testing.T, stdout string) *report {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	var r report
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("stdout is not a JSON report: %v\n%s", err, stdout)
	}
	if dec.More() {
		t.Fatal("stdout holds more than one JSON document")
	}
	if r.RunID == "" || r.Started == "" || len(r.Hosts) == 0 {
		t.Errorf("report lacks run_id, started or hosts: %+v", r)
	}
	if err := validateRunReport(t, stdout); err != nil {
		t.Errorf("the report does not match ../docs/schema/run.v1.json: %v", err)
	}
	for _, k := range []string{"ok", "changed", "failed", "skipped", "rolled_back", "unreachable", "not_run"} {
		if _, ok := r.Totals[k]; !ok {
			t.Errorf("totals lack %q", k)
		}
	}
	return &r
}

func TestJSONOutputShape(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 2})
	inv := inventory(t, b, "", "")
	pb := writeFile(t, "pb.yaml", fmt.Sprintf(markerPlaybook, "2", 0, "host"))
	r := run(t, nil, "run", pb, "-i", inv, "--var", "fail_on=none", "--output", "json")
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	// Strict: every field in the output must be documented in the shape.
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	var strict report
	if err := dec.Decode(&strict); err != nil {
		t.Fatalf("undocumented field in JSON output: %v", err)
	}
	rep := decodeReport(t, r.stdout)
	if rep.Playbook != "markers" || len(rep.Hosts) != 2 || rep.Totals["changed"] != 6 || rep.Totals["ok"] != 0 {
		t.Errorf("report = %+v", rep)
	}
	runStart, err := time.Parse(time.RFC3339Nano, rep.Started)
	if err != nil {
		t.Fatalf("started: %v", err)
	}
	for _, h := range rep.Hosts {
		for _, s := range h.Steps {
			st, err := time.Parse(time.RFC3339Nano, s.Started)
			if err != nil || st.Before(runStart) || st.After(runStart.Add(time.Minute)) {
				t.Errorf("host %s step %s: started %q (%v), want an RFC 3339 time within a minute after the run's start %s", h.Name, s.Name, s.Started, err, rep.Started)
			}
		}
		if h.Status != "changed" || len(h.Steps) != 3 || h.Steps[0].Status != "changed" || !h.Steps[0].Changed || h.Steps[0].DurationSec <= 0 {
			t.Errorf("host %s = %+v", h.Name, h)
		}
	}
}

func TestBadInputContactsNoHost(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 1})
	inv := inventory(t, b, "", "")
	h := b.Hosts[0]
	logBefore, _ := os.ReadFile(h.Path("/var/log/sshd.log"))
	cases := []struct {
		name, pb string
		args     []string
		want     string
	}{
		{"unknown variable", "hosts: all\nsteps:\n  - shell: echo {{ nope }}\n", nil, `:3: key "steps[0].shell.cmd": unknown variable "nope"`},
		{"template in quotes", "hosts: all\nsteps:\n  - shell: |\n      set -e\n      echo '{{ host.name }}'\n", nil, `:3: key "steps[0].shell.cmd": line 2 of the command: {{ host.name }} is inside single quotes`},
		{"unknown key", "hosts: all\nsteps:\n  - shell: {cmd: x, undoo: y}\n", nil, `:3: key "steps[0].shell.undoo": unknown key`},
		{"unknown host", "hosts: cp9\nsteps:\n  - shell: x\n", nil, `:1: key "hosts": unknown host or group "cp9"`},
		{"bad flag", "hosts: all\nsteps:\n  - shell: x\n", []string{"--forks", "many"}, `invalid argument "many" for "-f, --forks" flag`},
		{"bad limit", "hosts: all\nsteps:\n  - shell: x\n", []string{"--limit", "nope"}, `unknown host or group "nope"`},
		{"limit pattern matching nothing", "hosts: all\nsteps:\n  - shell: x\n", []string{"-l", "all:&nope*"}, `unknown host or group "&nope*"`},
		{"unknown tag", "hosts: all\nsteps:\n  - shell: x\n    tags: a\n", []string{"--tags", "b"}, `--tags: no step of`},
		{"-K without a terminal", "hosts: all\nsteps:\n  - shell: x\n", []string{"-K"}, `-K (--ask-become-pass) needs a terminal`},
		{"-e list", "hosts: all\nsteps:\n  - shell: x\n", []string{"-e", `{"a": [1]}`}, `key "a": a list or a mapping`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pb := writeFile(t, "pb.yaml", c.pb)
			r := run(t, nil, append([]string{"run", pb, "-i", inv}, c.args...)...)
			if r.code != 2 || !strings.Contains(r.stderr, c.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", r.code, r.stderr, c.want)
			}
		})
	}
	pb := writeFile(t, "pb.yaml", "hosts: all\nsteps:\n  - shell: x\n    tags: a\n")
	if r := run(t, nil, "run", pb, "-i", inv, "--list-hosts", "--list-steps"); r.code != 0 || !strings.Contains(r.stdout, h.Name) || !strings.Contains(r.stdout, "[tags: a]") {
		t.Errorf("--list-hosts --list-steps: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	logAfter, _ := os.ReadFile(h.Path("/var/log/sshd.log"))
	if strings.Count(string(logAfter), "Connection from") != strings.Count(string(logBefore), "Connection from") {
		t.Error("bad input or --list-hosts made kplay connect to a host")
	}
}

func TestAuthenticationRefused(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 1})
	key := t.TempDir() + "/id_ed25519"
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	src := fmt.Sprintf("defaults:\n  key: %s\n  known_hosts: %s\n  connect_timeout: 3s\nhosts:\n  cp1: {address: %s}\n", key, b.KnownHostsPath, b.Hosts[0].Address)
	pb := writeFile(t, "pb.yaml", "hosts: all\nsteps:\n  - shell: touch /tmp/ran\n")
	start := time.Now()
	r := run(t, nil, "run", pb, "-i", writeFile(t, "inv.yaml", src), "--output", "json")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1", r.code)
	}
	h := decodeReport(t, r.stdout).host(t, "cp1")
	if h.Status != "unreachable" || !strings.Contains(h.Error, "authentication refused") || !strings.Contains(h.Error, "root@") {
		t.Errorf("cp1 = %s %q; want unreachable with a clear authentication error", h.Status, h.Error)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("authentication failure took %s", took)
	}
	if _, err := os.Stat(b.Hosts[0].Path("/tmp/ran")); err == nil {
		t.Error("a command ran without authentication")
	}
}
