package steps

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// backupPrefix is where backups land in a snapshot.
const backupPrefix = "var/lib/kplay"

func TestBackupKeepsModesAndRestoresByteForByte(t *testing.T) {
	t.Parallel()
	h := newPKIHost(t, pkiOpts{})
	tg := h.target()
	ctx := testCtx(t)
	// An unusual owner and mode must survive the round trip.
	if err := os.Chown(filepath.Join(h.root, "etc/kubernetes/pki/front-proxy-ca.crt"), 1234, 5678); err != nil {
		t.Fatal(err)
	}
	orig := snapshot(t, h)

	p, err := newStep(t, "backup", "").Plan(ctx, tg)
	if err != nil || !p.WouldChange || !strings.Contains(p.Summary, "/var/lib/kplay/backups/"+tg.RunID) {
		t.Fatalf("plan: %+v %v", p, err)
	}
	if d := diffSnapshots(orig, snapshot(t, h)); len(d) > 0 {
		t.Fatalf("backup plan changed the host: %v", d)
	}
	r, err := newStep(t, "backup", "").Apply(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	info := r.Data.(BackupInfo)
	dir := h.path(info.Dir)
	if !strings.Contains(r.Message, tg.RunID) || !strings.Contains(r.Message, "sh /var/lib/kplay/backups/"+tg.RunID+"/restore.sh") {
		t.Errorf("message lacks run id or restore command: %s", r.Message)
	}
	if info.Files != 28 {
		t.Errorf("backup holds %d files, want 28 (pki 22 + 5 conf + 1 manifest)", info.Files)
	}
	for _, f := range []string{"COMPLETE", "SHA256SUMS", "restore.sh", "files/pki/ca.key", "files/admin.conf", "files/manifests/kube-apiserver.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("backup dir mode: %v %v", st.Mode(), err)
	}
	// The copies hold the CA keys: files 0600, directories 0700, whatever
	// the originals' modes; MODES keeps those for restore.sh.
	modes, err := os.ReadFile(filepath.Join(dir, "MODES"))
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"pki/ca.key", "pki/front-proxy-ca.crt", "admin.conf", "manifests/kube-apiserver.yaml"} {
		a, _ := os.Lstat(filepath.Join(h.root, "etc/kubernetes", rel))
		b, _ := os.Lstat(filepath.Join(dir, "files", rel))
		sa := a.Sys().(*syscall.Stat_t)
		if b.Mode().Perm() != 0o600 {
			t.Errorf("%s: backup copy mode %v, want 0600", rel, b.Mode())
		}
		want := fmt.Sprintf("%o %d %d %s\n", a.Mode().Perm(), sa.Uid, sa.Gid, rel)
		if !strings.Contains(string(modes), want) {
			t.Errorf("MODES lacks %q:\n%s", want, modes)
		}
	}
	if err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err == nil && e.IsDir() {
			if st, _ := os.Stat(p); st.Mode().Perm() != 0o700 {
				t.Errorf("backup directory %s: mode %v, want 0700", p, st.Mode())
			}
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got, ok := backupFact(tg, factBackup, DefaultKubernetesDir); !ok || got.Dir != info.Dir {
		t.Errorf("fact: %+v %v", got, ok)
	}
	// An interrupted attempt (no COMPLETE) is replaced; a complete backup is not.
	partial := newFakeHost(t)
	must(t, os.MkdirAll(filepath.Join(partial.root, "etc/kubernetes/pki"), 0o755))
	must(t, os.WriteFile(filepath.Join(partial.root, "etc/kubernetes/pki/ca.crt"), []byte("x"), 0o644))
	must(t, os.MkdirAll(filepath.Join(partial.root, "var/lib/kplay/backups", tg.RunID, "files"), 0o700))
	if _, err := newStep(t, "backup", "").Apply(ctx, partial.target()); err != nil {
		t.Errorf("backup over an interrupted attempt: %v", err)
	}
	// A second backup with the same run id refuses to overwrite.
	if _, err := newStep(t, "backup", "").Apply(ctx, tg); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second backup: %v", err)
	}

	// Damage the host: change content, mode, owner; add and delete files.
	kd := filepath.Join(h.root, "etc/kubernetes")
	must(t, os.WriteFile(filepath.Join(kd, "pki/apiserver.crt"), []byte("garbage"), 0o644))
	must(t, os.Chmod(filepath.Join(kd, "pki/ca.key"), 0o644))
	must(t, os.Chown(filepath.Join(kd, "admin.conf"), 42, 42))
	must(t, os.WriteFile(filepath.Join(kd, "pki/new.crt"), []byte("x"), 0o644))
	must(t, os.WriteFile(filepath.Join(kd, "new.conf"), []byte("x"), 0o600))
	must(t, os.Remove(filepath.Join(kd, "pki/etcd/peer.key")))
	must(t, os.Remove(filepath.Join(kd, "manifests/kube-apiserver.yaml")))

	// Certificates that expired (or expire within a day) are not put back:
	// the undo declines and changes nothing.
	for _, left := range []time.Duration{-time.Hour, 23 * time.Hour} {
		old := CertList{{Name: "etcd-peer", NotAfter: time.Now().Add(left)}, {Name: "apiserver", NotAfter: time.Now().Add(48 * time.Hour)}}
		before := snapshot(t, h)
		err := restoreUndo(DefaultKubernetesDir, info, old).Fn(ctx, tg)
		var kept *KeptError
		if !errors.As(err, &kept) || !strings.Contains(kept.Reason, "etcd-peer") || !strings.Contains(kept.Reason, info.Dir) {
			t.Errorf("old certificates %v from now: undo = %v, want a KeptError naming etcd-peer and the backup", left, err)
		}
		if d := diffSnapshots(before, snapshot(t, h)); len(d) > 0 {
			t.Errorf("a declined undo changed the host:\n%s", strings.Join(d, "\n"))
		}
	}
	old := CertList{{Name: "etcd-peer", NotAfter: time.Now().Add(25 * time.Hour)}}
	undo := restoreUndo(DefaultKubernetesDir, info, old)
	if err := undo.Fn(ctx, tg); err != nil {
		t.Fatal(err)
	}
	if d := diffSnapshots(orig, withoutPrefix(snapshot(t, h), backupPrefix)); len(d) > 0 {
		t.Errorf("after restore the host differs:\n%s", strings.Join(d, "\n"))
	}
	// Restoring again is a no-op.
	if err := undo.Fn(ctx, tg); err != nil {
		t.Fatal(err)
	}
	// The shipped restore.sh does the same for a person.
	must(t, os.WriteFile(filepath.Join(kd, "pki/apiserver.crt"), []byte("garbage"), 0o644))
	if out, err := h.Run(ctx, info.Restore); err != nil {
		t.Fatalf("%s: %v\n%s", info.Restore, err, out)
	}
	if d := diffSnapshots(orig, withoutPrefix(snapshot(t, h), backupPrefix)); len(d) > 0 {
		t.Errorf("after restore.sh the host differs:\n%s", strings.Join(d, "\n"))
	}
	// A damaged backup is refused.
	must(t, os.WriteFile(filepath.Join(dir, "files/pki/ca.crt"), []byte("tampered"), 0o644))
	if err := undo.Fn(ctx, tg); err == nil || !strings.Contains(err.Error(), "fails its checksums") {
		t.Errorf("restore from a damaged backup: %v", err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestBackupDiskFull(t *testing.T) {
	t.Parallel()
	h := newPKIHost(t, pkiOpts{})
	h.tinyKplay = true
	orig := snapshot(t, h)
	_, err := newStep(t, "backup", "").Plan(testCtx(t), h.target())
	if err == nil || !strings.Contains(err.Error(), "not enough space") {
		t.Errorf("plan: %v", err)
	}
	_, err = newStep(t, "backup", "").Apply(testCtx(t), h.target())
	if err == nil || !strings.Contains(err.Error(), "not enough space") {
		t.Errorf("apply: %v", err)
	}
	// renew_certs takes its own backup, fails before any change.
	_, err = newStep(t, "renew_certs", "config: "+filepath.Join(h.root, "cfg/renew.yaml")).Apply(testCtx(t), h.target())
	if err == nil || !strings.Contains(err.Error(), "nothing was renewed") || !strings.Contains(err.Error(), "not enough space") {
		t.Errorf("renew: %v", err)
	}
	after := snapshot(t, h)
	delete(after, backupPrefix) // the fake host's tmpfs mount point
	if d := diffSnapshots(orig, after); len(d) > 0 {
		t.Errorf("host changed: %v", d)
	}
}

func TestRenewThenVerifyThenUndo(t *testing.T) {
	t.Parallel()
	h := newPKIHost(t, pkiOpts{})
	tg := h.target()
	ctx := testCtx(t)
	cfg := filepath.Join(h.root, "cfg/renew.yaml")
	orig := snapshot(t, h)

	// Plan: lists every renewable certificate with its current expiry; reads only.
	p, err := newStep(t, "renew_certs", "config: "+cfg).Plan(ctx, tg)
	if err != nil || !p.WouldChange {
		t.Fatalf("plan: %+v %v", p, err)
	}
	if got := len(p.Data.(CertList)); got != 11 {
		t.Errorf("plan would renew %d certificates, want 11", got)
	}
	if pd := strings.Join(p.Details, "\n"); !strings.Contains(pd, "would renew apiserver: expires") || !strings.Contains(pd, "would take one first") {
		t.Errorf("plan details:\n%s", pd)
	}
	if d := diffSnapshots(orig, snapshot(t, h)); len(d) > 0 {
		t.Fatalf("plan changed the host: %v", d)
	}

	r, err := newStep(t, "renew_certs", "config: "+cfg+"\nonly_within: 30d").Apply(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Changed || r.Undo == nil || !strings.Contains(r.Message, "renewed 11 certificates") || !strings.Contains(r.Message, "restore.sh") {
		t.Errorf("result: %+v", r)
	}
	for _, c := range r.Data.(CertList) {
		if c.DaysLeft < 360 {
			t.Errorf("%s renewed to %d days", c.Name, c.DaysLeft)
		}
	}
	if names, ok := renewedFact(tg); !ok || len(names) != 11 {
		t.Errorf("renewed fact: %v", names)
	}
	// A backup was taken (no backup step ran) and holds the original files.
	if _, err := os.Stat(filepath.Join(h.root, backupPrefix, "backups", tg.RunID, "COMPLETE")); err != nil {
		t.Error(err)
	}

	v, err := newStep(t, "verify_enddate", "").Apply(ctx, tg)
	if err != nil {
		t.Fatalf("verify: %v\n%s", err, strings.Join(v.Details, "\n"))
	}
	if !strings.Contains(v.Message, "11 certificates verified") {
		t.Errorf("verify: %s", v.Message)
	}

	// Idempotent: a second run with only_within skips.
	_, err = newStep(t, "renew_certs", "config: "+cfg+"\nonly_within: 30d").Apply(ctx, tg)
	if reason, ok := IsSkip(err); !ok || !strings.Contains(reason, "nothing expires within 30d") {
		t.Errorf("second renew: %v", err)
	}
	// …and verify_enddate then skips as nothing was renewed in this run.
	if _, err := newStep(t, "verify_enddate", "").Apply(ctx, tg); err == nil {
		t.Error("verify after a skipped renew: want skip")
	} else if _, ok := IsSkip(err); !ok {
		t.Errorf("verify after a skipped renew: %v", err)
	}

	// A change made after the run (here: to the apiserver manifest) makes
	// the backup's restore.sh, run by hand, refuse, naming the file, until
	// --force.
	man := filepath.Join(h.root, "etc/kubernetes/manifests/kube-apiserver.yaml")
	f, err := os.OpenFile(man, os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	_, err = f.WriteString("# changed after the run\n")
	must(t, err)
	must(t, f.Close())
	restore := "sh /var/lib/kplay/backups/" + tg.RunID + "/restore.sh"
	out, err := h.Run(ctx, restore)
	if err == nil || !strings.Contains(err.Error(), "exit status 4") || !strings.Contains(err.Error(), "manifests/kube-apiserver.yaml") || !strings.Contains(err.Error(), "--force") {
		t.Errorf("restore.sh over a changed tree: %v\n%s", err, out)
	}
	// The run's own undo restores everything, that change included: it
	// was made during the run (restore.sh --force).
	if err := r.Undo.Fn(ctx, tg); err != nil {
		t.Fatalf("the run's undo over a tree changed during the run: %v", err)
	}
	if d := diffSnapshots(orig, withoutPrefix(snapshot(t, h), backupPrefix)); len(d) > 0 {
		t.Errorf("after the undo the host differs:\n%s", strings.Join(d, "\n"))
	}
	h.assertNoSecrets(t, nil)
}

func TestRenewAllDefaultsUsesBackupStep(t *testing.T) {
	t.Parallel()
	h := newPKIHost(t, pkiOpts{})
	tg := h.target()
	ctx := testCtx(t)
	b, err := newStep(t, "backup", "").Apply(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	// No config: kubeadm falls back to its defaults (one year).
	r, err := newStep(t, "renew_certs", "").Apply(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Message, b.Data.(BackupInfo).Dir) || strings.Contains(strings.Join(r.Details, " "), "taken by renew_certs") {
		t.Errorf("renew did not use the backup step's backup: %s / %v", r.Message, r.Details)
	}
	entries, _ := os.ReadDir(filepath.Join(h.root, backupPrefix, "backups"))
	if len(entries) != 1 {
		t.Errorf("%d backups, want 1", len(entries))
	}
	if _, err := newStep(t, "verify_enddate", "min_days: 360").Apply(ctx, tg); err != nil {
		t.Error(err)
	}
}

func TestRenewSubsetAndVerify(t *testing.T) {
	t.Parallel()
	h := newPKIHost(t, pkiOpts{})
	tg := h.target()
	ctx := testCtx(t)
	cfg := filepath.Join(h.root, "cfg/renew.yaml")
	r, err := newStep(t, "renew_certs", "config: "+cfg+"\ncerts: [apiserver, admin.conf]").Apply(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Data.(CertList)) != 2 {
		t.Errorf("renewed %v", r.Data)
	}
	if _, err := newStep(t, "verify_enddate", "").Apply(ctx, tg); err != nil {
		t.Errorf("verify renewed subset: %v", err)
	}
	// Every leaf: the others still expire in 48h.
	_, err = newStep(t, "verify_enddate", "certs: [apiserver, etcd-server, scheduler.conf]").Apply(ctx, tg)
	if err == nil || !strings.Contains(err.Error(), "2 of 3 certificates failed") || !strings.Contains(err.Error(), "etcd-server (/etc/kubernetes/pki/etcd/server.crt): expires") {
		t.Errorf("verify all: %v", err)
	}
}

func TestRenewOnlyWithinSkips(t *testing.T) {
	t.Parallel()
	h := newPKIHost(t, pkiOpts{})
	orig := snapshot(t, h)
	s := newStep(t, "renew_certs", "only_within: 1d")
	p, err := s.Plan(testCtx(t), h.target())
	if err != nil || p.WouldChange || !strings.Contains(p.Summary, "would skip: nothing expires within 1d") {
		t.Errorf("plan: %+v %v", p, err)
	}
	_, err = s.Apply(testCtx(t), h.target())
	if _, ok := IsSkip(err); !ok {
		t.Errorf("apply: %v", err)
	}
	if d := diffSnapshots(orig, snapshot(t, h)); len(d) > 0 {
		t.Errorf("host changed: %v", d)
	}
}

func TestRenewRefuses(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		opts   pkiOpts
		damage func(h *fakeHost)
		params string
		want   string
	}{
		{"external CA", pkiOpts{}, func(h *fakeHost) { must(t, os.Remove(filepath.Join(h.root, "etc/kubernetes/pki/ca.key"))) },
			"", "external CA: /etc/kubernetes/pki/ca.key is absent"},
		{"external etcd CA only matters for etcd certs", pkiOpts{}, func(h *fakeHost) { must(t, os.Remove(filepath.Join(h.root, "etc/kubernetes/pki/etcd/ca.key"))) },
			"certs: [etcd-server]", "signed by etcd-ca (etcd-server)"},
		{"CA expires first", pkiOpts{caValidity: "2400h"}, nil,
			"", "CA ca expires"},
		{"validity param", pkiOpts{caValidity: "2400h"}, nil,
			"validity: 200d\ncerts: [apiserver-etcd-client]", "CA etcd-ca expires"},
		{"missing listed cert", pkiOpts{}, func(h *fakeHost) { must(t, os.Remove(filepath.Join(h.root, "etc/kubernetes/super-admin.conf"))) },
			"certs: [super-admin.conf]", "certificate super-admin.conf not found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := newPKIHost(t, c.opts)
			if c.damage != nil {
				c.damage(h)
			}
			orig := snapshot(t, h)
			s := newStep(t, "renew_certs", c.params)
			if _, err := s.Plan(testCtx(t), h.target()); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("plan: %v, want %q", err, c.want)
			}
			if _, err := s.Apply(testCtx(t), h.target()); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("apply: %v, want %q", err, c.want)
			}
			if d := diffSnapshots(orig, snapshot(t, h)); len(d) > 0 {
				t.Errorf("host changed (no backup should even be taken): %v", d)
			}
		})
	}
	// A shorter validity is accepted with the same CA.
	h := newPKIHost(t, pkiOpts{caValidity: "2400h"})
	if _, err := newStep(t, "renew_certs", "validity: 48h\ncerts: [apiserver]").Plan(testCtx(t), h.target()); err != nil {
		t.Errorf("validity 48h: %v", err)
	}
}

// TestRenewKubeadmFailsMidway: kubeadm renews part of the set and fails; the
// host must be restored byte for byte, and the error must say so.
func TestRenewKubeadmFailsMidway(t *testing.T) {
	t.Parallel()
	h := newPKIHost(t, pkiOpts{})
	real := kubeadmBin(t)
	must(t, os.Remove(filepath.Join(h.bin, "kubeadm")))
	wrapper := "#!/bin/sh\n" + real + " certs renew apiserver >/dev/null && " + real + " certs renew admin.conf >/dev/null\necho 'error: simulated failure after renewing apiserver and admin.conf' >&2\nexit 1\n"
	must(t, os.WriteFile(filepath.Join(h.bin, "kubeadm"), []byte(wrapper), 0o755))
	orig := snapshot(t, h)
	_, err := newStep(t, "renew_certs", "").Apply(testCtx(t), h.target())
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"kubeadm certs renew all", "simulated failure", "restored from backup /var/lib/kplay/backups/"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if d := diffSnapshots(orig, withoutPrefix(snapshot(t, h), backupPrefix)); len(d) > 0 {
		t.Errorf("host not restored:\n%s", strings.Join(d, "\n"))
	}
}

// TestRenewCancelledRestores: a cancelled run still restores.
func TestRenewCancelledRestores(t *testing.T) {
	t.Parallel()
	h := newPKIHost(t, pkiOpts{})
	real := kubeadmBin(t)
	must(t, os.Remove(filepath.Join(h.bin, "kubeadm")))
	must(t, os.WriteFile(filepath.Join(h.bin, "kubeadm"), []byte("#!/bin/sh\n"+real+" certs renew apiserver >/dev/null\nsleep 60\n"), 0o755))
	orig := snapshot(t, h)
	ctx, cancel := context.WithCancel(testCtx(t))
	go func() {
		// Cancel once apiserver.crt has changed.
		for ctx.Err() == nil {
			if snapshot(t, h)["etc/kubernetes/pki/apiserver.crt"] != orig["etc/kubernetes/pki/apiserver.crt"] {
				cancel()
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	_, err := newStep(t, "renew_certs", "").Apply(ctx, h.target())
	if err == nil || !strings.Contains(err.Error(), "restored from backup") {
		t.Errorf("err = %v", err)
	}
	if d := diffSnapshots(orig, withoutPrefix(snapshot(t, h), backupPrefix)); len(d) > 0 {
		t.Errorf("host not restored:\n%s", strings.Join(d, "\n"))
	}
}

func TestVerifyEnddateFailures(t *testing.T) {
	t.Parallel()
	h := newPKIHost(t, pkiOpts{})
	ctx := testCtx(t)
	kd := filepath.Join(h.root, "etc/kubernetes")
	// 48h certificates pass with min_days 0, fail with the default 300.
	if _, err := newStep(t, "verify_enddate", "min_days: 0").Apply(ctx, h.target()); err != nil {
		t.Errorf("min_days 0: %v", err)
	}
	_, err := newStep(t, "verify_enddate", "").Apply(ctx, h.target())
	if err == nil || !strings.Contains(err.Error(), "11 of 11 certificates failed") {
		t.Errorf("default: %v", err)
	}
	// A key that does not match its certificate.
	must(t, os.Rename(filepath.Join(kd, "pki/front-proxy-client.key"), filepath.Join(kd, "pki/front-proxy-client.key.orig")))
	b, _ := os.ReadFile(filepath.Join(kd, "pki/apiserver.key"))
	must(t, os.WriteFile(filepath.Join(kd, "pki/front-proxy-client.key"), b, 0o600))
	_, err = newStep(t, "verify_enddate", "min_days: 0\ncerts: [front-proxy-client, apiserver]").Apply(ctx, h.target())
	if err == nil || !strings.Contains(err.Error(), "front-proxy-client") || !strings.Contains(err.Error(), "does not match its private key") {
		t.Errorf("key mismatch: %v", err)
	}
	if strings.Contains(err.Error(), "apiserver (") {
		t.Errorf("apiserver should pass: %v", err)
	}
	// A certificate signed by another CA (etcd-ca's cert in place of apiserver's CA).
	must(t, os.Rename(filepath.Join(kd, "pki/front-proxy-client.key.orig"), filepath.Join(kd, "pki/front-proxy-client.key")))
	etcdCA, _ := os.ReadFile(filepath.Join(kd, "pki/etcd/ca.crt"))
	must(t, os.WriteFile(filepath.Join(kd, "pki/ca.crt"), etcdCA, 0o644))
	_, err = newStep(t, "verify_enddate", "min_days: 0\ncerts: [apiserver, etcd-server]").Apply(ctx, h.target())
	if err == nil || !strings.Contains(err.Error(), "apiserver (/etc/kubernetes/pki/apiserver.crt): does not chain to CA ca") || strings.Contains(err.Error(), "etcd-server (") {
		t.Errorf("chain: %v", err)
	}
	// Missing key.
	must(t, os.Remove(filepath.Join(kd, "pki/etcd/server.key")))
	_, err = newStep(t, "verify_enddate", "min_days: 0\ncerts: [etcd-server]").Apply(ctx, h.target())
	if err == nil || !strings.Contains(err.Error(), "private key could not be read") {
		t.Errorf("missing key: %v", err)
	}
	h.assertNoSecrets(t, nil)
}

// TestBackupRetention: after a backup, only the newest keep: complete
// backups stay; incomplete ones and directories that are not kplay backups
// are never touched; keep: 0 keeps everything; a negative keep is refused.
func TestBackupRetention(t *testing.T) {
	t.Parallel()
	h := newPKIHost(t, pkiOpts{})
	ctx := testCtx(t)
	root := filepath.Join(h.root, "var/lib/kplay/backups")
	old := func(name string, complete bool) {
		must(t, os.MkdirAll(filepath.Join(root, name, "files"), 0o700))
		if complete {
			must(t, os.WriteFile(filepath.Join(root, name, "COMPLETE"), []byte("x\n"), 0o600))
		}
	}
	for i := 1; i <= 12; i++ {
		old(fmt.Sprintf("202501%02dT000000Z-aaaaaa", i), true)
	}
	old("20250113T000000Z-incomplete", false)
	old("my notes", true)
	old("20250114T000000Z-a b", true) // not a name kplay makes: left alone
	tg := h.target()                  // its run id sorts after all of them
	r, err := newStep(t, "backup", "keep: 3").Apply(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	if info := r.Data.(BackupInfo); info.Pruned != 10 || !strings.Contains(r.Message, "removed 10 older backup(s), keeping the newest 3") {
		t.Errorf("pruned %d: %s", info.Pruned, r.Message)
	}
	var left []string
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		left = append(left, e.Name())
	}
	want := []string{"20250111T000000Z-aaaaaa", "20250112T000000Z-aaaaaa", "20250113T000000Z-incomplete", "20250114T000000Z-a b", "my notes", tg.RunID}
	sort.Strings(want)
	if strings.Join(left, "|") != strings.Join(want, "|") {
		t.Errorf("left after keep 3:\n%v\nwant\n%v", left, want)
	}
	if s, err := buildStep("backup", "keep: 0"); err != nil || s.(*Backup).Keep != 0 {
		t.Errorf("keep 0 (keep all): %+v, %v", s, err)
	}
	if _, err := buildStep("backup", "keep: -1"); err == nil || !strings.Contains(err.Error(), "keep") {
		t.Errorf("keep -1: %v", err)
	}
}
