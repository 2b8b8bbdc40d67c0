package integration

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kplay/kplay/testbed"
)

// TestRunLogOnRealHost: kplay run records every step's start and end, its
// outcome and the host's output in $XDG_STATE_HOME/kplay/runs/<run id>.jsonl
// (0600 in a 0700 directory); a private key the host prints is withheld
// from the log exactly as from the screen; -v shows the full output;
// kplay runs lists the run.
func TestRunLogOnRealHost(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 1})
	inv := inventory(t, b, "", "")
	state := t.TempDir()
	env := []string{"XDG_STATE_HOME=" + state}
	// The secret is made on the host, so it is in no command line.
	pb := writeFile(t, "pb.yaml", `
hosts: all
steps:
  - name: three lines
    shell: printf 'first line\nsecond line\nthird line\n'
  - name: leak a key
    shell: printf '%s\n' "-----BEGIN PRIVATE KEY-----" "$(echo U0VDUkVUQ0FOQVJZ | base64 -d)" "-----END PRIVATE KEY-----"
`)
	r := run(t, env, "run", pb, "-i", inv, "-v")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1 (the key is withheld, failing the step)", r.code)
	}
	if !strings.Contains(r.stdout, "    | first line\n    | second line\n    | third line\n") {
		t.Errorf("-v did not show the full output")
	}
	logs, _ := filepath.Glob(filepath.Join(state, "kplay", "runs", "*.jsonl"))
	if len(logs) != 1 {
		t.Fatalf("run logs: %v", logs)
	}
	for p, want := range map[string]os.FileMode{filepath.Join(state, "kplay", "runs"): 0o700, logs[0]: 0o600} {
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: %v %v, want mode %v", p, st.Mode(), err, want)
		}
	}
	raw, err := os.ReadFile(logs[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{string(raw), r.stdout, r.stderr} {
		if strings.Contains(out, "SECRETCANARY") {
			t.Fatal("the private key's body reached the screen or the run log")
		}
	}
	var seen []string
	output := ""
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	for sc.Scan() {
		var e struct {
			Type    string `json:"type"`
			Host    string `json:"host"`
			Outcome string `json:"outcome"`
			Output  string `json:"output"`
			Step    *struct {
				Name   string `json:"name"`
				Status string `json:"status"`
			} `json:"step"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("not JSON lines: %v: %s", err, sc.Text())
		}
		line := e.Type
		if e.Step != nil {
			line += " " + e.Step.Name + " " + e.Step.Status
		}
		line += e.Outcome
		seen = append(seen, line)
		output += e.Output
	}
	want := "run_start|step_start three lines not run|step_end three lines changed|step_start leak a key not run|step_end leak a key failed|run_endfailed"
	if got := strings.Join(seen, "|"); got != want {
		t.Errorf("events:\n%s\nwant:\n%s", got, want)
	}
	if output != "first line\nsecond line\nthird line\n" {
		t.Errorf("logged output %q", output)
	}
	runs := run(t, env, "runs")
	id := strings.TrimSuffix(filepath.Base(logs[0]), ".jsonl")
	if runs.code != 0 || !strings.Contains(runs.stdout, id) || !strings.Contains(runs.stdout, "failed") {
		t.Errorf("kplay runs does not list %s as failed", id)
	}
}
