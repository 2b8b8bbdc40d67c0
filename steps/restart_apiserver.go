package steps

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kplay/kplay/internal/yamlx"
	"github.com/kplay/kplay/remote"
)

// restartParams is the YAML form of a restart_apiserver step.
type restartParams struct {
	Components    []string        `yaml:"components"`
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

// Restart methods and served-certificate checks.
const (
	// MethodManifest moves the static pod manifest out and back.
	MethodManifest = "manifest"
	// MethodCrictl stops the container with crictl and lets kubelet start a new one.
	MethodCrictl = "crictl"
	// ServeCheckController compares the served certificate by a TLS handshake from the controller.
	ServeCheckController = "controller"
	// ServeCheckHost compares it by `openssl s_client` run on the host.
	ServeCheckHost = "host"
	// ServeCheckNone skips the comparison.
	ServeCheckNone = "none"
)

// restartedFact records which components restart_apiserver restarted (or
// tried to) in this run, and how.
type restartedFact struct {
	step       RestartAPIServer
	components []string
}

// restartAgain restarts, with the same settings, the components
// restart_apiserver restarted in this run; it does nothing if none were.
func restartAgain(ctx context.Context, t *Target) (string, error) {
	v, ok := t.Facts.Get(factRestarted)
	if !ok {
		return "", nil
	}
	f, ok := v.(restartedFact)
	if !ok || len(f.components) == 0 {
		return "", nil
	}
	s := f.step
	s.Components = f.components
	if _, err := s.Apply(ctx, t); err != nil {
		return "", err
	}
	return strings.Join(f.components, ", "), nil
}

// componentSpec is a static pod kplay knows how to restart and check.
type componentSpec struct {
	name        string
	defaultPort int
	// portFlag is the flag whose value (or URL) gives the port.
	portFlag string
	// servedCert is the kubeadm name of the certificate it serves, or "".
	servedCert string
}

// knownComponents lists the control-plane static pods, in default restart order
// (etcd first, so the apiserver's health gate also covers it).
func knownComponents() []componentSpec {
	return []componentSpec{
		{"etcd", 2379, "--listen-client-urls", "etcd-server"},
		{"kube-apiserver", 6443, "--secure-port", "apiserver"},
		{"kube-controller-manager", 10257, "--secure-port", ""},
		{"kube-scheduler", 10259, "--secure-port", ""},
	}
}

// RestartAPIServer restarts control-plane static pods one at a time and
// checks that the apiserver serves the certificate on disk.
type RestartAPIServer struct {
	// Components to restart, in order; nil means every known one whose manifest exists.
	Components []string
	// Method is manifest or crictl.
	Method string
	// Address overrides the address the apiserver is reached at.
	Address string
	// DownTimeout bounds the wait for a component to stop.
	DownTimeout time.Duration
	// UpTimeout bounds the wait for it to be healthy again.
	UpTimeout time.Duration
	// PollInterval is the time between probes.
	PollInterval time.Duration
	// ServeCheck is controller, host or none.
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
		PollInterval: dur(p.PollInterval, yamlx.Duration(time.Second)).D(),
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
	if s.Method != MethodManifest && s.Method != MethodCrictl {
		return nil, e.errorf("method", "must be %s or %s, not %q", MethodManifest, MethodCrictl, s.Method)
	}
	if s.ServeCheck, err = e.text("serve_check", p.ServeCheck, ServeCheckController); err != nil {
		return nil, err
	}
	if !slices.Contains([]string{ServeCheckController, ServeCheckHost, ServeCheckNone}, s.ServeCheck) {
		return nil, e.errorf("serve_check", "must be controller, host or none, not %q", s.ServeCheck)
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
	comps, err := e.list("components", p.Components)
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
	if len(comps) > 0 {
		s.Components = comps
	}
	return s, nil
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

// discover reads the manifests of the components to restart, with one command.
func (s *RestartAPIServer) discover(ctx context.Context, t *Target) ([]component, error) {
	names := s.Components
	if names == nil {
		for _, c := range knownComponents() {
			names = append(names, c.name)
		}
	}
	m := newMarker()
	var b strings.Builder
	fmt.Fprintf(&b, "d=%s; m=%s\n", remote.Quote(path.Join(s.KubeDir, "manifests")), remote.Quote(m))
	for _, n := range names {
		fmt.Fprintf(&b, "f=\"$d\"/%s.yaml; if [ -f \"$f\" ]; then printf '%%s file %%s\\n' \"$m\" %s; cat \"$f\"; fi\n", remote.Quote(n), remote.Quote(n))
	}
	out, err := t.Run(ctx, sh(b.String()))
	if err != nil {
		return nil, fmt.Errorf("reading static pod manifests in %s: %w", path.Join(s.KubeDir, "manifests"), err)
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
	if f, ok := found["kube-apiserver"]; ok {
		if fl, err := manifestFlags(f); err == nil && fl["--advertise-address"] != "" {
			defaultAddr = fl["--advertise-address"]
		}
	}
	if s.Address != "" {
		defaultAddr = hostOnly(s.Address)
	}
	var comps []component
	for _, n := range names {
		spec, _ := componentByName(n)
		data, ok := found[n]
		mf := path.Join(s.KubeDir, "manifests", n+".yaml")
		if !ok {
			if s.Components != nil {
				return nil, fmt.Errorf("component %s: manifest %s not found", n, mf)
			}
			continue
		}
		fl, err := manifestFlags(data)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", mf, err)
		}
		c := component{componentSpec: spec, manifest: mf, port: spec.defaultPort, address: defaultAddr}
		if v := fl[spec.portFlag]; v != "" {
			if strings.Contains(v, "://") {
				if _, p := urlHostPort(v); p > 0 {
					c.port = p
				}
			} else if p, err := strconv.Atoi(v); err == nil && p > 0 {
				c.port = p
			}
		}
		if n == "etcd" && s.Address == "" {
			if h, _ := urlHostPort(fl["--advertise-client-urls"]); h != "" {
				c.address = h
			}
		}
		comps = append(comps, c)
	}
	if len(comps) == 0 {
		return nil, fmt.Errorf("no control-plane static pod manifests in %s", path.Join(s.KubeDir, "manifests"))
	}
	return comps, nil
}

// Plan lists the components that would be restarted and what the apiserver serves now.
func (s *RestartAPIServer) Plan(ctx context.Context, t *Target) (Plan, error) {
	comps, err := s.discover(ctx, t)
	if err != nil {
		return Plan{}, err
	}
	var names []string
	p := Plan{WouldChange: true}
	for _, c := range comps {
		names = append(names, c.name)
		how := fmt.Sprintf("move %s to %s, wait until port %d is closed (≤ %s), move it back", c.manifest, s.parkDir(t), c.port, yamlx.Duration(s.DownTimeout))
		if s.Method == MethodCrictl {
			how = "crictl stop its container and wait for kubelet to start a new one"
		}
		p.Details = append(p.Details, fmt.Sprintf("%s: %s, wait until healthy (≤ %s)", c.name, how, yamlx.Duration(s.UpTimeout)))
	}
	p.Summary = "would restart, one at a time: " + strings.Join(names, ", ")
	if s.ServeCheck != ServeCheckNone {
		hc, err := readCerts(ctx, t, probeOpts{kubeDir: s.KubeDir, kubeletPKI: DefaultKubeletPKI}, t.Now())
		if err != nil {
			return p, err
		}
		for _, c := range comps {
			if c.servedCert == "" {
				continue
			}
			if msg, err := s.compareServed(ctx, t, c, hc); err != nil {
				p.Details = append(p.Details, fmt.Sprintf("%s now: %v", c.name, err))
			} else {
				p.Details = append(p.Details, fmt.Sprintf("%s now: %s", c.name, msg))
			}
		}
	}
	return p, nil
}

// parkDir is this run's directory for moved-out manifests.
func (s *RestartAPIServer) parkDir(t *Target) string { return path.Join(s.ParkDir, t.RunID) }

// Apply restarts each component in turn and checks it.
func (s *RestartAPIServer) Apply(ctx context.Context, t *Target) (Result, error) {
	if _, err := backupDir(s.ParkDir, t.RunID); err != nil {
		return Result{}, err
	}
	comps, err := s.discover(ctx, t)
	if err != nil {
		return Result{}, err
	}
	var hc *hostCerts
	if s.ServeCheck != ServeCheckNone {
		if hc, err = readCerts(ctx, t, probeOpts{kubeDir: s.KubeDir, kubeletPKI: DefaultKubeletPKI}, t.Now()); err != nil {
			return Result{}, err
		}
	}
	r := Result{Changed: true}
	if s.Method == MethodManifest {
		r.Undo = s.unparkUndo(t, comps)
	}
	var done, attempted []string
	for _, c := range comps {
		start := time.Now()
		attempted = append(attempted, c.name)
		// Recorded before the attempt: renew_certs' undo restarts these again
		// after restoring the old certificates, so what runs matches the disk.
		t.Facts.Set(factRestarted, restartedFact{step: *s, components: slices.Clone(attempted)})
		var err error
		if s.Method == MethodCrictl {
			err = s.restartCrictl(ctx, t, c)
		} else {
			err = s.restartManifest(ctx, t, c)
		}
		if err == nil {
			err = s.waitHealthy(ctx, t, c)
		}
		msg := ""
		if err == nil && hc != nil && c.servedCert != "" {
			msg, err = s.compareServedRetry(ctx, t, c, hc)
		}
		if err != nil {
			if len(done) > 0 {
				err = fmt.Errorf("%w (already restarted: %s)", err, strings.Join(done, ", "))
			}
			return r, fmt.Errorf("restarting %s: %w", c.name, err)
		}
		done = append(done, c.name)
		line := fmt.Sprintf("%s restarted and healthy in %s", c.name, time.Since(start).Round(100*time.Millisecond))
		if msg != "" {
			line += "; " + msg
		}
		r.Details = append(r.Details, line)
	}
	r.Message = "restarted " + strings.Join(done, ", ")
	return r, nil
}

// parkCmd moves a manifest out of the manifests directory.
func (s *RestartAPIServer) parkCmd(t *Target, c component) string {
	dst := path.Join(s.parkDir(t), c.name+".yaml")
	return sh(fmt.Sprintf("set -eu\nsrc=%s; dir=%s; dst=%s\n", remote.Quote(c.manifest), remote.Quote(s.parkDir(t)), remote.Quote(dst)) +
		`[ ! -e "$dst" ] || { echo "$dst already exists; not overwriting it" >&2; exit 3; }
mkdir -p "$dir"
mv "$src" "$dst"
`)
}

// unparkCmd puts a parked manifest back, atomically (hidden temp file, then
// rename), unless a manifest of that name is already in place.
func unparkCmd(parked, manifest string) string {
	return sh(fmt.Sprintf("set -eu\nsrc=%s; dst=%s\n", remote.Quote(parked), remote.Quote(manifest)) +
		`[ -f "$src" ] || exit 0
if [ -e "$dst" ]; then echo "$dst exists; leaving the parked copy $src" >&2; exit 3; fi
tmp="$(dirname "$dst")/.$(basename "$dst").kplay-tmp"
cp -a "$src" "$tmp"
mv -f "$tmp" "$dst"
rm -f "$src"
rmdir "$(dirname "$src")" 2>/dev/null && rmdir "$(dirname "$(dirname "$src")")" 2>/dev/null || true
echo moved-back
`)
}

// restartManifest moves the manifest out, waits until the component is
// down, and moves it back. Whatever fails, the manifest is put back.
func (s *RestartAPIServer) restartManifest(ctx context.Context, t *Target, c component) (err error) {
	parked := path.Join(s.parkDir(t), c.name+".yaml")
	// Put it back even when ctx is cancelled, and even when the move out
	// reported an error: a cancel can land after mv ran on the host but
	// before its exit status arrived (unparking a manifest that never
	// moved is a no-op).
	defer func() {
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		out, uerr := t.Run(bctx, unparkCmd(parked, c.manifest))
		switch {
		case uerr != nil:
			err = errors.Join(err, fmt.Errorf("putting %s back from %s FAILED: %w; by hand: mv %s %s",
				c.manifest, parked, uerr, remote.Quote(parked), remote.Quote(c.manifest)))
		case err != nil && strings.Contains(string(out), "moved-back"):
			err = fmt.Errorf("%w; the manifest was moved back to %s", err, c.manifest)
		case err != nil:
			err = fmt.Errorf("%w; the manifest is in place at %s", err, c.manifest)
		}
	}()
	if _, err := t.Run(ctx, s.parkCmd(t, c)); err != nil {
		return fmt.Errorf("moving %s to %s: %w", c.manifest, parked, err)
	}
	return poll(ctx, s.DownTimeout, s.PollInterval, fmt.Sprintf("%s to stop (port %d closed) after its manifest was moved out", c.name, c.port),
		func(ctx context.Context) (bool, string, error) {
			up, err := listening(ctx, t, c.port)
			if err != nil {
				return false, "", err
			}
			return !up, fmt.Sprintf("port %d still listening", c.port), nil
		})
}

// crictlIDs returns the running container ids of a component.
func (s *RestartAPIServer) crictlIDs(ctx context.Context, t *Target, c component) ([]string, error) {
	out, err := t.Run(ctx, remote.QuoteAll(s.Crictl, "ps", "-q", "--state", "running", "--name", "^"+c.name+"$"))
	if err != nil {
		return nil, fmt.Errorf("%s ps: %w", s.Crictl, err)
	}
	return strings.Fields(string(out)), nil
}

// restartCrictl stops the component's container and waits for kubelet to start a new one.
func (s *RestartAPIServer) restartCrictl(ctx context.Context, t *Target, c component) error {
	old, err := s.crictlIDs(ctx, t, c)
	if err != nil {
		return err
	}
	if len(old) == 0 {
		return fmt.Errorf("no running container named %s (crictl ps)", c.name)
	}
	if _, err := t.Run(ctx, remote.QuoteAll(append([]string{s.Crictl, "stop"}, old...)...)); err != nil {
		return fmt.Errorf("%s stop %s: %w", s.Crictl, strings.Join(old, " "), err)
	}
	return poll(ctx, s.DownTimeout+s.UpTimeout, s.PollInterval, fmt.Sprintf("kubelet to start a new %s container", c.name),
		func(ctx context.Context) (bool, string, error) {
			ids, err := s.crictlIDs(ctx, t, c)
			if err != nil {
				return false, "", err
			}
			for _, id := range ids {
				if !slices.Contains(old, id) {
					return true, "", nil
				}
			}
			return false, fmt.Sprintf("running: %v", ids), nil
		})
}

// waitHealthy waits for the component's port and then for its health: the
// apiserver's /readyz (which covers its etcd connection, unlike /livez) and
// etcd's /health (a leader and a quorum read: the member has rejoined), so
// that the next component, and the next batch of hosts, start only on a
// healthy node.
func (s *RestartAPIServer) waitHealthy(ctx context.Context, t *Target, c component) error {
	base := "https://" + net.JoinHostPort(c.address, strconv.Itoa(c.port))
	what := fmt.Sprintf("%s to listen on port %d", c.name, c.port)
	var check func(ctx context.Context) (bool, string, error)
	switch c.name {
	case "kube-apiserver":
		u := base + "/readyz"
		what = fmt.Sprintf("%s to answer 200 on %s", c.name, u)
		check = func(ctx context.Context) (bool, string, error) {
			code, _, err := s.hostGet(ctx, t, u, "apiserver-kubelet-client", "")
			if err != nil {
				return false, "", err
			}
			return code == "200", "readyz answered " + code, nil
		}
	case "etcd":
		u := base + "/health"
		what = fmt.Sprintf("%s to report {\"health\":\"true\"} on %s", c.name, u)
		check = func(ctx context.Context) (bool, string, error) {
			code, body, err := s.hostGet(ctx, t, u, "etcd/healthcheck-client", "etcd/ca.crt")
			if err != nil {
				return false, "", err
			}
			if code == "no-cert" {
				// Not kubeadm's layout: the open port is all we can check.
				return true, "", nil
			}
			return code == "200" && etcdHealthy(body), fmt.Sprintf("health answered %s %s", code, strings.TrimSpace(body)), nil
		}
	}
	return poll(ctx, s.UpTimeout, s.PollInterval, what, func(ctx context.Context) (bool, string, error) {
		up, err := listening(ctx, t, c.port)
		if err != nil || !up {
			return false, fmt.Sprintf("port %d not listening", c.port), err
		}
		if check == nil {
			return true, "", nil
		}
		return check(ctx)
	})
}

// etcdHealthy reports whether an etcd /health body says healthy.
func etcdHealthy(body string) bool {
	var h struct {
		Health string `json:"health"`
	}
	return json.Unmarshal([]byte(body), &h) == nil && h.Health == "true"
}

// hostGet fetches u with curl on the host and returns the HTTP code
// ("error" if the request failed) and the body (cut to 4 KiB). It
// authenticates with the kubeadm client certificate pki/NAME.crt and .key
// where both exist (the key stays on the host); if ca is set, the server must
// verify against pki/CA, and without the client certificate the code is
// "no-cert" and nothing is fetched.
func (s *RestartAPIServer) hostGet(ctx context.Context, t *Target, u, name, ca string) (code, body string, err error) {
	crt := path.Join(s.KubeDir, "pki", name+".crt")
	key := path.Join(s.KubeDir, "pki", name+".key")
	caPath := ""
	if ca != "" {
		caPath = path.Join(s.KubeDir, "pki", ca)
	}
	m := newMarker()
	cmd := sh(fmt.Sprintf("u=%s; c=%s; k=%s; ca=%s; m=%s\n", remote.Quote(u), remote.Quote(crt), remote.Quote(key), remote.Quote(caPath), remote.Quote(m)) +
		`command -v curl >/dev/null 2>&1 || { echo "curl is not installed on the host" >&2; exit 127; }
set --
if [ -r "$c" ] && [ -r "$k" ]; then set -- --cert "$c" --key "$k"
elif [ -n "$ca" ]; then printf '%s no-cert' "$m"; exit 0; fi
if [ -n "$ca" ]; then set -- "$@" --cacert "$ca"; else set -- "$@" -k; fi
curl -sS -w "$m%{http_code}" --max-time 5 "$@" "$u" 2>/dev/null || true
`)
	out, err := t.Run(ctx, cmd)
	if err != nil {
		if st, ok := remote.ExitStatus(err); (ok && st == 127) || ctx.Err() != nil {
			// Not installed; or cut off by the deadline, which must not
			// replace the last real answer in the timeout message.
			return "", "", fmt.Errorf("checking %s: %w", u, err)
		}
		return "error", "", nil
	}
	b, c, ok := strings.Cut(string(out), m)
	if !ok {
		return "error", "", nil
	}
	if c = strings.TrimSpace(c); c == "000" || c == "" {
		c = "error"
	}
	if len(b) > 4096 {
		b = b[:4096]
	}
	return c, b, nil
}

// listening reports whether something listens on TCP port on the host, from /proc/net/tcp{,6}.
func listening(ctx context.Context, t *Target, port int) (bool, error) {
	out, err := t.Run(ctx, "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null || true")
	if err != nil {
		return false, fmt.Errorf("reading /proc/net/tcp: %w", err)
	}
	return procNetListening(out, port), nil
}

// procNetListening parses /proc/net/tcp content for a LISTEN socket on port.
func procNetListening(out []byte, port int) bool {
	want := fmt.Sprintf(":%04X", port)
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 3 && f[3] == "0A" && strings.HasSuffix(f[1], want) {
			return true
		}
	}
	return false
}

// poll calls f every interval until it reports done, f fails, or timeout passes.
func poll(ctx context.Context, timeout, interval time.Duration, what string, f func(context.Context) (bool, string, error)) error {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := ""
	for {
		done, state, err := f(pctx)
		if err != nil && pctx.Err() == nil {
			return err
		}
		if done && err == nil {
			return nil
		}
		// An attempt cut off by the deadline (err set) says nothing about
		// the component: keep the last real answer for the message.
		if state != "" && err == nil {
			last = state
		}
		select {
		case <-pctx.Done():
			if ctx.Err() != nil {
				return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
			}
			return fmt.Errorf("timed out after %s waiting for %s (last: %s)", timeout, what, last)
		case <-time.After(interval):
		}
	}
}

// compareServedRetry retries compareServed while the port refuses connections.
func (s *RestartAPIServer) compareServedRetry(ctx context.Context, t *Target, c component, hc *hostCerts) (string, error) {
	var msg string
	var mismatch error
	err := poll(ctx, s.UpTimeout, s.PollInterval, fmt.Sprintf("a TLS handshake with %s", c.name), func(ctx context.Context) (bool, string, error) {
		m, err := s.compareServed(ctx, t, c, hc)
		var se *servedError
		if errors.As(err, &se) {
			mismatch = err
			return true, "", nil
		}
		if err != nil {
			return false, err.Error(), nil
		}
		msg = m
		return true, "", nil
	})
	if mismatch != nil {
		return "", mismatch
	}
	return msg, err
}

// servedError is a definite answer that the served certificate is wrong.
type servedError struct{ msg string }

// Error returns the message.
func (e *servedError) Error() string { return e.msg }

// compareServed fetches the certificate the component serves and compares it
// with the one on disk; it must also chain to the host's CA.
func (s *RestartAPIServer) compareServed(ctx context.Context, t *Target, c component, hc *hostCerts) (string, error) {
	disk, ok := hc.find(c.servedCert)
	if !ok {
		return "", fmt.Errorf("%s: certificate %s not found on disk", c.name, c.servedCert)
	}
	addr := net.JoinHostPort(c.address, strconv.Itoa(c.port))
	var chain []*x509.Certificate
	var err error
	if s.ServeCheck == ServeCheckHost {
		chain, err = servedChainFromHost(ctx, t, addr)
	} else {
		chain, err = servedChain(ctx, addr)
	}
	if err != nil {
		return "", err
	}
	served := chain[0]
	fp := fingerprint(served.Raw)
	if fp != disk.info.SHA256 {
		return "", &servedError{fmt.Sprintf("%s on %s serves certificate sha256 %s (not after %s), but %s on disk is sha256 %s (not after %s): it was not restarted onto the new certificate",
			c.name, addr, fp[:16], served.NotAfter.UTC().Format(time.RFC3339), disk.info.Path, disk.info.SHA256[:16], disk.info.NotAfter.Format(time.RFC3339))}
	}
	_, cas := hc.caPool()
	roots := x509.NewCertPool()
	for _, ca := range cas[disk.info.CA] {
		roots.AddCert(ca)
	}
	inter := x509.NewCertPool()
	for _, x := range chain[1:] {
		inter.AddCert(x)
	}
	if _, err := served.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: hc.probe.hostNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return "", &servedError{fmt.Sprintf("%s on %s serves a certificate that does not verify against CA %s: %v", c.name, addr, disk.info.CA, err)}
	}
	return fmt.Sprintf("serves %s (sha256 %s…, not after %s)", disk.info.Path, fp[:16], served.NotAfter.UTC().Format(time.RFC3339)), nil
}

// servedChain does a TLS handshake from the controller and returns the
// server's certificates. Verification is done by the caller against the
// host's CA; a server that then rejects our lack of a client certificate is fine.
func servedChain(ctx context.Context, addr string) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	cfg := &tls.Config{
		InsecureSkipVerify: true, // only to capture the chain; verified against the host CA by the caller
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			for _, r := range raw {
				c, err := x509.ParseCertificate(r)
				if err != nil {
					return err
				}
				chain = append(chain, c)
			}
			return nil
		},
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: cfg}
	hctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := d.DialContext(hctx, "tcp", addr)
	if conn != nil {
		conn.Close()
	}
	if len(chain) > 0 {
		return chain, nil
	}
	if err == nil {
		err = errors.New("no certificate")
	}
	return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
}

// servedChainFromHost runs `openssl s_client` on the host and parses the
// certificates it prints (public data only).
func servedChainFromHost(ctx context.Context, t *Target, addr string) ([]*x509.Certificate, error) {
	cmd := sh("a=" + remote.Quote(addr) + "\n" +
		`command -v openssl >/dev/null 2>&1 || { echo "openssl is not installed on the host" >&2; exit 127; }
echo | timeout 15 openssl s_client -connect "$a" -showcerts 2>/dev/null | sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p'
`)
	out, err := t.Run(ctx, cmd)
	if err != nil {
		return nil, fmt.Errorf("openssl s_client -connect %s on the host: %w", addr, err)
	}
	var chain []*x509.Certificate
	for {
		var b *pem.Block
		b, out = pem.Decode(out)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate served on %s: %w", addr, err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("no TLS certificate served on %s (seen from the host)", addr)
	}
	return chain, nil
}

// unparkUndo puts back any manifest still parked.
func (s *RestartAPIServer) unparkUndo(t *Target, comps []component) *Undo {
	var hints []string
	for _, c := range comps {
		hints = append(hints, "mv "+remote.Quote(path.Join(s.parkDir(t), c.name+".yaml"))+" "+remote.Quote(c.manifest))
	}
	dir := s.parkDir(t)
	return &Undo{
		Desc:    "put back any static pod manifest still parked in " + dir,
		Restore: "on the host, for each file in " + dir + ": " + strings.Join(hints, "; "),
		Fn: func(ctx context.Context, t *Target) error {
			var errs []error
			for _, c := range comps {
				if _, err := t.Run(ctx, unparkCmd(path.Join(dir, c.name+".yaml"), c.manifest)); err != nil {
					errs = append(errs, fmt.Errorf("putting back %s: %w", c.manifest, err))
				}
			}
			return errors.Join(errs...)
		},
	}
}
