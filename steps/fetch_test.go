package steps

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/kplay/kplay/internal/hostexec"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		must(t, os.MkdirAll("testdata", 0o755))
		must(t, os.WriteFile(p, got, 0o644))
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", p, got, want)
	}
}

// apiServer serves /api on 127.0.0.1 with the host's apiserver certificate,
// accepting only client certificates signed by the host's ca.crt.
func apiServer(t *testing.T, h *fakeHost) string {
	t.Helper()
	kd := filepath.Join(h.root, "etc/kubernetes/pki")
	cert, err := tls.LoadX509KeyPair(filepath.Join(kd, "apiserver.crt"), filepath.Join(kd, "apiserver.key"))
	must(t, err)
	caPEM, err := os.ReadFile(filepath.Join(kd, "ca.crt"))
	must(t, err)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api" || len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{"kind":"APIVersions","versions":["v1"]}`))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return "https://" + srv.Listener.Addr().String()
}

// TestFetchAdminConf is not parallel: it sets the process umask to 000.
func TestFetchAdminConf(t *testing.T) {
	h := newPKIHost(t, pkiOpts{noKubelet: true})
	server := apiServer(t, h)
	home := t.TempDir()
	dest := filepath.Join(home, "nested", ".kube", "config")
	params := "dest: " + dest + "\nserver: " + server + "\nverify_timeout: 5s\n"
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	tg := h.target()
	ctx := testCtx(t)

	s := newStep(t, "fetch_admin_conf", params)
	if !s.(RunOncer).RunOnce() {
		t.Error("fetch_admin_conf must run once by default")
	}
	p, err := s.Plan(ctx, tg)
	if err != nil || !strings.HasPrefix(p.Summary, "would create "+dest) {
		t.Errorf("plan: %+v %v", p, err)
	}
	if _, err := os.Stat(filepath.Join(home, "nested")); err == nil {
		t.Error("plan created the directory")
	}

	// 1. No previous file: created 0600 in 0700 directories, under umask 000.
	r, err := s.Apply(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{dest: 0o600, filepath.Dir(dest): 0o700, filepath.Join(home, "nested"): 0o700} {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %04o (%v)", p, st.Mode().Perm(), want, err)
		}
	}
	if !strings.Contains(r.Message, "credential of user kubernetes-admin@127.0.0.1 accepted: GET "+server+"/api → 200") {
		t.Errorf("message: %s", r.Message)
	}
	for _, s := range append([]string{r.Message}, r.Details...) {
		if strings.Contains(s, "PRIVATE") || strings.Contains(s, "LS0t") {
			t.Errorf("result leaks data: %s", s)
		}
	}
	k := readKubeconfig(t, dest)
	cr, err := k.credential()
	if err != nil || cr.Server != server || cr.User != "kubernetes-admin@127.0.0.1" || cr.Cluster != "127.0.0.1" || cr.Context != "kubernetes-admin@127.0.0.1" {
		t.Errorf("written kubeconfig: context %q cluster %q user %q server %q, %v; want kubeadm's names replaced by ones from the API endpoint", cr.Context, cr.Cluster, cr.User, cr.Server, err)
	}
	// Undo removes a file that did not exist.
	must(t, r.Undo.Fn(ctx, tg))
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Errorf("undo left %s: %v", dest, err)
	}

	// 2. Merge into an existing kubeconfig holding another kubeadm cluster
	// under kubeadm's names: it is left exactly as it was, and this cluster
	// is added under names of its own.
	existing := `apiVersion: v1
kind: Config
clusters:
- name: other
  cluster:
    server: https://other:6443
- name: kubernetes
  cluster:
    server: https://stale:6443
contexts:
- name: other@other
  context:
    cluster: other
    user: other
- name: kubernetes-admin@kubernetes
  context:
    cluster: kubernetes
    user: kubernetes-admin
current-context: other@other
preferences: {}
users:
- name: other
  user:
    token: abc
- name: kubernetes-admin
  user:
    client-certificate-data: c3RhbGU=
`
	must(t, os.WriteFile(dest, []byte(existing), 0o640))
	r, err = s.Apply(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	k = readKubeconfig(t, dest)
	if got, want := kcNamesOf(k), "clusters other,kubernetes,127.0.0.1; users other,kubernetes-admin,kubernetes-admin@127.0.0.1; contexts other@other,kubernetes-admin@kubernetes,kubernetes-admin@127.0.0.1; current other@other"; got != want {
		t.Errorf("merged: %s\nwant      %s", got, want)
	}
	if k.Clusters[1].server() != "https://stale:6443" || k.Clusters[2].server() != server {
		t.Errorf("merged servers: %s, %s: the other cluster's entry was repointed", k.Clusters[1].server(), k.Clusters[2].server())
	}
	if u, _ := k.Users[1].Rest["user"].(map[string]any); str(u, "client-certificate-data") != "c3RhbGU=" {
		t.Error("the other cluster's user was given this cluster's credential")
	}
	if !strings.Contains(r.Message, "as context kubernetes-admin@127.0.0.1 (cluster 127.0.0.1, user kubernetes-admin@127.0.0.1)") {
		t.Errorf("message does not say under which names: %s", r.Message)
	}
	if _, ok := k.Rest["preferences"]; !ok {
		t.Error("preferences dropped")
	}
	backup := dest + ".kplay-backup-" + tg.RunID
	if b, err := os.ReadFile(backup); err != nil || string(b) != existing {
		t.Errorf("backup: %v", err)
	}
	if st, _ := os.Stat(backup); st.Mode().Perm() != 0o600 {
		t.Errorf("backup mode %v", st.Mode())
	}
	if st, _ := os.Stat(dest); st.Mode().Perm() != 0o600 {
		t.Errorf("dest mode %v", st.Mode())
	}
	must(t, r.Undo.Fn(ctx, tg))
	if b, _ := os.ReadFile(dest); string(b) != existing {
		t.Error("undo did not restore the previous file")
	}
	if st, _ := os.Stat(dest); st.Mode().Perm() != 0o640 {
		t.Errorf("undo restored mode %v, want 0640", st.Mode())
	}

	// 3. merge: false replaces the file.
	if _, err := newStep(t, "fetch_admin_conf", params+"merge: false").Apply(ctx, tg); err != nil {
		t.Fatal(err)
	}
	if k = readKubeconfig(t, dest); kcNamesOf(k) != "clusters 127.0.0.1; users kubernetes-admin@127.0.0.1; contexts kubernetes-admin@127.0.0.1; current kubernetes-admin@127.0.0.1" {
		t.Errorf("replace: %s", kcNamesOf(k))
	}

	// 3b. Run again: the file already holds exactly this; nothing is
	// written, no backup is kept, and nothing is to undo.
	st0, err := os.Stat(dest)
	must(t, err)
	tg2 := h.target()
	_ = os.Remove(dest + ".kplay-backup-" + tg2.RunID) // step 3's
	r, err = newStep(t, "fetch_admin_conf", params+"merge: false").Apply(ctx, tg2)
	if err != nil || r.Changed || r.Undo != nil || !strings.Contains(r.Message, "unchanged") {
		t.Errorf("second run: changed %v undo %v message %q, %v; want unchanged", r.Changed, r.Undo != nil, r.Message, err)
	}
	if st1, _ := os.Stat(dest); !st1.ModTime().Equal(st0.ModTime()) {
		t.Error("second run rewrote the file")
	}
	if _, err := os.Stat(dest + ".kplay-backup-" + tg2.RunID); !os.IsNotExist(err) {
		t.Errorf("second run kept a backup: %v", err)
	}

	// 4. An existing file that is not a kubeconfig is left alone when merging.
	must(t, os.WriteFile(dest, []byte("{{ not yaml"), 0o600))
	if _, err := s.Apply(ctx, tg); err == nil || !strings.Contains(err.Error(), "not a kubeconfig") {
		t.Errorf("bad existing: %v", err)
	}
	if b, _ := os.ReadFile(dest); string(b) != "{{ not yaml" {
		t.Error("bad existing file was touched")
	}
	h.assertNoSecrets(t, func(cmd string) bool { return strings.Contains(cmd, "admin.conf") })
}

// kcNamesOf lists a kubeconfig's entry names (never its data).
func kcNamesOf(k *kcFile) string {
	names := func(l []kcNamed) string {
		var n []string
		for _, e := range l {
			n = append(n, e.Name)
		}
		return strings.Join(n, ",")
	}
	return fmt.Sprintf("clusters %s; users %s; contexts %s; current %s", names(k.Clusters), names(k.Users), names(k.Contexts), k.CurrentContext)
}

func readKubeconfig(t *testing.T, p string) *kcFile {
	t.Helper()
	b, err := os.ReadFile(p)
	must(t, err)
	k, err := parseKubeconfig(b)
	must(t, err)
	return k
}

func TestFetchAdminConfVerifyFails(t *testing.T) {
	t.Parallel()
	h := newPKIHost(t, pkiOpts{noKubelet: true})
	dest := filepath.Join(t.TempDir(), "config")
	// A server whose certificate is not from admin.conf's CA.
	other := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer other.Close()
	_, err := newStep(t, "fetch_admin_conf", "dest: "+dest+"\nserver: "+other.URL+"\nverify_timeout: 5s").Apply(testCtx(t), h.target())
	if err == nil || !strings.Contains(err.Error(), "does not verify against admin.conf's CA") {
		t.Errorf("wrong CA: %v", err)
	}
	// A server that rejects the credential.
	kd := filepath.Join(h.root, "etc/kubernetes/pki")
	cert, _ := tls.LoadX509KeyPair(filepath.Join(kd, "apiserver.crt"), filepath.Join(kd, "apiserver.key"))
	deny := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
	}))
	deny.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	deny.StartTLS()
	defer deny.Close()
	_, err = newStep(t, "fetch_admin_conf", "dest: "+dest+"\nserver: "+deny.URL+"\nverify_timeout: 5s").Apply(testCtx(t), h.target())
	if err == nil || !strings.Contains(err.Error(), "credential rejected") {
		t.Errorf("rejected: %v", err)
	}
	// Nothing listening: retried until verify_timeout.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	_, err = newStep(t, "fetch_admin_conf", "dest: "+dest+"\nserver: https://"+addr+"\nverify_timeout: 2s").Apply(testCtx(t), h.target())
	if err == nil || !strings.Contains(err.Error(), "timed out after 2s") {
		t.Errorf("down: %v", err)
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Error("dest written although verification failed")
	}
}

func TestKubeconfigMergeGolden(t *testing.T) {
	t.Parallel()
	admin := `apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: Q0E=
    server: https://10.213.250.1:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: kubernetes-admin
  name: kubernetes-admin@kubernetes
current-context: kubernetes-admin@kubernetes
users:
- name: kubernetes-admin
  user:
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZ
`
	cases := []struct{ name, base string }{
		{"empty", ""},
		{"other-cluster", `apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster: {server: "https://prod:6443"}
users:
- name: prod-admin
  user: {token: t0k}
contexts:
- name: prod
  context: {cluster: prod, user: prod-admin, namespace: web}
current-context: prod
preferences: {colors: true}
`},
		{"same-names", `apiVersion: v1
kind: Config
clusters:
- name: kubernetes
  cluster: {server: "https://old:6443", extensions: []}
users:
- name: kubernetes-admin
  user: {client-certificate-data: T0xE}
contexts:
- name: kubernetes-admin@kubernetes
  context: {cluster: kubernetes, user: kubernetes-admin}
`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base, err := parseKubeconfig([]byte(c.base))
			must(t, err)
			add, err := parseKubeconfig([]byte(admin))
			must(t, err)
			out, err := mergeKubeconfig(base, add).marshal()
			must(t, err)
			golden(t, "merge_"+c.name+".golden", out)
		})
	}
}

// TestFetchAdminConfVerifyWays: the credential is checked through the
// host's SSH connection; where the host forbids forwarding, by curl on the
// host; where neither can be made, the file is written and the check
// reported as not made.
func TestFetchAdminConfVerifyWays(t *testing.T) {
	t.Parallel()
	h := newPKIHost(t, pkiOpts{noKubelet: true})
	server := apiServer(t, h)
	tests := []struct {
		name      string
		noForward bool
		noCurl    bool
		want      string
		dials     bool
	}{
		{name: "through SSH", want: "accepted: GET " + server + "/api → 200", dials: true},
		{name: "on the host", noForward: true, want: "accepted: GET " + server + "/api from cp1 → 200"},
		{name: "not made", noForward: true, noCurl: true, want: "credential NOT verified: GET " + server + "/api from cp1 (its SSH server forbids forwarding) cannot be made there"},
	}
	for _, tt := range tests {
		h.noForward.Store(tt.noForward)
		h.hook = nil
		if tt.noCurl {
			h.hook = func(cmd string) ([]byte, error, bool) {
				if strings.Contains(cmd, "verify_credential.sh") {
					return nil, &hostexec.ExitError{Status: 127, Stderr: "curl is not installed on the host"}, true
				}
				return nil, nil, false
			}
		}
		dials := h.dials.Load()
		dest := filepath.Join(t.TempDir(), "config")
		r, err := newStep(t, "fetch_admin_conf", "dest: "+dest+"\nserver: "+server+"\nverify_timeout: 5s").Apply(testCtx(t), h.target())
		if err != nil || !strings.Contains(r.Message, tt.want) {
			t.Errorf("%s: %q %v, want %q", tt.name, r.Message, err, tt.want)
		}
		if (h.dials.Load() > dials) != tt.dials {
			t.Errorf("%s: %d dials through the host", tt.name, h.dials.Load()-dials)
		}
		if _, err := os.Stat(dest); err != nil {
			t.Errorf("%s: not written: %v", tt.name, err)
		}
	}
	h.hook = nil
	// fetch_admin_conf reads admin.conf by design; the check on the host must print no key.
	h.assertNoSecrets(t, func(cmd string) bool { return cmd == "cat -- /etc/kubernetes/admin.conf" })
}
