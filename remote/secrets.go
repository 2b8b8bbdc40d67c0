package remote

import (
	"bytes"
	"fmt"
	"path"
	"strings"

	"github.com/kplay/kplay/internal/hostexec"
)

// What never leaves a host: private keys in command output and files.

// secretMarker is the PEM header of any private key.
const secretMarker = "PRIVATE KEY-----"

// checkSecret refuses output that holds a PEM private key.
func checkSecret(b []byte) error {
	if bytes.Contains(b, []byte(secretMarker)) {
		return fmt.Errorf("%w: the output held a PEM private key and was discarded", hostexec.ErrSecretPath)
	}
	return nil
}

// withoutSecret returns b, or nil when b holds a PEM private key.
func withoutSecret(b []byte) []byte {
	if checkSecret(b) != nil {
		return nil
	}
	return b
}

// redactStderr returns tail, the part of stderr shown in errors, or a
// notice when any of the kept stderr holds a PEM private key (a key's
// body lines are followed by its END line, so a tail with body lines
// shows the marker too).
func redactStderr(kept, tail string) string {
	if strings.Contains(kept, secretMarker) || strings.Contains(tail, secretMarker) {
		return "(stderr withheld: it held a PEM private key)"
	}
	return tail
}

// IsSecretPath reports whether p names a private key file, which kplay never reads.
func IsSecretPath(p string) bool {
	base := path.Base(p)
	return strings.HasSuffix(base, ".key") || strings.HasSuffix(base, "_key") || // ssh_host_ed25519_key
		strings.HasPrefix(base, "id_") && !strings.HasSuffix(base, ".pub")
}
