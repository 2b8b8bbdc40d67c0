package steps

import (
	"context"
	"crypto/x509"
	"fmt"
	"strings"
	"time"

	"github.com/kplay/kplay/internal/hostexec"
	"github.com/kplay/kplay/internal/shellquote"
)

// renew_kubelet_client's way back: the issue script's report, restore.sh in
// the backup, and putting the host back after a failure.

// kubeletClientIssued is what the issue script reported.
type kubeletClientIssued struct {
	file, target, backup  string
	certDigest, keyDigest string
	cert                  *x509.Certificate
}

// parseKubeletClientIssued parses the issue script's output.
func parseKubeletClientIssued(out []byte, m string) (*kubeletClientIssued, error) {
	r := &kubeletClientIssued{}
	var certPEM []byte
	inCert := false
	for _, line := range strings.SplitAfter(string(out), "\n") {
		rest, ok := strings.CutPrefix(line, m+" ")
		if !ok {
			if inCert {
				certPEM = append(certPEM, line...)
			}
			continue
		}
		inCert = false
		word, arg, _ := strings.Cut(strings.TrimSuffix(rest, "\n"), " ")
		switch word {
		case "new":
			r.file = arg
		case "target":
			r.target = arg
		case "backup":
			r.backup = arg
		case "digests":
			r.certDigest, r.keyDigest, _ = strings.Cut(arg, " ")
		case "cert":
			inCert = true
		}
	}
	certs, err := kubeletClientPEMCerts(certPEM)
	if err != nil {
		return nil, fmt.Errorf("the new certificate: %w", err)
	}
	if len(certs) == 0 || r.file == "" || r.backup == "" {
		return nil, fmt.Errorf("the issue script's output is incomplete (%d bytes)", len(out))
	}
	r.cert = certs[0]
	return r, nil
}

// restoreScript is restore.sh in the backup directory: it puts back
// kubelet.conf and kubelet-client-current.pem from the directory it is in.
func (s *RenewKubeletClient) restoreScript(runID string) string {
	return "#!/bin/sh\n# kplay renew_kubelet_client, run " + runID + ": put back kubelet.conf and kubelet-client-current.pem\n" +
		"# as they were before, from the directory this file is in; then restart the kubelet.\nset -eu\n" +
		kubeletClientRestoreLib +
		`b=$(cd -- "$(dirname -- "$0")" && pwd)
rkc_restore "$(cat -- "$b/kubelet_pki")" "$(cat -- "$b/kubelet_conf")" "$b" "$(cat -- "$b/new")"
echo "now restart the kubelet: "` + shellquote.Quote(s.Restart) + "\n"
}

// undoCmd restores from backup dir b, removing the new file.
func (s *RenewKubeletClient) undoCmd(b, file string) string {
	return kubeletClientCmd("set -eu\n"+kubeletClientRestoreLib+`rkc_restore "$@"`+"\n", s.KubeletPKI, s.KubeletConf, b, file)
}

// recoverCmd restores from backup dir b if the switch may have begun (the
// backup is complete): for an issue script whose outcome is unknown.
func (s *RenewKubeletClient) recoverCmd(b string) string {
	return kubeletClientCmd("set -eu\n"+kubeletClientRestoreLib+`if [ ! -f "$3/new" ]; then echo "no complete backup in $3: the switch had not begun, nothing changed"; exit 0; fi
rkc_restore "$1" "$2" "$3" "$(cat -- "$3/new")"
`, s.KubeletPKI, s.KubeletConf, b)
}

// restoreHint tells a person how to restore by hand.
func (s *RenewKubeletClient) restoreHint(b string) string {
	return fmt.Sprintf("on the host run: sh %s && %s", shellquote.Quote(b+"/restore.sh"), s.Restart)
}

// freshKubeletClientCtx returns a context for restoring after a failure: the run's may be cancelled.
func freshKubeletClientCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 2*time.Minute)
}

// issueFailed explains a failed issue script, restoring the host first when
// the script may have stopped during the switch.
func (s *RenewKubeletClient) issueFailed(t *Target, b string, err error) error {
	err = fmt.Errorf("renewing the kubelet client certificate: %w", err)
	st, ok := hostexec.ExitStatus(err)
	switch {
	case ok && st == kubeletClientExitRestored:
		return &RestoredError{Err: err, How: fmt.Sprintf("kubelet.conf and kubelet-client-current.pem were put back from %s", b)}
	case ok && st == kubeletClientExitRestoreFails:
		return fmt.Errorf("%w; putting kubelet.conf and kubelet-client-current.pem back ALSO FAILED: %s", err, s.restoreHint(b))
	case ok && st > 0 && st < 128:
		return err // the script stopped before the switch: nothing was changed
	}
	// Killed, cancelled or the connection was lost: the outcome is unknown.
	rctx, cancel := freshKubeletClientCtx()
	defer cancel()
	out, rerr := t.Run(rctx, s.recoverCmd(b))
	if rerr != nil {
		return fmt.Errorf("%w; the host may be half switched, and restoring it failed (%v): %s", err, rerr, s.restoreHint(b))
	}
	return &RestoredError{Err: err, How: "checked the host: " + lastLine(out)}
}

// restoreAfter puts back kubelet.conf and the link after a failure that
// followed a complete switch, restarts the kubelet onto them, and says so in
// the returned error.
func (s *RenewKubeletClient) restoreAfter(t *Target, b, file string, cause error) error {
	rctx, cancel := freshKubeletClientCtx()
	defer cancel()
	cmd := s.recoverCmd(b)
	if file != "" {
		cmd = s.undoCmd(b, file)
	}
	if _, err := t.Run(rctx, cmd); err != nil {
		return fmt.Errorf("%w; putting kubelet.conf and kubelet-client-current.pem back from %s ALSO FAILED (%v): %s", cause, b, err, s.restoreHint(b))
	}
	if _, err := t.Run(rctx, s.Restart); err != nil {
		return fmt.Errorf("%w; kubelet.conf and kubelet-client-current.pem were put back from %s, but restarting the kubelet onto them failed (%v): run %s", cause, b, err, s.Restart)
	}
	return &RestoredError{Err: cause, How: fmt.Sprintf("kubelet.conf and kubelet-client-current.pem were put back from %s and the kubelet restarted (%s)", b, s.Restart)}
}

// undo puts back the previous link and kubelet.conf, removes the new file and restarts the kubelet.
func (s *RenewKubeletClient) undo(is *kubeletClientIssued) *Undo {
	return &Undo{
		Repeatable: true,
		Desc:       fmt.Sprintf("put back kubelet.conf and kubelet-client-current.pem from %s, remove %s, and restart the kubelet (%s)", is.backup, is.file, s.Restart),
		Restore:    s.restoreHint(is.backup),
		Fn: func(ctx context.Context, t *Target) error {
			if _, err := t.Run(ctx, s.undoCmd(is.backup, is.file)); err != nil {
				return fmt.Errorf("putting back kubelet.conf and kubelet-client-current.pem from %s: %w", is.backup, err)
			}
			if _, err := t.Run(ctx, s.Restart); err != nil {
				return fmt.Errorf("kubelet.conf and kubelet-client-current.pem were put back from %s, but restarting the kubelet failed (%s): %w", is.backup, s.Restart, err)
			}
			return nil
		},
	}
}
