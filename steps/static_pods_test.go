package steps

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakePodKubelet runs a real process named comm (a shell script, so that
// /proc/PID/comm is its name) with arg while manifest exists, like a kubelet
// polling every 50ms. It needs no root: scripts/restart_pods.sh and pods.sh
// run against it with a real sh.
type fakePodKubelet struct {
	mu     sync.Mutex
	cmd    *exec.Cmd
	starts int
}

func (k *fakePodKubelet) pid() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cmd == nil {
		return ""
	}
	return strconv.Itoa(k.cmd.Process.Pid)
}

func runFakePodKubelet(t *testing.T, bin, manifest, arg string) *fakePodKubelet {
	t.Helper()
	k := &fakePodKubelet{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	stop := func() {
		if k.cmd != nil {
			_ = k.cmd.Process.Kill()
			_ = k.cmd.Wait()
			k.cmd = nil
		}
	}
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			_, err := os.Stat(manifest)
			k.mu.Lock()
			switch {
			case err == nil && k.cmd == nil:
				k.cmd = exec.Command(bin, arg)
				if err := k.cmd.Start(); err != nil {
					t.Errorf("fake pod: %v", err)
					k.cmd = nil
				} else {
					k.starts++
				}
			case err != nil && k.cmd != nil:
				stop()
			}
			k.mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
		k.mu.Lock()
		stop()
		k.mu.Unlock()
	}()
	t.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(10 * time.Second); k.pid() == "" && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	return k
}

// runSh runs an embedded script with a real sh.
func runSh(t *testing.T, src string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("sh", append([]string{"-c", src, "sh"}, args...)...).Output()
	return string(out), err
}

func TestRestartPodsScript(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	comm := fmt.Sprintf("kpf%d", os.Getpid()%1000000)
	bin := filepath.Join(dir, comm)
	must(t, os.WriteFile(bin, []byte("#!/bin/sh\nwhile :; do sleep 1; done\n"), 0o755))
	manifests, park := filepath.Join(dir, "manifests"), filepath.Join(dir, "parked", "run1")
	must(t, os.MkdirAll(manifests, 0o755))
	manifest := filepath.Join(manifests, "fakepod.yaml")
	must(t, os.WriteFile(manifest, []byte("kind: Pod\n"), 0o600))
	t0 := time.Now()
	k := runFakePodKubelet(t, bin, manifest, "--port=1")
	old := k.pid()
	t1 := time.Now()

	// pods.sh finds it (and not another process of the same name started
	// without the pod's argument), and reads file times.
	decoy := exec.Command(bin, "--port=2")
	must(t, decoy.Start())
	t.Cleanup(func() { _ = decoy.Process.Kill(); _ = decoy.Wait() })
	out, err := runSh(t, podsSh(), comm, "--port=1", "nosuchcomm", "-", "--", manifest, filepath.Join(dir, "absent"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := parsePodFacts([]byte(out))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if f.pid[comm] != old || f.pid["nosuchcomm"] != "" {
		t.Errorf("pods.sh: %+v (want pid %s)\n%s", f, old, out)
	}
	// The start time is precise to clock ticks, not to /proc/stat's whole
	// seconds: a pod started just after its files changed must not look
	// older than them.
	if st := f.start[comm]; st.Before(t0.Add(-50*time.Millisecond)) || st.After(t1.Add(50*time.Millisecond)) {
		t.Errorf("pods.sh: start %s, but the process started between %s and %s", st.Format("15:04:05.000"), t0.Format("15:04:05.000"), t1.Format("15:04:05.000"))
	}
	if _, ok := f.mtime[manifest]; !ok || len(f.mtime) != 1 || time.Since(f.now) > time.Minute {
		t.Errorf("pods.sh files: %v, now %v\n%s", f.mtime, f.now, out)
	}

	out, err = runSh(t, restartPodsSh(), park, "10", "10", "fakepod", comm, manifest, old, "1", "--port=1")
	if err != nil {
		t.Fatalf("restart_pods.sh: %v\n%s", err, out)
	}
	ev := parseRestartEvents([]byte(out))["fakepod"]
	if ev == nil || ev.parked.IsZero() || ev.down.Before(ev.parked) || ev.back.Before(ev.down) || ev.up.Before(ev.back) {
		t.Fatalf("events out of order: %+v\n%s", ev, out)
	}
	if ev.pid == old || ev.pid == "" || ev.pid != k.pid() {
		t.Errorf("up pid %s: old %s, running %s", ev.pid, old, k.pid())
	}
	if _, err := os.Stat(manifest); err != nil {
		t.Errorf("manifest not back: %v", err)
	}
	if _, err := os.Stat(filepath.Dir(park)); !os.IsNotExist(err) {
		t.Errorf("park dirs left behind: %v", err)
	}

	// A pod that never stops: a timeout, naming it, with the manifest back.
	out, err = runSh(t, restartPodsSh(), park, "1", "1", "fakepod", comm, manifest, strconv.Itoa(decoy.Process.Pid), "1", "--port=2")
	if err == nil || !strings.Contains(out, "parked fakepod") {
		t.Errorf("stuck pod: %v\n%s", err, out)
	}
	if _, err := os.Stat(manifest); err != nil {
		t.Errorf("manifest not back after a timeout: %v", err)
	}
}

func TestRestartDecision(t *testing.T) {
	t.Parallel()
	const kd = "/etc/kubernetes"
	api := component{componentSpec: componentSpec{name: "kube-apiserver"}, files: []string{kd + "/pki/apiserver.crt", kd + "/pki/apiserver-etcd-client.crt"}}
	cm := component{componentSpec: componentSpec{name: "kube-controller-manager"}, files: []string{kd + "/controller-manager.conf"}}
	sched := component{componentSpec: componentSpec{name: "kube-scheduler"}}
	tests := []struct {
		name     string
		pods     string
		restart  map[string]bool
		contains string
	}{
		{"started before the renewal", "pod kube-apiserver 10 100.0\nfile 200.5 " + kd + "/pki/apiserver.crt\nfile 150 " + kd + "/pki/apiserver-etcd-client.crt\nnow 300\n",
			map[string]bool{"kube-apiserver": true}, "before /etc/kubernetes/pki/apiserver.crt changed"},
		{"started after the renewal", "pod kube-apiserver 10 250.0\nfile 200 " + kd + "/pki/apiserver.crt\nnow 300\n",
			map[string]bool{"kube-apiserver": false}, "already uses them"},
		{"no process", "pod kube-apiserver - -\nnow 300\n", map[string]bool{"kube-apiserver": true}, "no running process"},
		{"controller-manager kubeconfig renewed", "pod kube-controller 11 100\nfile 200 " + kd + "/controller-manager.conf\nnow 300\n",
			map[string]bool{"kube-controller-manager": true}, "controller-manager.conf changed"},
		{"no files known", "pod kube-scheduler 12 100\nnow 300\n", map[string]bool{"kube-scheduler": true}, "cannot tell"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parsePodFacts([]byte(tt.pods))
			if err != nil {
				t.Fatal(err)
			}
			s := &RestartAPIServer{Restart: RestartNeeded, Method: MethodManifest, KubeDir: kd}
			for _, c := range []component{api, cm, sched} {
				want, ok := tt.restart[c.name]
				if !ok {
					continue
				}
				pr := s.decideOne(c, f)
				if pr.Restarted != want || !strings.Contains(pr.Reason, tt.contains) {
					t.Errorf("%s: restart %v (%s), want %v with %q", c.name, pr.Restarted, pr.Reason, want, tt.contains)
				}
			}
		})
	}
}

// TestUnparkScript runs unpark.sh with a real sh: it moves a parked manifest
// back and clears the empty park directories; it refuses to overwrite a
// manifest that is in place; with nothing parked it does nothing.
func TestUnparkScript(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		parked     bool
		inPlace    bool
		wantOut    string
		wantErr    bool
		wantParked bool // the parked copy is still there after
	}{
		{name: "parked", parked: true, wantOut: "moved-back\n"},
		{name: "manifest in place", parked: true, inPlace: true, wantErr: true, wantParked: true},
		{name: "nothing parked", wantOut: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			manifest := filepath.Join(dir, "manifests", "etcd.yaml")
			parked := filepath.Join(dir, "parked", "run1", "etcd.yaml")
			must(t, os.MkdirAll(filepath.Dir(manifest), 0o755))
			must(t, os.MkdirAll(filepath.Dir(parked), 0o700))
			if tt.parked {
				must(t, os.WriteFile(parked, []byte("kind: Pod # parked\n"), 0o600))
			}
			if tt.inPlace {
				must(t, os.WriteFile(manifest, []byte("kind: Pod # in place\n"), 0o600))
			}
			out, err := runSh(t, unparkSh(), parked, manifest)
			if (err != nil) != tt.wantErr || out != tt.wantOut {
				t.Fatalf("unpark.sh: %q, %v; want %q, error %v", out, err, tt.wantOut, tt.wantErr)
			}
			if _, err := os.Stat(parked); (err == nil) != tt.wantParked {
				t.Errorf("parked copy present=%v, want %v", err == nil, tt.wantParked)
			}
			b, err := os.ReadFile(manifest)
			switch {
			case tt.parked && !tt.inPlace && (err != nil || string(b) != "kind: Pod # parked\n"):
				t.Errorf("manifest after unpark: %q, %v", b, err)
			case tt.inPlace && string(b) != "kind: Pod # in place\n":
				t.Errorf("the manifest in place was overwritten: %q", b)
			}
			if tt.wantOut == "moved-back\n" {
				if _, err := os.Stat(filepath.Join(dir, "parked")); !os.IsNotExist(err) {
					t.Errorf("empty park directories left behind: %v", err)
				}
			}
		})
	}
}
