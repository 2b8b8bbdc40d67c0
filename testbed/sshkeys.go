package testbed

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"os"
)

// sshKey is a key pair in OpenSSH's formats.
type sshKey struct {
	private []byte // "OPENSSH PRIVATE KEY" PEM, unencrypted
	public  string // authorized_keys line: TYPE BASE64 COMMENT
	typ     string // ssh-ed25519, ecdsa-sha2-nistp256
	blob    []byte // public key in SSH wire format
}

// sshString appends an SSH wire-format string.
func sshString(b []byte, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// sshMpint appends an SSH wire-format mpint of a non-negative big-endian
// number.
func sshMpint(b []byte, n []byte) []byte {
	for len(n) > 0 && n[0] == 0 {
		n = n[1:]
	}
	if len(n) > 0 && n[0]&0x80 != 0 {
		n = append([]byte{0}, n...)
	}
	return sshString(b, n)
}

// newSSHKey generates an ed25519 or ecdsa (P-256) key, as ssh-keygen -t TYPE
// would, without running it: Start makes hundreds of host keys.
func newSSHKey(kind, comment string) (*sshKey, error) {
	var typ string
	var blob, priv []byte
	switch kind {
	case "ed25519":
		pub, sk, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate ed25519 key: %w", err)
		}
		typ = "ssh-ed25519"
		blob = sshString(sshString(nil, []byte(typ)), pub)
		priv = sshString(nil, []byte(typ))
		priv = sshString(priv, pub)
		priv = sshString(priv, sk)
	case "ecdsa":
		sk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate ecdsa key: %w", err)
		}
		ek, err := sk.ECDH()
		if err != nil {
			return nil, fmt.Errorf("ecdsa key: %w", err)
		}
		typ = "ecdsa-sha2-nistp256"
		q := ek.PublicKey().Bytes()
		blob = sshString(sshString(sshString(nil, []byte(typ)), []byte("nistp256")), q)
		priv = sshString(nil, []byte(typ))
		priv = sshString(priv, []byte("nistp256"))
		priv = sshString(priv, q)
		priv = sshMpint(priv, ek.Bytes())
	default:
		return nil, fmt.Errorf("unknown ssh key type %q", kind)
	}
	var check [4]byte
	if _, err := rand.Read(check[:]); err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	sec := append(append([]byte{}, check[:]...), check[:]...)
	sec = append(sec, priv...)
	sec = sshString(sec, []byte(comment))
	for i := byte(1); len(sec)%8 != 0; i++ {
		sec = append(sec, i)
	}
	out := []byte("openssh-key-v1\x00")
	out = sshString(out, []byte("none"))
	out = sshString(out, []byte("none"))
	out = sshString(out, nil)
	out = binary.BigEndian.AppendUint32(out, 1)
	out = sshString(out, blob)
	out = sshString(out, sec)
	return &sshKey{
		private: pem.EncodeToMemory(&pem.Block{Type: "OPENSSH PRIVATE KEY", Bytes: out}),
		public:  typ + " " + base64.StdEncoding.EncodeToString(blob) + " " + comment + "\n",
		typ:     typ,
		blob:    blob,
	}, nil
}

// knownHostsLine is the plain known_hosts line for addr.
func (k *sshKey) knownHostsLine(addr string) string {
	return addr + " " + k.typ + " " + base64.StdEncoding.EncodeToString(k.blob) + "\n"
}

// write stores the key as path (0600) and path.pub (0644).
func (k *sshKey) write(path string) error {
	if err := os.WriteFile(path, k.private, 0o600); err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	if err := os.WriteFile(path+".pub", []byte(k.public), 0o644); err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	return nil
}
