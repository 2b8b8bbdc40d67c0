package main

import (
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// manifestFor is a static pod manifest running a shell command.
func manifestFor(name, script string) string {
	return manifestWith(name, script, "hostNetwork: true\n")
}

// manifestWith is a static pod manifest running a shell command with extra
// lines (indented by two spaces) in its spec.
func manifestWith(name, script, spec string) string {
	return `apiVersion: v1
kind: Pod
metadata:
  name: ` + name + `
spec:
  ` + spec + `  containers:
  - name: c
    command:
    - /bin/sh
    - -c
    args:
    - "` + script + `"
`
}

func TestSync(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("SKIP: no /bin/sh: run on a POSIX system")
	}
	dir := t.TempDir()
	k := &kubelet{dir: filepath.Join(dir, "manifests"), podLogDir: filepath.Join(dir, "logs"),
		statusPath: filepath.Join(dir, "status.json"), stopTimeout: 2 * time.Second,
		pods: map[string]*pod{}, bad: map[string][32]byte{}, logger: log.New(io.Discard, "", 0)}
	t.Cleanup(func() {
		for _, p := range k.pods {
			k.stop(p)
		}
	})
	if err := os.MkdirAll(k.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(file, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(k.dir, file), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	running := func(file string) int {
		t.Helper()
		p := k.pods[file]
		if p == nil || p.exited() {
			return 0
		}
		return p.cmd.Process.Pid
	}

	write("a.yaml", manifestFor("a", "sleep 30"))
	write(".hidden.yaml", manifestFor("h", "sleep 30"))
	write("junk.yaml", "not: a pod\n")
	k.sync()
	pid := running("a.yaml")
	if pid == 0 || len(k.pods) != 1 {
		t.Fatalf("after first sync: pods %v", k.pods)
	}
	k.sync()
	if running("a.yaml") != pid {
		t.Fatal("an unchanged, running pod was restarted")
	}
	// A copy with the same pod name is a duplicate, as for the real kubelet.
	write("a.yaml.bak", manifestFor("a", "sleep 30"))
	k.sync()
	if running("a.yaml.bak") != 0 || running("a.yaml") != pid {
		t.Fatal("duplicate pod started or original disturbed")
	}
	os.Remove(filepath.Join(k.dir, "a.yaml.bak"))
	// A changed manifest restarts the pod.
	write("a.yaml", manifestFor("a", "sleep 31"))
	k.sync()
	if p2 := running("a.yaml"); p2 == 0 || p2 == pid {
		t.Fatalf("changed manifest: pid %d -> %d", pid, p2)
	}
	if k.pods["a.yaml"].starts != 2 {
		t.Errorf("starts = %d, want 2", k.pods["a.yaml"].starts)
	}
	// A dead pod is restarted.
	pid = running("a.yaml")
	k.pods["a.yaml"].cmd.Process.Kill()
	<-k.pods["a.yaml"].done
	k.sync()
	if p2 := running("a.yaml"); p2 == 0 || p2 == pid {
		t.Fatalf("dead pod not restarted: %d -> %d", pid, p2)
	}
	// A removed manifest stops the pod.
	p := k.pods["a.yaml"]
	os.Remove(filepath.Join(k.dir, "a.yaml"))
	k.sync()
	if !p.exited() || len(k.pods) != 0 {
		t.Fatal("pod of a removed manifest still runs")
	}
	status, err := os.ReadFile(k.statusPath)
	if err != nil || strings.TrimSpace(string(status)) != "[]" {
		t.Errorf("status after removal = %q, %v", status, err)
	}
}

// TestManifestRules: pods that are not hostNetwork are refused (the stand-in
// has no pod network to give them); terminationGracePeriodSeconds bounds the
// time from SIGTERM to SIGKILL, and a pod without it gets -stop-timeout.
func TestManifestRules(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("SKIP: no /bin/sh: run on a POSIX system")
	}
	dir := t.TempDir()
	k := &kubelet{dir: filepath.Join(dir, "manifests"), podLogDir: filepath.Join(dir, "logs"),
		stopTimeout: 3 * time.Second, pods: map[string]*pod{}, bad: map[string][32]byte{}, logger: log.New(io.Discard, "", 0)}
	t.Cleanup(func() {
		for _, p := range k.pods {
			k.stop(p)
		}
	})
	if err := os.MkdirAll(k.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(file, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(k.dir, file), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Ignores SIGTERM, so only SIGKILL ends it.
	const stubborn = "trap '' TERM; while :; do sleep 0.1; done"
	write("podnet.yaml", manifestWith("podnet", "sleep 30", ""))
	write("quick.yaml", manifestWith("quick", stubborn, "hostNetwork: true\n  terminationGracePeriodSeconds: 1\n"))
	write("default.yaml", manifestWith("default", stubborn, "hostNetwork: true\n"))
	k.sync()
	if _, ok := k.pods["podnet.yaml"]; ok {
		t.Error("a pod without hostNetwork was started")
	}
	if _, ok := k.bad["podnet.yaml"]; !ok {
		t.Error("a pod without hostNetwork was not reported as unusable")
	}
	for file, want := range map[string]time.Duration{"quick.yaml": time.Second, "default.yaml": 3 * time.Second} {
		p := k.pods[file]
		if p == nil || p.exited() {
			t.Fatalf("%s not running", file)
		}
		if p.grace != want {
			t.Errorf("%s: grace %v, want %v", file, p.grace, want)
		}
		time.Sleep(200 * time.Millisecond) // let the shell install its trap
		start := time.Now()
		k.stop(p)
		if took := time.Since(start); took < want || took > want+2*time.Second {
			t.Errorf("%s: stopped after %v, want about %v (SIGTERM ignored, then SIGKILL)", file, took, want)
		}
		delete(k.pods, file)
	}
}
