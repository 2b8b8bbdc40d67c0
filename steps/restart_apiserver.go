package steps

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"gopkg.in/yaml.v3"

	"github.com/kplay/kplay/internal/yamlx"
)

// restartParams is the YAML form of a restart_apiserver step.
type restartParams struct {
	Components    []string        `yaml:"components"`
	Restart       string          `yaml:"restart"`
	Method        string          `yaml:"method"`
	Address       string          `yaml:"address"`
	DownTimeout   *yamlx.Duration `yaml:"down_timeout"`
	UpTimeout     *yamlx.Duration `yaml:"up_timeout"`
	PollInterval  *yamlx.Duration `yaml:"poll_interval"`
	ServeCheck    string          `yaml:"serve_check"`
	KubernetesDir string          `yaml:"kubernetes_dir"`
	ParkDir       string          `yaml:"park_dir"`
	Crictl        string          `yaml:"crictl"`
}

// Restart methods, restart policies and served-certificate checks.
const (
	// MethodManifest moves the static pod manifest out and back.
	MethodManifest = "manifest"
	// MethodCrictl stops the container with crictl and lets kubelet start a new one.
	MethodCrictl = "crictl"
	// RestartNeeded restarts only components still running on files older
	// than the renewed ones (etcd: only if it does not serve them already).
	RestartNeeded = "needed"
	// RestartAlways restarts every component.
	RestartAlways = "always"
	// ServeCheckSSH compares the served certificate by a TLS handshake made
	// through the host's SSH connection, or by openssl on the host when its
	// SSH server forbids forwarding: it works wherever SSH does.
	ServeCheckSSH = "ssh"
	// ServeCheckController compares it by a TLS handshake from the controller's own network.
	ServeCheckController = "controller"
	// ServeCheckHost compares it by `openssl s_client` run on the host.
	ServeCheckHost = "host"
	// ServeCheckNone skips the comparison.
	ServeCheckNone = "none"
)

// RestartAPIServer restarts the control-plane static pods that need it, so
// that every component runs on the certificates on disk, and checks that it
// does: etcd rereads its certificates by itself (checked by TLS handshakes
// on its client and peer ports, and its health), the apiserver, the
// controller-manager and the scheduler read theirs at start and are
// restarted together, each put back as soon as it stopped, then gated on
// its health and on the certificate it serves.
type RestartAPIServer struct {
	// Components to consider, in order; nil means every known one whose manifest exists.
	Components []string
	// Restart is needed or always.
	Restart string
	// Method is manifest or crictl.
	Method string
	// Address overrides the address the components are reached at.
	Address string
	// DownTimeout bounds the wait for a component to stop.
	DownTimeout time.Duration
	// UpTimeout bounds the wait for it to be healthy again.
	UpTimeout time.Duration
	// PollInterval is the time between health probes.
	PollInterval time.Duration
	// ServeCheck is ssh, controller, host or none.
	ServeCheck string
	// KubeDir is the kubernetes dir.
	KubeDir string
	// ParkDir is where manifests wait while moved out (a run-id subdirectory is added).
	ParkDir string
	// Crictl is the crictl binary, for method crictl.
	Crictl string
}

// NewRestartAPIServer builds a restart_apiserver step.
func NewRestartAPIServer(n *yaml.Node, x Expander) (Step, error) {
	var p restartParams
	if err := decodeParams(n, &p, "restart_apiserver"); err != nil {
		return nil, err
	}
	e := paramExpander{n: n, x: x, step: "restart_apiserver"}
	s := &RestartAPIServer{
		DownTimeout:  dur(p.DownTimeout, yamlx.Duration(2*time.Minute)).D(),
		UpTimeout:    dur(p.UpTimeout, yamlx.Duration(3*time.Minute)).D(),
		PollInterval: dur(p.PollInterval, yamlx.Duration(250*time.Millisecond)).D(),
	}
	var err error
	if s.KubeDir, err = e.abs("kubernetes_dir", p.KubernetesDir, DefaultKubernetesDir); err != nil {
		return nil, err
	}
	if s.ParkDir, err = e.abs("park_dir", p.ParkDir, path.Join(s.KubeDir, "kplay-parked")); err != nil {
		return nil, err
	}
	if s.ParkDir == path.Join(s.KubeDir, "manifests") || strings.HasPrefix(s.ParkDir, path.Join(s.KubeDir, "manifests")+"/") {
		return nil, e.errorf("park_dir", "must not be inside the manifests directory (kubelet would run what is parked)")
	}
	if s.Method, err = e.text("method", p.Method, MethodManifest); err != nil {
		return nil, err
	}
	if s.Restart, err = e.text("restart", p.Restart, RestartNeeded); err != nil {
		return nil, err
	}
	if s.ServeCheck, err = e.text("serve_check", p.ServeCheck, ServeCheckSSH); err != nil {
		return nil, err
	}
	switch {
	case s.Method != MethodManifest && s.Method != MethodCrictl:
		return nil, e.errorf("method", "must be %s or %s, not %q", MethodManifest, MethodCrictl, s.Method)
	case s.Restart != RestartNeeded && s.Restart != RestartAlways:
		return nil, e.errorf("restart", "must be %s or %s, not %q", RestartNeeded, RestartAlways, s.Restart)
	case !slices.Contains([]string{ServeCheckSSH, ServeCheckController, ServeCheckHost, ServeCheckNone}, s.ServeCheck):
		return nil, e.errorf("serve_check", "must be ssh, controller, host or none, not %q", s.ServeCheck)
	}
	if s.Address, err = e.text("address", p.Address, ""); err != nil {
		return nil, err
	}
	if s.Crictl, err = e.text("crictl", p.Crictl, "crictl"); err != nil {
		return nil, err
	}
	for key, d := range map[string]time.Duration{"down_timeout": s.DownTimeout, "up_timeout": s.UpTimeout, "poll_interval": s.PollInterval} {
		if d <= 0 {
			return nil, e.errorf(key, "must be more than 0")
		}
	}
	if s.Components, err = restartComponents(e, p.Components); err != nil {
		return nil, err
	}
	return s, nil
}

// restartComponents validates the components: list.
func restartComponents(e paramExpander, list []string) ([]string, error) {
	comps, err := e.list("components", list)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, c := range comps {
		if _, ok := componentByName(c); !ok {
			return nil, e.errorf("components", "unknown component %q (known: etcd, kube-apiserver, kube-controller-manager, kube-scheduler)", c)
		}
		if seen[c] {
			return nil, e.errorf("components", "%q is listed twice", c)
		}
		seen[c] = true
	}
	if len(comps) == 0 {
		return nil, nil
	}
	return comps, nil
}

// names are the components to consider.
func (s *RestartAPIServer) names() []string {
	if s.Components != nil {
		return s.Components
	}
	var n []string
	for _, c := range knownComponents() {
		n = append(n, c.name)
	}
	return n
}

func (s *RestartAPIServer) locator() podLocator {
	return podLocator{kubeDir: s.KubeDir, address: s.Address}
}

func (s *RestartAPIServer) prober() prober {
	return prober{kubeDir: s.KubeDir, interval: s.PollInterval}
}

func (s *RestartAPIServer) served() servedChecker {
	return servedChecker{how: s.ServeCheck, timeout: s.UpTimeout, interval: s.PollInterval}
}

func (s *RestartAPIServer) restarter(t *Target) restarter {
	return restarter{parkDir: path.Join(s.ParkDir, t.RunID), down: s.DownTimeout, up: s.UpTimeout, unparkBackTimeout: time.Minute}
}

// PodRestart is what restart_apiserver did with one component (its JSON data).
type PodRestart struct {
	Name string `json:"name"`
	// Restarted is true when kplay restarted it.
	Restarted bool `json:"restarted"`
	// Reason says why it was, or was not, restarted.
	Reason    string `json:"reason"`
	PIDBefore string `json:"pid_before,omitempty"`
	PIDAfter  string `json:"pid_after,omitempty"`
	// DownSeconds is from moving its manifest out until its process was gone.
	DownSeconds float64 `json:"down_seconds,omitempty"`
	// UpSeconds is from putting the manifest back until a new process ran.
	UpSeconds float64 `json:"up_seconds,omitempty"`
	// HealthySeconds is from the new process until it answered healthy.
	HealthySeconds float64 `json:"healthy_seconds,omitempty"`
	// TotalSeconds is from moving the manifest out until healthy.
	TotalSeconds float64 `json:"total_seconds,omitempty"`
	// Served are the certificates its ports serve, checked against the disk.
	Served []string `json:"served,omitempty"`

	c       component
	healthy bool // it was restarted and came back healthy
}

// Plan says which components would be restarted, and why, read-only.
func (s *RestartAPIServer) Plan(ctx context.Context, t *Target) (Plan, error) {
	comps, err := s.locator().discover(ctx, t, s.names(), s.Components != nil)
	if err != nil {
		return Plan{}, err
	}
	var hc *hostCerts
	if s.ServeCheck != ServeCheckNone {
		if hc, err = readCerts(ctx, t, probeOpts{kubeDir: s.KubeDir, kubeletPKI: DefaultKubeletPKI}, t.Now()); err != nil {
			return Plan{}, err
		}
	}
	prs, err := s.decide(ctx, t, comps, hc)
	if err != nil {
		return Plan{}, err
	}
	var restart []string
	p := Plan{Data: prs}
	for _, pr := range prs {
		verb := "would keep"
		if pr.Restarted {
			verb = "would restart"
			restart = append(restart, pr.Name)
		}
		p.Details = append(p.Details, fmt.Sprintf("%s %s: %s", verb, pr.Name, pr.Reason))
	}
	p.WouldChange = len(restart) > 0
	p.Summary = "nothing to restart: every component runs on the files on disk"
	if len(restart) > 0 {
		p.Summary = "would restart " + strings.Join(restart, ", ") + " (health-gated; etcd alone and first if at all, the others together)"
	}
	return p, nil
}

// Apply restarts the components that need it and checks them.
func (s *RestartAPIServer) Apply(ctx context.Context, t *Target) (Result, error) {
	if _, err := backupDir(s.ParkDir, t.RunID); err != nil {
		return Result{}, err
	}
	comps, err := s.locator().discover(ctx, t, s.names(), s.Components != nil)
	if err != nil {
		return Result{}, err
	}
	var hc *hostCerts
	if s.ServeCheck != ServeCheckNone {
		if hc, err = readCerts(ctx, t, probeOpts{kubeDir: s.KubeDir, kubeletPKI: DefaultKubeletPKI}, t.Now()); err != nil {
			return Result{}, err
		}
	}
	// The gate: this host's etcd member must be healthy before anything
	// here goes down (after an expired cluster's renewal, it is the
	// member rejoining its peers).
	for _, c := range comps {
		if c.name == "etcd" {
			if err := s.prober().waitHealthy(ctx, t, c, s.UpTimeout); err != nil {
				return Result{}, fmt.Errorf("before restarting anything: this host's etcd member is not healthy, so nothing was restarted: %w", err)
			}
		}
	}
	prs, err := s.decide(ctx, t, comps, hc)
	if err != nil {
		return Result{}, err
	}
	r := Result{Data: prs}
	err = s.restartAll(ctx, t, prs, hc, &r)
	r.Details = restartDetails(prs)
	return r, err
}

// restartAll restarts, in two rounds, what decide chose: etcd alone first
// (if at all), then every other component together; each round is gated
// on health, and the apiserver on the certificate it serves.
func (s *RestartAPIServer) restartAll(ctx context.Context, t *Target, prs []*PodRestart, hc *hostCerts, r *Result) error {
	var first, rest []*PodRestart
	var all []component
	for _, pr := range prs {
		if !pr.Restarted {
			continue
		}
		all = append(all, pr.c)
		if pr.Name == "etcd" {
			first = append(first, pr)
		} else {
			rest = append(rest, pr)
		}
	}
	var kept []string
	for _, pr := range prs {
		if !pr.Restarted {
			kept = append(kept, pr.Name)
		}
	}
	if len(all) == 0 {
		r.Message = "nothing to restart: " + strings.Join(kept, ", ") + " already run on the certificates on disk"
		return s.checkKept(ctx, t, prs, hc)
	}
	r.Changed = true
	if s.Method == MethodManifest {
		r.Undo = s.restarter(t).unparkUndo(all)
	}
	t.Restarts.record(s, prs)
	var done []string
	for _, round := range [][]*PodRestart{first, rest} {
		if len(round) == 0 {
			continue
		}
		if err := s.restartRound(ctx, t, round, hc); err != nil {
			if len(done) > 0 {
				err = fmt.Errorf("%w (already restarted: %s)", err, strings.Join(done, ", "))
			}
			return err
		}
		for _, pr := range round {
			done = append(done, pr.Name)
		}
	}
	r.Message = "restarted " + strings.Join(done, ", ")
	if len(kept) > 0 {
		r.Message += "; not restarted (already on the certificates on disk): " + strings.Join(kept, ", ")
	}
	return s.checkKept(ctx, t, prs, hc)
}

// restartRound restarts some components together and waits, in parallel,
// until each is healthy and serves the certificate on disk.
func (s *RestartAPIServer) restartRound(ctx context.Context, t *Target, round []*PodRestart, hc *hostCerts) error {
	start := time.Now()
	var comps []component
	pids := map[string]string{}
	for _, pr := range round {
		comps = append(comps, pr.c)
		pids[pr.c.comm()] = pr.PIDBefore
	}
	var ev map[string]*podEvents
	var err error
	if s.Method == MethodCrictl {
		err = s.restartCrictl(ctx, t, comps)
	} else {
		ev, err = s.restarter(t).restart(ctx, t, comps, pids)
	}
	if err != nil {
		return fmt.Errorf("restarting %s: %w", podNames(round), err)
	}
	upAt := time.Now()
	var lastUp time.Time
	for _, e := range ev {
		if e.up.After(lastUp) {
			lastUp = e.up
		}
	}
	var mu sync.Mutex
	var g errgroup.Group
	for _, pr := range round {
		g.Go(func() error {
			healthyAt, err := s.gate(ctx, t, pr, hc)
			mu.Lock()
			defer mu.Unlock()
			pr.timings(ev[pr.Name], start, lastUp, upAt, healthyAt)
			if err != nil {
				return fmt.Errorf("restarting %s: %w", pr.Name, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// gate waits until a restarted component is healthy, and then until it
// serves what is on disk; it returns when it became healthy.
func (s *RestartAPIServer) gate(ctx context.Context, t *Target, pr *PodRestart, hc *hostCerts) (time.Time, error) {
	if err := s.prober().waitHealthy(ctx, t, pr.c, s.UpTimeout); err != nil {
		return time.Time{}, err
	}
	healthyAt := time.Now()
	if hc == nil || pr.c.servedCert == "" {
		return healthyAt, nil
	}
	pr.Served = nil
	for _, ep := range pr.c.served {
		msg, err := s.served().compareRetry(ctx, t, pr.Name, ep, hc)
		if isNotMade(err) {
			msg, err = err.Error(), nil // reported, never a failure by itself
		}
		if err != nil {
			return healthyAt, err
		}
		pr.Served = append(pr.Served, msg)
	}
	return healthyAt, nil
}

// timings fills the phases: down and up from the host's events (its
// clock), healthy from the pod's new process (the host's clock until the
// script returned at upAt, the controller's after) until healthyAt.
func (pr *PodRestart) timings(e *podEvents, start, lastUp, upAt, healthyAt time.Time) {
	pr.healthy = !healthyAt.IsZero()
	if e == nil || e.parked.IsZero() {
		// No host events (method crictl): the controller's clock only.
		if pr.healthy {
			pr.TotalSeconds = round1(healthyAt.Sub(start))
		}
		return
	}
	pr.PIDAfter = e.pid
	if !e.down.IsZero() {
		pr.DownSeconds = round1(e.down.Sub(e.parked))
	}
	if !e.up.IsZero() && !e.back.IsZero() {
		pr.UpSeconds = round1(e.up.Sub(e.back))
	}
	if !healthyAt.IsZero() && !e.up.IsZero() {
		healthy := lastUp.Sub(e.up) + healthyAt.Sub(upAt)
		pr.HealthySeconds = round1(healthy)
		pr.TotalSeconds = round1(e.up.Sub(e.parked) + healthy)
	}
}

// round1 is d in seconds, to a tenth.
func round1(d time.Duration) float64 {
	return float64(d.Round(100*time.Millisecond)) / float64(time.Second)
}

// checkKept verifies the components that were not restarted: the
// apiserver must serve the certificate on disk (it reloads its serving
// certificate within about a minute; etcd was checked by decide).
func (s *RestartAPIServer) checkKept(ctx context.Context, t *Target, prs []*PodRestart, hc *hostCerts) error {
	for _, pr := range prs {
		if pr.Restarted || hc == nil || pr.c.reloads || pr.c.servedCert == "" {
			continue
		}
		pr.Served = nil
		for _, ep := range pr.c.served {
			msg, err := s.served().compareRetry(ctx, t, pr.Name, ep, hc)
			if isNotMade(err) {
				msg, err = err.Error(), nil // reported, never a failure by itself
			}
			if err != nil {
				return fmt.Errorf("%s was not restarted (%s), but: %w", pr.Name, pr.Reason, err)
			}
			pr.Served = append(pr.Served, msg)
		}
	}
	return nil
}

// restartDetails are the report lines: one per component.
func restartDetails(prs []*PodRestart) []string {
	var d []string
	for _, pr := range prs {
		switch {
		case pr.Restarted && pr.healthy:
			line := fmt.Sprintf("%s restarted and healthy in %.1fs", pr.Name, pr.TotalSeconds)
			if pr.HealthySeconds > 0 {
				line += fmt.Sprintf(" (stopped in %.1fs, started in %.1fs, healthy %.1fs later)", pr.DownSeconds, pr.UpSeconds, pr.HealthySeconds)
			}
			if len(pr.Served) > 0 {
				line += "; " + strings.Join(pr.Served, "; ")
			}
			d = append(d, line)
		case pr.Restarted:
			d = append(d, fmt.Sprintf("%s: restart needed: %s", pr.Name, pr.Reason))
		default:
			d = append(d, fmt.Sprintf("%s not restarted: %s", pr.Name, pr.Reason))
		}
	}
	return d
}

// podNames joins the names of prs.
func podNames(prs []*PodRestart) string {
	var n []string
	for _, pr := range prs {
		n = append(n, pr.Name)
	}
	return strings.Join(n, ", ")
}
