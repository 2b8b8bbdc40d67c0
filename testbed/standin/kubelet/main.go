// Command kplay-kubelet is the kplay testbed's kubelet stand-in: it runs the
// static pods of a manifest directory as plain host processes (hostNetwork).
//
// Every period it reads each manifest in the directory (like the real
// kubelet, every regular file whose name does not start with "."; a file that
// is not a Pod with a container command is logged and skipped, and so is a
// second file with the same pod name, as the real kubelet rejects duplicate
// pods) and runs
// spec.containers[0].command + args as a process, in the host's network (a
// pod without hostNetwork: true is refused: it cannot be given a network of
// its own here). It restarts the process when the manifest's content changes
// or the process has died, and stops it when the manifest goes away: SIGTERM,
// then SIGKILL after the pod's terminationGracePeriodSeconds, or
// -stop-timeout (30s, the real kubelet's default) if it has none. etcd needs
// that grace: it first drains its gRPC streams (about 7s with an apiserver
// attached) and only then hands its raft leadership over; killed earlier,
// the other members must elect a leader and briefly fail /health. A
// manifest moved out and back between two polls goes unnoticed, as it would
// by a kubelet that only polls. Creating the -sync-file makes it reread the
// manifests within 0.1s (the testbed does so to start the apiservers without
// waiting for the next poll). Each pod's output goes to
// /var/log/pods/NAME.log; a JSON status (pid, starts) goes to -status.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"
)

// manifest is the part of a static Pod manifest the stand-in uses.
type manifest struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		HostNetwork                   bool   `yaml:"hostNetwork"`
		TerminationGracePeriodSeconds *int64 `yaml:"terminationGracePeriodSeconds"`
		Containers                    []struct {
			Name    string   `yaml:"name"`
			Command []string `yaml:"command"`
			Args    []string `yaml:"args"`
		} `yaml:"containers"`
	} `yaml:"spec"`
}

// pod is a running (or exited) static pod process.
type pod struct {
	file    string
	name    string
	argv    []string
	grace   time.Duration // SIGTERM to SIGKILL
	hash    [32]byte
	cmd     *exec.Cmd
	done    chan struct{}
	started time.Time
	starts  int
}

// podStatus is one pod in the status file.
type podStatus struct {
	File    string    `json:"file"`
	Name    string    `json:"name"`
	PID     int       `json:"pid"`
	Running bool      `json:"running"`
	Starts  int       `json:"starts"`
	Started time.Time `json:"started"`
}

// kubelet holds the stand-in's configuration and pods.
type kubelet struct {
	dir         string
	podLogDir   string
	statusPath  string
	stopTimeout time.Duration
	syncFile    string
	pods        map[string]*pod     // by manifest file name
	bad         map[string][32]byte // manifests already reported as unusable
	logger      *log.Logger
}

func main() {
	dir := flag.String("manifests", "/etc/kubernetes/manifests", "static pod manifest directory")
	period := flag.Duration("period", 20*time.Second, "manifest poll period")
	logPath := flag.String("log", "", "log file (default: stderr)")
	status := flag.String("status", "", "write pod status JSON here")
	podLogs := flag.String("pod-logs", "/var/log/pods", "directory for the pods' output")
	stop := flag.Duration("stop-timeout", 30*time.Second, "wait this long after SIGTERM before SIGKILL, for pods without terminationGracePeriodSeconds")
	syncFile := flag.String("sync-file", "/run/kplay/kubelet-sync", "reread the manifests at once when this file appears")
	flag.Parse()

	logger := log.New(os.Stderr, "kplay-kubelet: ", log.LstdFlags|log.Lmicroseconds)
	if *logPath != "" {
		f, err := os.OpenFile(*logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			logger.Fatalf("open log: %v", err)
		}
		logger.SetOutput(f)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	k := &kubelet{dir: *dir, podLogDir: *podLogs, statusPath: *status, stopTimeout: *stop, syncFile: *syncFile,
		pods: map[string]*pod{}, bad: map[string][32]byte{}, logger: logger}
	logger.Printf("watching %s every %v", *dir, *period)
	k.run(ctx, *period)
	logger.Printf("stopping")
	for _, p := range k.pods {
		k.stop(p)
	}
}

// run syncs the pods with the manifests every period, and at once when the
// -sync-file appears (it is removed), until ctx ends.
func (k *kubelet) run(ctx context.Context, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	poke := time.NewTicker(100 * time.Millisecond)
	defer poke.Stop()
	for {
		k.sync()
	wait:
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				break wait
			case <-poke.C:
				if k.syncFile != "" && os.Remove(k.syncFile) == nil {
					k.logger.Printf("%s: rereading manifests now", k.syncFile)
					break wait
				}
			}
		}
	}
}

// sync starts, restarts and stops pods to match the manifests.
func (k *kubelet) sync() {
	entries, err := os.ReadDir(k.dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		k.logger.Printf("read %s: %v", k.dir, err)
		return
	}
	seen := map[string]bool{}
	names := map[string]string{} // pod name -> manifest file
	for _, e := range entries {
		file := e.Name()
		if strings.HasPrefix(file, ".") || !e.Type().IsRegular() {
			continue
		}
		seen[file] = true
		data, err := os.ReadFile(filepath.Join(k.dir, file))
		if err != nil {
			k.logger.Printf("read %s: %v", file, err)
			continue
		}
		hash := sha256.Sum256(data)
		p := k.pods[file]
		if p != nil && p.hash == hash {
			if other, dup := names[p.name]; dup {
				k.logger.Printf("%s: pod %s duplicates %s: stopping it", file, p.name, other)
				k.stop(p)
				delete(k.pods, file)
				continue
			}
			names[p.name] = file
			if p.exited() {
				k.logger.Printf("%s: %s exited (%v): restarting", file, p.name, p.cmd.ProcessState)
				k.start(file, p.name, p.argv, p.grace, hash, p.starts)
			}
			continue
		}
		// New or changed manifest.
		starts := 0
		if p != nil {
			k.logger.Printf("%s: manifest changed: stopping %s", file, p.name)
			k.stop(p)
			delete(k.pods, file)
			starts = p.starts
		}
		name, argv, grace, err := parse(file, data, k.stopTimeout)
		if err != nil {
			if k.bad[file] != hash {
				k.logger.Printf("%s: ignored: %v", file, err)
				k.bad[file] = hash
			}
			continue
		}
		delete(k.bad, file)
		if other, dup := names[name]; dup {
			if k.bad[file] != hash {
				k.logger.Printf("%s: ignored: pod %s duplicates %s", file, name, other)
				k.bad[file] = hash
			}
			continue
		}
		names[name] = file
		k.start(file, name, argv, grace, hash, starts)
	}
	// Pods whose manifest went away stop in parallel, as the real
	// kubelet's pod workers stop them: one slow to stop (its grace period)
	// does not hold up the others.
	var wg sync.WaitGroup
	for file, p := range k.pods {
		if !seen[file] {
			k.logger.Printf("%s: manifest removed: stopping %s", file, p.name)
			wg.Add(1)
			go func() {
				defer wg.Done()
				k.stop(p)
			}()
			delete(k.pods, file)
		}
	}
	wg.Wait()
	for file := range k.bad {
		if !seen[file] {
			delete(k.bad, file)
		}
	}
	k.writeStatus()
}

// parse returns a static pod manifest's pod name, command line and
// termination grace period (defaultGrace if it sets none).
func parse(file string, data []byte, defaultGrace time.Duration) (string, []string, time.Duration, error) {
	var m manifest
	if err := yaml.Unmarshal(data, &m); err != nil {
		return "", nil, 0, fmt.Errorf("parse manifest: %w", err)
	}
	if m.Kind != "Pod" || len(m.Spec.Containers) == 0 {
		return "", nil, 0, errors.New("not a Pod with containers")
	}
	if !m.Spec.HostNetwork {
		return "", nil, 0, errors.New("not hostNetwork: true (the stand-in runs pods as host processes, in the host's network)")
	}
	c := m.Spec.Containers[0]
	argv := append(append([]string{}, c.Command...), c.Args...)
	if len(argv) == 0 {
		return "", nil, 0, fmt.Errorf("container %s has no command", c.Name)
	}
	name := m.Metadata.Name
	if name == "" {
		name = strings.TrimSuffix(file, filepath.Ext(file))
	}
	grace := defaultGrace
	if g := m.Spec.TerminationGracePeriodSeconds; g != nil {
		if *g < 0 {
			return "", nil, 0, fmt.Errorf("terminationGracePeriodSeconds %d is negative", *g)
		}
		grace = time.Duration(*g) * time.Second
	}
	return name, argv, grace, nil
}

// start starts a pod's process; starts counts its earlier starts.
func (k *kubelet) start(file, name string, argv []string, grace time.Duration, hash [32]byte, starts int) {
	p := &pod{file: file, name: name, argv: argv, grace: grace, hash: hash, done: make(chan struct{}), started: time.Now(), starts: starts}
	k.pods[file] = p
	fail := func(err error) {
		k.logger.Printf("%s: start %s: %v", file, name, err)
		close(p.done)
	}
	if err := os.MkdirAll(k.podLogDir, 0o755); err != nil {
		fail(err)
		return
	}
	out, err := os.OpenFile(filepath.Join(k.podLogDir, name+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		fail(err)
		return
	}
	defer out.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.cmd = cmd
	if err := cmd.Start(); err != nil {
		fail(err)
		return
	}
	p.starts++
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	k.logger.Printf("%s: started %s (pid %d, start %d): %s", file, name, cmd.Process.Pid, p.starts, strings.Join(argv, " "))
}

// exited reports whether the pod's process has ended (or never started).
func (p *pod) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends a pod's process group: SIGTERM, then SIGKILL after its grace
// period.
func (k *kubelet) stop(p *pod) {
	if p.exited() || p.cmd == nil || p.cmd.Process == nil {
		return
	}
	pid := p.cmd.Process.Pid
	syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(p.grace):
		k.logger.Printf("%s: %s (pid %d) still running %v after SIGTERM: killing", p.file, p.name, pid, p.grace)
		syscall.Kill(-pid, syscall.SIGKILL)
		<-p.done
	}
	k.logger.Printf("%s: stopped %s (pid %d)", p.file, p.name, pid)
}

// writeStatus writes the pods' status file, if one was asked for.
func (k *kubelet) writeStatus() {
	if k.statusPath == "" {
		return
	}
	list := []podStatus{}
	for _, p := range k.pods {
		s := podStatus{File: p.file, Name: p.name, Running: !p.exited(), Starts: p.starts, Started: p.started}
		if p.cmd != nil && p.cmd.Process != nil {
			s.PID = p.cmd.Process.Pid
		}
		list = append(list, s)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].File < list[j].File })
	data, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		k.logger.Printf("status: %v", err)
		return
	}
	if err := os.MkdirAll(filepath.Dir(k.statusPath), 0o755); err != nil {
		k.logger.Printf("status: %v", err)
		return
	}
	tmp := k.statusPath + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		k.logger.Printf("status: %v", err)
		return
	}
	if err := os.Rename(tmp, k.statusPath); err != nil {
		k.logger.Printf("status: %v", err)
	}
}
