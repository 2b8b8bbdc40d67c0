package remote

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// tagged returns the pids of local processes whose environment holds tag.
func tagged(tag string) []string {
	var out []string
	files, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(b, []byte{0}) {
			if string(kv) == "KPLAY_CMD="+tag {
				out = append(out, f)
			}
		}
	}
	return out
}

// TestKillScriptKillsTree runs the killer script against a real local
// process tree whose children left the process group and session.
func TestKillScriptKillsTree(t *testing.T) {
	tag := "killtest." + randomID()
	cmd := exec.Command("sh", "-c", `sleep 301 & nohup sleep 302 >/dev/null 2>&1 & setsid sleep 303 & (sleep 304 &); `+
		`setsid sh -c 'trap "" HUP TERM; while :; do sleep 305 & wait; done' & sleep 306`)
	cmd.Env = append(os.Environ(), "KPLAY_CMD="+tag)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(tagged(tag)) < 7 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(tagged(tag)); n < 7 {
		t.Fatalf("only %d tagged processes started", n)
	}
	if out, err := exec.Command("sh", "-c", killScript(tag)).CombinedOutput(); err != nil {
		t.Fatalf("kill script: %v %s", err, out)
	}
	_ = cmd.Wait()
	time.Sleep(100 * time.Millisecond)
	if left := tagged(tag); len(left) > 0 {
		t.Errorf("processes left after the kill script: %v", left)
	}
}
