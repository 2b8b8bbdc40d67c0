package sshconfig

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
)

// pathTokens are the tokens OpenSSH expands in IdentityFile,
// CertificateFile and UserKnownHostsFile (ssh_config(5), TOKENS).
const pathTokens = "%CdhikLlnpru"

// checkTokens says what is wrong with the tokens of v (those not in
// allowed, a lone %, an unset or unterminated ${VAR}), or "".
func checkTokens(v, allowed string) string {
	for i := 0; i < len(v); i++ {
		switch {
		case v[i] == '%':
			if i+1 >= len(v) {
				return fmt.Sprintf("%q ends with a lone %%", v)
			}
			i++
			if !strings.ContainsRune(allowed, rune(v[i])) {
				return fmt.Sprintf("%q: unknown token %%%c here (allowed: %s)", v, v[i], tokenList(allowed))
			}
		case v[i] == '$' && i+1 < len(v) && v[i+1] == '{':
			end := strings.IndexByte(v[i:], '}')
			if end < 0 {
				return fmt.Sprintf("%q: unterminated ${", v)
			}
			if name := v[i+2 : i+end]; os.Getenv(name) == "" {
				return fmt.Sprintf("%q: environment variable %s is not set", v, name)
			}
			i += end
		}
	}
	return ""
}

// tokenList prints allowed as %x tokens.
func tokenList(allowed string) string {
	var parts []string
	for _, c := range allowed {
		parts = append(parts, "%"+string(c))
	}
	return strings.Join(parts, " ")
}

// tokens are the values of the tokens for one connection.
type tokens map[byte]string

// pathTokenValues are the values of pathTokens for a connection to
// hostname:port as remoteUser, given on the command line as original.
func pathTokenValues(home, original, hostname, remoteUser string, port int) tokens {
	t := tokens{'%': "%", 'd': home, 'h': hostname, 'n': original, 'k': original, 'p': strconv.Itoa(port), 'r': remoteUser,
		'i': strconv.Itoa(os.Getuid())}
	if u, err := user.Current(); err == nil {
		t['u'] = u.Username
	}
	if h, err := os.Hostname(); err == nil {
		t['l'] = h
		t['L'], _, _ = strings.Cut(h, ".")
	}
	sum := sha1.Sum([]byte(t['l'] + t['h'] + t['p'] + t['r']))
	t['C'] = hex.EncodeToString(sum[:])
	return t
}

// expand replaces ${VAR} and the tokens in v (checked when the file was
// loaded, so every one is known).
func (t tokens) expand(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		switch {
		case v[i] == '%' && i+1 < len(v):
			i++
			b.WriteString(t[v[i]])
		case v[i] == '$' && i+1 < len(v) && v[i+1] == '{':
			end := strings.IndexByte(v[i:], '}')
			if end < 0 {
				b.WriteString(v[i:])
				return b.String()
			}
			b.WriteString(os.Getenv(v[i+2 : i+end]))
			i += end
		default:
			b.WriteByte(v[i])
		}
	}
	return b.String()
}
