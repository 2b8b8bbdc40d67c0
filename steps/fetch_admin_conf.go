package steps

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kplay/kplay/internal/atomicfile"
	"github.com/kplay/kplay/internal/hostexec"
	"github.com/kplay/kplay/internal/yamlx"
)

// fetchParams is the YAML form of a fetch_admin_conf step.
type fetchParams struct {
	Dest          string          `yaml:"dest"`
	Merge         *bool           `yaml:"merge"`
	Verify        *bool           `yaml:"verify"`
	VerifyTimeout *yamlx.Duration `yaml:"verify_timeout"`
	Server        string          `yaml:"server"`
	RunOnce       *bool           `yaml:"run_once"`
	KubernetesDir string          `yaml:"kubernetes_dir"`
	Name          string          `yaml:"name"`
}

// FetchAdminConf downloads admin.conf and installs it as the controller's kubeconfig.
type FetchAdminConf struct {
	// Dest is the local kubeconfig path; a leading ~/ is the controller user's home.
	Dest string
	// Merge merges into an existing Dest instead of replacing it.
	Merge bool
	// Verify checks the credential with a GET of SERVER/api first.
	Verify bool
	// VerifyTimeout bounds the verification, retries included.
	VerifyTimeout time.Duration
	// Server, when set, replaces the clusters' server (and is what is verified).
	Server string
	// Once runs the step on the first host only.
	Once bool
	// KubeDir is the kubernetes dir on the host.
	KubeDir string
	// Name names this cluster's entries in the kubeconfig (cluster NAME,
	// user and context kubernetes-admin@NAME), instead of kubeadm's
	// "kubernetes" that every cluster has; empty: the inventory variable
	// cluster_name, else the API server's host.
	Name string
}

// NewFetchAdminConf builds a fetch_admin_conf step.
func NewFetchAdminConf(n *yaml.Node, x Expander) (Step, error) {
	var p fetchParams
	if err := decodeParams(n, &p, "fetch_admin_conf"); err != nil {
		return nil, err
	}
	e := paramExpander{n: n, x: x, step: "fetch_admin_conf"}
	s := &FetchAdminConf{
		Merge: boolOr(p.Merge, true), Verify: boolOr(p.Verify, true), Once: boolOr(p.RunOnce, true),
		VerifyTimeout: dur(p.VerifyTimeout, yamlx.Duration(time.Minute)).D(),
	}
	var err error
	if s.KubeDir, err = e.abs("kubernetes_dir", p.KubernetesDir, DefaultKubernetesDir); err != nil {
		return nil, err
	}
	if s.Dest, err = e.text("dest", p.Dest, "~/.kube/config"); err != nil {
		return nil, err
	}
	if strings.HasPrefix(s.Dest, "~") && s.Dest != "~" && !strings.HasPrefix(s.Dest, "~/") {
		return nil, e.errorf("dest", "only ~/ (the controller user's home) is expanded, not %q", s.Dest)
	}
	if !strings.HasPrefix(s.Dest, "~") && !filepath.IsAbs(s.Dest) {
		return nil, e.errorf("dest", "must be absolute or start with ~/, not %q", s.Dest)
	}
	if s.Dest == "~" || strings.HasSuffix(s.Dest, "/") {
		return nil, e.errorf("dest", "must name a file, not %q", s.Dest)
	}
	if s.Name, err = e.text("name", p.Name, ""); err != nil {
		return nil, err
	}
	if v, ok := x.Get("cluster_name"); ok && s.Name == "" {
		s.Name = v
	}
	if strings.ContainsFunc(s.Name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return nil, e.errorf("name", "must not hold control characters")
	}
	if s.Server, err = e.text("server", p.Server, ""); err != nil {
		return nil, err
	}
	if s.Server != "" && !strings.HasPrefix(s.Server, "https://") {
		return nil, e.errorf("server", "must be an https:// URL, not %q", s.Server)
	}
	if s.VerifyTimeout <= 0 {
		return nil, e.errorf("verify_timeout", "must be more than 0")
	}
	return s, nil
}

// RunOnce reports whether the step runs on the first host only (run_once, default true).
func (s *FetchAdminConf) RunOnce() bool { return s.Once }

// dest returns the local path, with ~ expanded and symlinks resolved.
func (s *FetchAdminConf) dest() (string, error) {
	d := s.Dest
	if rest, ok := strings.CutPrefix(d, "~/"); ok {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("expanding %s: %w", s.Dest, err)
		}
		d = filepath.Join(home, rest)
	}
	if r, err := filepath.EvalSymlinks(d); err == nil {
		d = r
	}
	return filepath.Clean(d), nil
}

// fetch downloads admin.conf and applies the server override.
func (s *FetchAdminConf) fetch(ctx context.Context, t *Target) (*kcFile, error) {
	src := path.Join(s.KubeDir, "admin.conf")
	data, err := t.ReadFile(ctx, src)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", src, err)
	}
	k, err := parseKubeconfig(data)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", src, err)
	}
	if len(k.Clusters) == 0 || len(k.Users) == 0 {
		return nil, fmt.Errorf("%s has no cluster or no user", src)
	}
	if s.Server != "" {
		k.setServer(s.Server)
	}
	return k, nil
}

// kcWrite is what fetch_admin_conf would write, worked out read-only.
type kcWrite struct {
	k     *kcFile // the fetched admin.conf, its entries renamed
	names kcNames
	dest  string
	prev  localFile
	data  []byte // the file to write
	how   string // create, replace or merge into
}

// unchanged says dest already holds exactly data, with mode 0600.
func (w *kcWrite) unchanged() bool {
	return w.prev.existed && bytes.Equal(w.prev.data, w.data) && w.prev.mode == 0o600
}

// build fetches admin.conf and works out, read-only, what to write: the
// names this cluster's entries get, and the merged file.
func (s *FetchAdminConf) build(ctx context.Context, t *Target) (*kcWrite, error) {
	k, err := s.fetch(ctx, t)
	if err != nil {
		return nil, err
	}
	w := &kcWrite{k: k, how: "create"}
	if w.dest, err = s.dest(); err != nil {
		return nil, err
	}
	if w.prev, err = readLocal(w.dest); err != nil {
		return nil, err
	}
	base := &kcFile{}
	if w.prev.existed {
		w.how = "replace"
		if s.Merge {
			w.how = "merge into"
			if base, err = parseKubeconfig(w.prev.data); err != nil {
				return nil, fmt.Errorf("existing %s is not a kubeconfig (%v); not touching it; use merge: false to replace it", w.dest, err)
			}
		}
	}
	if len(k.Clusters) == 0 {
		return nil, fmt.Errorf("admin.conf from %s has no cluster", t.Name())
	}
	server := k.Clusters[0].server()
	name := s.Name
	if name == "" {
		name = endpointName(server)
	}
	if w.names, err = chooseNames(base, server, name); err != nil {
		return nil, fmt.Errorf("not writing %s: %w", w.dest, err)
	}
	if err := k.rename(w.names); err != nil {
		return nil, err
	}
	out := k
	if w.how == "merge into" {
		out = mergeKubeconfig(base, k)
	}
	if w.data, err = out.marshal(); err != nil {
		return nil, fmt.Errorf("encoding %s: %w", w.dest, err)
	}
	return w, nil
}

// describe says under which names the cluster goes in, and why.
func (w *kcWrite) describe() string {
	s := fmt.Sprintf("context %s (cluster %s, user %s)", w.names.Context, w.names.Cluster, w.names.User)
	if w.names.Reused {
		return s + ": the entries already there for " + w.k.Clusters[0].server()
	}
	return s
}

// Plan downloads admin.conf (read-only) and says what would be written.
func (s *FetchAdminConf) Plan(ctx context.Context, t *Target) (Plan, error) {
	w, err := s.build(ctx, t)
	if err != nil {
		return Plan{}, err
	}
	if w.unchanged() {
		return Plan{Summary: fmt.Sprintf("%s already holds this cluster's credential as %s: nothing to write", w.dest, w.describe())}, nil
	}
	p := Plan{
		Summary:     fmt.Sprintf("would %s %s (mode 0600) %s, from %s", w.how, w.dest, w.describe(), path.Join(s.KubeDir, "admin.conf")),
		WouldChange: true,
	}
	if w.how != "create" {
		p.Details = append(p.Details, "would keep the previous file as "+w.dest+".kplay-backup-"+t.RunID)
	}
	if s.Verify {
		p.Details = append(p.Details, "would first verify the credential with GET /api")
	}
	return p, nil
}

// Apply verifies the credential, then writes dest atomically, keeping the
// previous file; when dest already holds exactly that, it writes nothing.
func (s *FetchAdminConf) Apply(ctx context.Context, t *Target) (Result, error) {
	w, err := s.build(ctx, t)
	if err != nil {
		return Result{}, err
	}
	verified, err := s.verify(ctx, t, w.k, w.dest)
	if err != nil {
		return Result{}, err
	}
	if w.unchanged() {
		msg := fmt.Sprintf("%s already holds this cluster's credential as %s: unchanged", w.dest, w.describe())
		if verified != "" {
			msg += "; " + verified
		}
		return Result{Message: msg}, nil
	}
	details, err := privateDir(filepath.Dir(w.dest))
	if err != nil {
		return Result{}, err
	}
	backup := w.dest + ".kplay-backup-" + t.RunID
	if w.prev.existed {
		if err := atomicfile.WriteFile(backup, w.prev.data, 0o600); err != nil {
			return Result{}, fmt.Errorf("keeping the previous %s: %w", w.dest, err)
		}
		details = append(details, "previous file kept as "+backup)
	}
	if err := atomicfile.WriteFile(w.dest, w.data, 0o600); err != nil {
		return Result{}, fmt.Errorf("writing %s: %w", w.dest, err)
	}
	how := map[string]string{"create": "wrote", "replace": "wrote", "merge into": "merged into"}[w.how]
	msg := fmt.Sprintf("%s %s as %s", how, w.dest, w.describe())
	if verified != "" {
		msg += "; " + verified
	}
	return Result{Changed: true, Message: msg, Details: details, Undo: w.prev.undo(w.dest, backup)}, nil
}

// verify checks, when the step asks for it, that the fetched credential
// works against its API server; it returns what it verified, or "".
func (s *FetchAdminConf) verify(ctx context.Context, t *Target, k *kcFile, dest string) (string, error) {
	if !s.Verify {
		return "", nil
	}
	cr, err := k.credential()
	if err != nil {
		return "", fmt.Errorf("admin.conf from %s: %w", t.Name(), err)
	}
	verified, err := verifyCredential(ctx, t.DialContext, cr, s.VerifyTimeout)
	if errors.Is(err, hostexec.ErrForwardingRefused) {
		verified, err = verifyOnHost(ctx, t, path.Join(s.KubeDir, "admin.conf"), cr, s.VerifyTimeout)
	}
	if isNotMade(err) {
		return "credential NOT verified: " + err.Error(), nil
	}
	if err != nil {
		return "", fmt.Errorf("not writing %s: %w", dest, err)
	}
	return verified, nil
}

// localFile is the controller-side file fetch_admin_conf is about to
// replace, as it was before.
type localFile struct {
	data    []byte
	mode    fs.FileMode
	existed bool
}

// readLocal reads the file at dest, if any.
func readLocal(dest string) (localFile, error) {
	prev, err := os.ReadFile(dest)
	lf := localFile{data: prev, mode: 0o600, existed: err == nil}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return localFile{}, fmt.Errorf("reading the existing %s: %w", dest, err)
	}
	if lf.existed {
		if st, err := os.Stat(dest); err == nil {
			lf.mode = st.Mode().Perm()
		}
	}
	return lf, nil
}

// privateDir creates dir (mode 0700) and its missing parents, and returns
// what it did, or a warning when an existing dir is open to others.
func privateDir(dir string) ([]string, error) {
	created, err := mkdirPrivate(dir)
	if err != nil {
		return nil, err
	}
	if len(created) > 0 {
		return []string{"created " + strings.Join(created, ", ") + " (mode 0700)"}, nil
	}
	if st, err := os.Stat(dir); err == nil && st.Mode().Perm()&0o077 != 0 {
		return []string{fmt.Sprintf("warning: %s is mode %04o; 0700 is safer", dir, st.Mode().Perm())}, nil
	}
	return nil, nil
}

// undo puts the file back as it was before dest was written: removed if it
// did not exist, else restored with its old mode (backup is the kept copy).
func (lf localFile) undo(dest, backup string) *Undo {
	undo := &Undo{Desc: "remove " + dest + " (it did not exist)", Restore: "rm " + dest}
	if lf.existed {
		undo = &Undo{Desc: "restore " + dest + " from " + backup, Restore: fmt.Sprintf("cp -p %s %s", backup, dest)}
	}
	undo.Fn = func(ctx context.Context, _ *Target) error {
		if !lf.existed {
			if err := os.Remove(dest); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("removing %s: %w", dest, err)
			}
			return nil
		}
		if err := atomicfile.WriteFile(dest, lf.data, lf.mode); err != nil {
			return fmt.Errorf("restoring %s: %w", dest, err)
		}
		return nil
	}
	return undo
}

// verifyCredential GETs SERVER/api with the client certificate, trusting
// only the kubeconfig's CA, retrying connection errors until timeout. The
// connection is dial's: the host's, through its SSH connection, so the
// check works wherever SSH does. An error wrapping
// hostexec.ErrForwardingRefused comes back at once.
func verifyCredential(ctx context.Context, dial dialFunc, cr *kcCredential, timeout time.Duration) (string, error) {
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{
			RootCAs:            cr.CAs,
			Certificates:       []tls.Certificate{cr.Cert},
			InsecureSkipVerify: cr.Insecure, // only when the kubeconfig itself says so
			MinVersion:         tls.VersionTLS12,
		},
		TLSHandshakeTimeout: 10 * time.Second,
		DialContext:         dial,
		Proxy:               nil, // the host's own route to the server, never a proxy of the controller's
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 15 * time.Second}
	u := strings.TrimSuffix(cr.Server, "/") + "/api"
	vctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		req, err := http.NewRequestWithContext(vctx, http.MethodGet, u, nil)
		if err != nil {
			return "", fmt.Errorf("GET %s: %w", u, err)
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusOK:
				return fmt.Sprintf("credential of user %s accepted: GET %s → 200", cr.User, u), nil
			case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
				return "", fmt.Errorf("GET %s with user %s's client certificate: %s (credential rejected)", u, cr.User, resp.Status)
			}
			last = fmt.Errorf("GET %s: %s", u, resp.Status)
		} else {
			var ce *tls.CertificateVerificationError
			if errors.Is(err, hostexec.ErrForwardingRefused) {
				return "", err
			}
			if errors.As(err, &ce) {
				return "", fmt.Errorf("GET %s: the server's certificate does not verify against admin.conf's CA: %w", u, err)
			}
			last = fmt.Errorf("GET %s: %w", u, err)
		}
		select {
		case <-vctx.Done():
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			return "", fmt.Errorf("verifying the credential timed out after %s: %w", timeout, last)
		case <-time.After(time.Second):
		}
	}
}

// mkdirPrivate creates dir and its missing parents with mode 0700 (whatever
// the umask) and returns the directories it created.
func mkdirPrivate(dir string) ([]string, error) {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("checking %s: %w", d, err)
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	var created []string
	for i := len(missing) - 1; i >= 0; i-- {
		d := missing[i]
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return created, fmt.Errorf("creating %s: %w", d, err)
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return created, fmt.Errorf("chmod 0700 %s: %w", d, err)
		}
		created = append(created, d)
	}
	return created, nil
}
