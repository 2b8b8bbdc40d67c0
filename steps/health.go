package steps

import (
	"bufio"
	"bytes"
	"context"
	_ "embed" // scripts/http_get.sh
	"encoding/json"
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/kplay/kplay/internal/hostexec"
	"github.com/kplay/kplay/internal/retry"
	"github.com/kplay/kplay/internal/shellquote"
)

// httpGetSh is scripts/http_get.sh: curl on the host, keys staying there.
//
//go:embed scripts/http_get.sh
var httpGetSh string

// prober asks a host's control-plane components whether they are healthy,
// with curl on the host (so it works wherever SSH does).
type prober struct {
	kubeDir  string
	interval time.Duration
}

// healthURL is where a component answers for its health, and with which
// client certificate and CA (kubeadm names under pki/; "" for none).
type healthURL struct {
	url, cert, ca string
	// judge says whether an answer is healthy.
	judge func(code, body string) bool
}

// healthOf says how to ask component c for its health: the apiserver's
// /readyz (which covers its etcd connection, unlike /livez), etcd's
// /health (a leader and a quorum read: the member has rejoined), and the
// controllers' /healthz.
func healthOf(c component) healthURL {
	base := "https://" + net.JoinHostPort(c.address, strconv.Itoa(c.port))
	ok200 := func(code, _ string) bool { return code == "200" }
	switch c.name {
	case "kube-apiserver":
		return healthURL{url: base + "/readyz", cert: "apiserver-kubelet-client", judge: ok200}
	case "etcd":
		return healthURL{url: base + "/health", cert: "etcd/healthcheck-client", ca: "etcd/ca.crt",
			judge: func(code, body string) bool { return code == "200" && etcdHealthy(body) }}
	}
	return healthURL{url: base + "/healthz", judge: ok200}
}

// waitHealthy waits until c answers healthy, polling every interval.
func (p prober) waitHealthy(ctx context.Context, t *Target, c component, timeout time.Duration) error {
	h := healthOf(c)
	return retry.Poll(ctx, timeout, p.interval, fmt.Sprintf("%s to be healthy on %s", c.name, h.url), func(ctx context.Context) (bool, string, error) {
		code, body, err := p.get(ctx, t, h.url, h.cert, h.ca)
		if err != nil {
			return false, "", err
		}
		if code == "no-cert" {
			// Not kubeadm's layout: the open port is all that can be checked.
			up, err := listening(ctx, t, c.port)
			return up, fmt.Sprintf("port %d listening: %v", c.port, up), err
		}
		return h.judge(code, body), fmt.Sprintf("%s answered %s %s", path.Base(h.url), code, strings.TrimSpace(body)), nil
	})
}

// etcdHealthy reports whether an etcd /health body says healthy.
func etcdHealthy(body string) bool {
	var h struct {
		Health string `json:"health"`
	}
	return json.Unmarshal([]byte(body), &h) == nil && h.Health == "true"
}

// get fetches u with curl on the host and returns the HTTP code ("error" if
// the request failed) and the body (cut to 4 KiB). It authenticates with the
// kubeadm client certificate pki/NAME.crt and .key where both exist (the key
// stays on the host); if ca is set, the server must verify against pki/CA,
// and without the client certificate the code is "no-cert" and nothing is
// fetched.
func (p prober) get(ctx context.Context, t *Target, u, name, ca string) (code, body string, err error) {
	crt, key, caPath := "", "", ""
	if name != "" {
		crt, key = path.Join(p.kubeDir, "pki", name+".crt"), path.Join(p.kubeDir, "pki", name+".key")
	}
	if ca != "" {
		caPath = path.Join(p.kubeDir, "pki", ca)
	}
	m := newMarker()
	out, err := t.Run(ctx, shellquote.Script(httpGetSh, u, crt, key, caPath, m))
	if err != nil {
		if st, ok := hostexec.ExitStatus(err); (ok && st == 127) || ctx.Err() != nil {
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
