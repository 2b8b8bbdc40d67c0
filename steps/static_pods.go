package steps

import (
	"context"
	_ "embed" // scripts/pods.sh, restart_pods.sh, unpark.sh
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kplay/kplay/internal/hostexec"
	"github.com/kplay/kplay/internal/shellquote"
)

// The host-side halves of a static pod restart.
var (
	//go:embed scripts/pod_lib.sh
	podLibSh string
	//go:embed scripts/pods.sh
	podsOnlySh string
	//go:embed scripts/restart_pods.sh
	restartPodsOnlySh string
	//go:embed scripts/unpark.sh
	unparkOnlySh string
)

// podsSh, restartPodsSh and unparkSh are the scripts with their shared
// functions in front.
func podsSh() string        { return podLibSh + podsOnlySh }
func restartPodsSh() string { return podLibSh + restartPodsOnlySh }
func unparkSh() string      { return podLibSh + unparkOnlySh }

// componentSpec is a static pod kplay knows how to restart and check.
type componentSpec struct {
	name        string
	defaultPort int
	// portFlag is the flag whose value (or URL) gives the port.
	portFlag string
	// servedCert is the kubeadm name of the certificate it serves, or "".
	servedCert string
	// reloads is true for a component that rereads its certificate files
	// on every new TLS handshake (etcd), so renewed files need no restart.
	reloads bool
}

// comm is the component's process name as /proc/PID/comm shows it.
func (c componentSpec) comm() string { return c.name[:min(len(c.name), 15)] }

// knownComponents lists the control-plane static pods, in default order.
func knownComponents() []componentSpec {
	return []componentSpec{
		{"etcd", 2379, "--listen-client-urls", "etcd-server", true},
		{"kube-apiserver", 6443, "--secure-port", "apiserver", false},
		{"kube-controller-manager", 10257, "--secure-port", "", false},
		{"kube-scheduler", 10259, "--secure-port", "", false},
	}
}

// componentByName finds a known component.
func componentByName(name string) (componentSpec, bool) {
	for _, c := range knownComponents() {
		if c.name == name {
			return c, true
		}
	}
	return componentSpec{}, false
}

// component is one static pod found on the host.
type component struct {
	componentSpec
	manifest string // path of its manifest
	port     int
	address  string // host part of the address it serves on
	// files are the files under the kubernetes dir its flags name: what it
	// reads at start (certificates, keys, kubeconfigs).
	files []string
	// served are the TLS endpoints whose certificate kplay can compare with the disk.
	served []endpoint
	// match is an argument its process is started with (its port flag),
	// so that another process of the same name is not taken for it; "-": none.
	match string
}

// manifestDoc is the part of a static pod manifest kplay reads.
type manifestDoc struct {
	Spec struct {
		Containers []struct {
			Command []string `yaml:"command"`
			Args    []string `yaml:"args"`
		} `yaml:"containers"`
	} `yaml:"spec"`
}

// manifestFlags returns the --flag=value pairs of a manifest's first container.
func manifestFlags(data []byte) (map[string]string, error) {
	var m manifestDoc
	if err := yaml.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	flags := map[string]string{}
	if len(m.Spec.Containers) == 0 {
		return flags, nil
	}
	c := m.Spec.Containers[0]
	for _, a := range append(append([]string{}, c.Command...), c.Args...) {
		if k, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(k, "--") {
			flags[k] = v
		}
	}
	return flags, nil
}

// hostOnly strips a port from an address, if it has one.
func hostOnly(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return strings.Trim(addr, "[]")
}

// urlHostPort returns the host and port of the first URL in a comma-separated list.
func urlHostPort(list string) (string, int) {
	first, _, _ := strings.Cut(list, ",")
	u, err := url.Parse(first)
	if err != nil {
		return "", 0
	}
	p, _ := strconv.Atoi(u.Port())
	return u.Hostname(), p
}

// podLocator finds the static pods of a host from their manifests.
type podLocator struct {
	kubeDir string
	// address overrides the address components are reached at.
	address string
}

// discover reads the manifests of the named components with one command;
// explicit makes a missing manifest an error instead of a skip.
func (l podLocator) discover(ctx context.Context, t *Target, names []string, explicit bool) ([]component, error) {
	dir := path.Join(l.kubeDir, "manifests")
	m := newMarker()
	var b strings.Builder
	fmt.Fprintf(&b, "d=%s; m=%s\n", shellquote.Quote(dir), shellquote.Quote(m))
	for _, n := range names {
		fmt.Fprintf(&b, "f=\"$d\"/%s.yaml; if [ -f \"$f\" ]; then printf '%%s file %%s\\n' \"$m\" %s; cat \"$f\"; fi\n", shellquote.Quote(n), shellquote.Quote(n))
	}
	out, err := t.Run(ctx, sh(b.String()))
	if err != nil {
		return nil, fmt.Errorf("reading static pod manifests in %s: %w", dir, err)
	}
	found := map[string][]byte{}
	cur := ""
	for _, line := range strings.SplitAfter(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, m+" file "); ok {
			cur = strings.TrimSpace(rest)
			found[cur] = nil
			continue
		}
		if cur != "" {
			found[cur] = append(found[cur], line...)
		}
	}
	defaultAddr := hostOnly(t.Address())
	if fl, err := manifestFlags(found["kube-apiserver"]); err == nil && fl["--advertise-address"] != "" {
		defaultAddr = fl["--advertise-address"]
	}
	if l.address != "" {
		defaultAddr = hostOnly(l.address)
	}
	var comps []component
	for _, n := range names {
		data, ok := found[n]
		mf := path.Join(dir, n+".yaml")
		if !ok {
			if explicit {
				return nil, fmt.Errorf("component %s: manifest %s not found", n, mf)
			}
			continue
		}
		c, err := l.component(n, mf, data, defaultAddr)
		if err != nil {
			return nil, err
		}
		comps = append(comps, c)
	}
	if len(comps) == 0 {
		return nil, fmt.Errorf("no control-plane static pod manifests in %s", dir)
	}
	return comps, nil
}

// component reads one manifest: ports, addresses, files and served endpoints.
func (l podLocator) component(name, mf string, data []byte, addr string) (component, error) {
	spec, _ := componentByName(name)
	fl, err := manifestFlags(data)
	if err != nil {
		return component{}, fmt.Errorf("manifest %s: %w", mf, err)
	}
	c := component{componentSpec: spec, manifest: mf, port: spec.defaultPort, address: addr, match: "-"}
	if v, ok := fl[spec.portFlag]; ok {
		c.match = spec.portFlag + "=" + v
	}
	if v := fl[spec.portFlag]; strings.Contains(v, "://") {
		if _, p := urlHostPort(v); p > 0 {
			c.port = p
		}
	} else if p, err := strconv.Atoi(v); err == nil && p > 0 {
		c.port = p
	}
	for _, v := range fl {
		if strings.HasPrefix(v, l.kubeDir+"/") && !strings.HasPrefix(v, path.Join(l.kubeDir, "manifests")+"/") {
			c.files = append(c.files, v)
		}
	}
	switch {
	case name == "etcd":
		if h, _ := urlHostPort(fl["--advertise-client-urls"]); h != "" && l.address == "" {
			c.address = h
		}
		c.served = append(c.served, endpoint{cert: "etcd-server", address: c.address, port: c.port})
		peerHost, peerPort := urlHostPort(fl["--initial-advertise-peer-urls"])
		if _, p := urlHostPort(fl["--listen-peer-urls"]); p > 0 {
			peerPort = p
		}
		if peerHost == "" || l.address != "" {
			peerHost = c.address
		}
		if peerPort > 0 {
			c.served = append(c.served, endpoint{cert: "etcd-peer", address: peerHost, port: peerPort})
		}
	case spec.servedCert != "":
		c.served = append(c.served, endpoint{cert: spec.servedCert, address: c.address, port: c.port})
	default:
		// The controllers serve a certificate they make at start, on the
		// address they bind (kubeadm: 127.0.0.1).
		if b := fl["--bind-address"]; b != "" && b != "0.0.0.0" && b != "::" {
			c.address = b
		}
	}
	return c, nil
}

// podFacts is what runs on a host, from pods.sh.
type podFacts struct {
	pid   map[string]string    // comm -> newest pid ("" if none)
	start map[string]time.Time // comm -> when that process started
	mtime map[string]time.Time // file -> modification time (absent: no such file)
	now   time.Time            // the host's clock
}

// facts reads, in one command, the components' processes and the age of
// the files they read at start.
func facts(ctx context.Context, t *Target, comps []component) (*podFacts, error) {
	var args []string
	for _, c := range comps {
		args = append(args, c.comm(), c.match)
	}
	args = append(args, "--")
	for _, c := range comps {
		args = append(args, c.files...)
	}
	out, err := t.Run(ctx, shellquote.Script(podsSh(), args...))
	if err != nil {
		return nil, fmt.Errorf("reading the static pods' processes: %w", err)
	}
	return parsePodFacts(out)
}

// parsePodFacts parses pods.sh's output.
func parsePodFacts(out []byte) (*podFacts, error) {
	f := &podFacts{pid: map[string]string{}, start: map[string]time.Time{}, mtime: map[string]time.Time{}}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		w := strings.Fields(line)
		switch {
		case len(w) == 4 && w[0] == "pod":
			if w[2] != "-" {
				f.pid[w[1]] = w[2]
				if at, err := epoch(w[3]); err == nil {
					f.start[w[1]] = at
				}
			}
		case len(w) >= 3 && w[0] == "file":
			if at, err := epoch(w[1]); err == nil {
				f.mtime[strings.Join(w[2:], " ")] = at
			}
		case len(w) == 2 && w[0] == "now":
			at, err := epoch(w[1])
			if err != nil {
				return nil, fmt.Errorf("host clock: %w", err)
			}
			f.now = at
		default:
			return nil, fmt.Errorf("unexpected line from pods.sh: %q", line)
		}
	}
	return f, nil
}

// epoch parses seconds since the epoch, with an optional fraction.
func epoch(s string) (time.Time, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad time %q", s)
	}
	sec := int64(v)
	return time.Unix(sec, int64((v-float64(sec))*1e9)), nil
}

// newestFile is the most recently modified of c's files, if any exists.
func (f *podFacts) newestFile(c component) (string, time.Time) {
	var name string
	var at time.Time
	for _, p := range c.files {
		if m, ok := f.mtime[p]; ok && m.After(at) {
			name, at = p, m
		}
	}
	return name, at
}

// podEvents are the host-side times of one pod's restart.
type podEvents struct {
	parked, down, back, up time.Time
	pid                    string
}

// restarter moves manifests out and back to restart static pods.
type restarter struct {
	parkDir           string
	down, up          time.Duration
	unparkBackTimeout time.Duration
}

// restart restarts the pods together: all parked at once, each put back
// as soon as its process is gone, and waited for until a new process runs.
// Whatever fails, every manifest is put back before it returns.
func (r restarter) restart(ctx context.Context, t *Target, comps []component, pids map[string]string) (map[string]*podEvents, error) {
	args := []string{r.parkDir, secs(r.down), secs(r.up)}
	for _, c := range comps {
		pid := pids[c.comm()]
		if pid == "" {
			pid = "-"
		}
		args = append(args, c.name, c.comm(), c.manifest, pid, strconv.Itoa(c.port), c.match)
	}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n") {
			return nil, fmt.Errorf("cannot restart static pods: %q holds white space or is empty", a)
		}
	}
	out, err := t.Run(ctx, shellquote.Script(restartPodsSh(), args...))
	ev := parseRestartEvents(out)
	if berr := r.putBack(t, comps); berr != nil {
		var re *reconnectedError
		if errors.As(berr, &re) {
			return ev, fmt.Errorf("moving the manifests out and back: %w: %v", re, err)
		}
		return ev, fmt.Errorf("moving the manifests out and back: %w", errors.Join(err, berr))
	}
	if err != nil {
		return ev, fmt.Errorf("moving the manifests out and back: %w; every manifest is back in place", err)
	}
	return ev, nil
}

// secs is d in whole seconds, at least 1.
func secs(d time.Duration) string { return strconv.Itoa(max(1, int((d+time.Second-1)/time.Second))) }

// parseRestartEvents reads restart_pods.sh's event lines.
func parseRestartEvents(out []byte) map[string]*podEvents {
	ev := map[string]*podEvents{}
	for _, line := range strings.Split(string(out), "\n") {
		w := strings.Fields(line)
		if len(w) < 3 {
			continue
		}
		at, err := epoch(w[2])
		if err != nil {
			continue
		}
		e := ev[w[1]]
		if e == nil {
			e = &podEvents{}
			ev[w[1]] = e
		}
		switch w[0] {
		case "parked":
			e.parked = at
		case "down":
			e.down = at
		case "back":
			e.back = at
		case "up":
			e.up = at
			if len(w) > 3 {
				e.pid = w[3]
			}
		}
	}
	return ev
}

// putBack puts back any manifest still parked, even when ctx is cancelled:
// a cancel can land after a manifest was moved out but before the script
// put it back, and the host must not be left without the pod. When the SSH
// connection was lost, it reconnects (every second, for up to
// unparkBackTimeout) to put them back, and says so.
func (r restarter) putBack(t *Target, comps []component) error {
	ctx, cancel := context.WithTimeout(context.Background(), r.unparkBackTimeout)
	defer cancel()
	err := r.unparkAll(ctx, t, comps)
	if err == nil || !lostConnection(err) {
		return err
	}
	rc, ok := t.Host.(Reconnector)
	if !ok {
		return err
	}
	start := time.Now()
	for {
		rerr := rc.Reconnect(ctx)
		if rerr == nil {
			if err = r.unparkAll(ctx, t, comps); err == nil {
				return &reconnectedError{after: time.Since(start)}
			}
			if !lostConnection(err) {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the SSH connection was lost and could not be opened again within %s (last: %v): %w", r.unparkBackTimeout, rerr, err)
		case <-time.After(time.Second):
		}
	}
}

// reconnectedError says the connection dropped during a restart and every
// manifest was put back over a new one: the restart itself failed.
type reconnectedError struct{ after time.Duration }

func (e *reconnectedError) Error() string {
	return fmt.Sprintf("the SSH connection was lost during the restart; kplay connected again after %s and put every manifest back", e.after.Round(100*time.Millisecond))
}

// lostConnection says err is the transport failing, not a command: only
// then can reconnecting help.
func lostConnection(err error) bool {
	_, exited := hostexec.ExitStatus(err)
	return !exited
}

// unparkAll runs unpark.sh for every component.
func (r restarter) unparkAll(ctx context.Context, t *Target, comps []component) error {
	var errs []error
	for _, c := range comps {
		parked := path.Join(r.parkDir, c.name+".yaml")
		if _, err := t.Run(ctx, shellquote.Script(unparkSh(), parked, c.manifest)); err != nil {
			errs = append(errs, fmt.Errorf("putting %s back from %s FAILED: %w; by hand: mv %s %s",
				c.manifest, parked, err, shellquote.Quote(parked), shellquote.Quote(c.manifest)))
		}
	}
	return errors.Join(errs...)
}

// unparkUndo puts back any manifest still parked.
func (r restarter) unparkUndo(comps []component) *Undo {
	var hints []string
	for _, c := range comps {
		hints = append(hints, "mv "+shellquote.Quote(path.Join(r.parkDir, c.name+".yaml"))+" "+shellquote.Quote(c.manifest))
	}
	return &Undo{
		Repeatable: true,
		Desc:       "put back any static pod manifest still parked in " + r.parkDir,
		Restore:    "on the host, for each file in " + r.parkDir + ": " + strings.Join(hints, "; "),
		Fn: func(ctx context.Context, t *Target) error {
			return r.unparkAll(ctx, t, comps)
		},
	}
}
