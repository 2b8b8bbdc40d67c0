package steps

import (
	"context"
	_ "embed" // scripts/verify_credential.sh
	"fmt"
	"strings"
	"time"

	"github.com/kplay/kplay/internal/hostexec"
	"github.com/kplay/kplay/internal/retry"
	"github.com/kplay/kplay/internal/shellquote"
)

// verifyCredentialSh is scripts/verify_credential.sh: curl on the host
// with the credential embedded in admin.conf, which stays on the host.
//
//go:embed scripts/verify_credential.sh
var verifyCredentialSh string

// verifyOnHost is verifyCredential made on the host itself, for a host
// whose SSH server forbids forwarding: curl there GETs SERVER/api with
// the credential of conf (the admin.conf just fetched), retrying
// connection errors until timeout. Without curl, or with a kubeconfig
// that embeds no credential, the check is not made (a *notMadeError).
func verifyOnHost(ctx context.Context, t *Target, conf string, cr *kcCredential, timeout time.Duration) (string, error) {
	u := strings.TrimSuffix(cr.Server, "/") + "/api"
	insecure := "0"
	if cr.Insecure {
		insecure = "1"
	}
	var verified string
	err := retry.Poll(ctx, timeout, time.Second, fmt.Sprintf("GET %s with user %s's client certificate, from %s", u, cr.User, t.Name()), func(ctx context.Context) (bool, string, error) {
		m := newMarker()
		out, err := t.Run(ctx, shellquote.Script(verifyCredentialSh, conf, cr.Server, insecure, m))
		if st, ok := hostexec.ExitStatus(err); ok && (st == 127 || st == 3) {
			return false, "", &notMadeError{fmt.Sprintf("GET %s from %s (its SSH server forbids forwarding) cannot be made there: %v", u, t.Name(), err)}
		}
		if err != nil {
			return false, "", fmt.Errorf("GET %s on %s: %w", u, t.Name(), err)
		}
		_, res, _ := strings.Cut(string(out), m)
		code, curlRC, _ := strings.Cut(strings.TrimSpace(res), " ")
		switch {
		case code == "200":
			verified = fmt.Sprintf("credential of user %s accepted: GET %s from %s → 200", cr.User, u, t.Name())
			return true, "", nil
		case code == "401" || code == "403":
			return false, "", fmt.Errorf("GET %s from %s with user %s's client certificate: %s (credential rejected)", u, t.Name(), cr.User, code)
		case curlRC == "60":
			return false, "", fmt.Errorf("GET %s from %s: the server's certificate does not verify against admin.conf's CA (curl exit 60)", u, t.Name())
		}
		return false, fmt.Sprintf("HTTP %s, curl exit %s", code, curlRC), nil
	})
	if err != nil {
		return "", err
	}
	return verified, nil
}
