package integration

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kplay/kplay/testbed"
)

// TestCheckServe (issue 14): kplay check --serve is a remote exporter:
// it checks kubeadm hosts over SSH (real sshd, real kubeadm PKI) and serves
// enix x509-certificate-exporter's metrics for them on /metrics, and
// /healthz, on loopback; SIGTERM stops it with exit 0.
func TestCheckServe(t *testing.T) {
	b := testbed.Require(t, testbed.Options{Hosts: 2, Kube: true, CertValidity: 48 * time.Hour})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kplay.path, "check", "-i", b.InventoryPath, "--serve", "127.0.0.1:0", "--every", "10s")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	sc := bufio.NewScanner(stderr)
	addr := ""
	re := regexp.MustCompile(`http://(127\.0\.0\.1:[0-9]+)/metrics`)
	for addr == "" && sc.Scan() {
		t.Logf("kplay: %s", sc.Text())
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		t.Fatal("kplay never said where it serves")
	}
	go func() { _, _ = io.Copy(io.Discard, stderr) }()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	var code int
	var metrics string
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if code, metrics = get("/metrics"); code == http.StatusOK {
			break
		}
	}
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, metrics)
	}
	for _, h := range b.Hosts {
		line := regexp.MustCompile(`(?m)^x509_cert_not_after\{[^}]*host="` + h.Name + `"[^}]*\} [0-9.e+]+$`)
		if !line.MatchString(metrics) || !strings.Contains(metrics, `kplay_check_host_up{host="`+h.Name+`"} 1`) {
			t.Errorf("/metrics lacks %s's certificates or its up gauge:\n%s", h.Name, metrics)
		}
	}
	if code, body := get("/healthz"); code != http.StatusOK || !strings.HasPrefix(body, "ok: last check finished") {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if err != nil && (!errors.As(err, &ee) || ee.ExitCode() != 0) {
		t.Errorf("after SIGTERM: %v, want exit 0", err)
	}
}
