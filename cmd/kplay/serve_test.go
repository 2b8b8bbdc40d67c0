package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestMetricsHandler: before a check /metrics and /healthz say 503; after
// one, /metrics serves its text and /healthz says when; after a failed
// check, /metrics keeps the last good one while /healthz says 503.
func TestMetricsHandler(t *testing.T) {
	ms := &metricsServer{}
	srv := httptest.NewServer(ms.handler())
	defer srv.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tests := []struct {
		name              string
		set               func()
		metrics, healthz  int
		metricsHas, hzHas string
	}{
		{"before any check", func() {}, 503, 503, "no check has finished yet", "no check"},
		{"after a check", func() {
			ms.metrics, ms.checked = []byte("x509_cert_expired{host=\"cp1\"} 0\n"), time.Date(2026, 12, 4, 5, 0, 0, 0, time.UTC)
		}, 200, 200, "x509_cert_expired", "ok: last check finished 2026-12-04T05:00:00Z"},
		{"after a failed check", func() { ms.failed = "inventory gone" }, 200, 503, "x509_cert_expired", "the last check failed: inventory gone"},
	}
	for _, tt := range tests {
		tt.set()
		if code, body := get("/metrics"); code != tt.metrics || !strings.Contains(body, tt.metricsHas) {
			t.Errorf("%s: /metrics %d %q", tt.name, code, body)
		}
		if code, body := get("/healthz"); code != tt.healthz || !strings.Contains(body, tt.hzHas) {
			t.Errorf("%s: /healthz %d %q", tt.name, code, body)
		}
	}
}

// TestServeFlags: --serve's mistakes exit 2 before any host is contacted.
func TestServeFlags(t *testing.T) {
	for _, tt := range []struct{ args, want string }{
		{"--serve nocolon", "want host:port"},
		{"--serve :9793 --every 1s", "at least 10s"},
		{"--serve :9793 --output json", "takes no --output-file and no --output json"},
	} {
		var stderr strings.Builder
		_, err := parseFlags("check", append([]string{"-i", "inv.yaml"}, strings.Fields(tt.args)...), io.Discard, &stderr, false, true)
		if err == nil || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("%s: %v\n%s", tt.args, err, stderr.String())
		}
	}
}
