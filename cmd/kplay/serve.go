package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/kplay/kplay/internal/certreport"
)

// metricsServer answers Prometheus scrapes from the last finished check:
// a scrape never waits for SSH, and never starts one.
type metricsServer struct {
	mu      sync.RWMutex
	metrics []byte    // the last check, Prometheus text; nil before the first
	checked time.Time // when the last check finished
	failed  string    // why the last check produced no report, if it did not
}

// serveMetrics runs kplay check --serve: a check now and every --every,
// /metrics and /healthz on --serve, until SIGINT or SIGTERM (exit 0).
func serveMetrics(ctx, rollbackCtx context.Context, c *checker, stderr io.Writer) int {
	ln, err := net.Listen("tcp", c.f.serve)
	if err != nil {
		fmt.Fprintf(stderr, "kplay: --serve %s: %v\n", c.f.serve, err)
		return exitUsage
	}
	fmt.Fprintf(stderr, "kplay: serving Prometheus metrics on http://%s/metrics, checking %d host(s) every %s\n", ln.Addr(), len(c.plan.Hosts), c.f.every.d)
	ms := &metricsServer{}
	srv := &http.Server{Handler: ms.handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	for {
		ms.check(ctx, rollbackCtx, c, stderr)
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
			return exitOK
		case err := <-served:
			fmt.Fprintf(stderr, "kplay: --serve: %v\n", err)
			return exitFailed
		case <-time.After(c.f.every.d):
		}
	}
}

// check runs one check and keeps its metrics for the scrapes.
func (ms *metricsServer) check(ctx, rollbackCtx context.Context, c *checker, stderr io.Writer) {
	rep, err := c.run(ctx, rollbackCtx)
	if ctx.Err() != nil {
		return // stopping: keep the last full check
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ms.checked = time.Now()
	if rep == nil {
		ms.failed = err.Error()
		fmt.Fprintf(stderr, "kplay: check failed: %v\n", err)
		return
	}
	out, _, _ := summarise(rep, time.Now(), c.f.within.d, c.f.inventory)
	var b bytes.Buffer
	if err := certreport.WritePrometheus(&b, &out); err != nil {
		ms.failed = err.Error()
		return
	}
	ms.metrics, ms.failed = b.Bytes(), ""
}

// handler serves /metrics (the last check) and /healthz.
func (ms *metricsServer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		ms.mu.RLock()
		metrics := ms.metrics
		ms.mu.RUnlock()
		if metrics == nil {
			http.Error(w, "no check has finished yet", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write(metrics)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		ms.mu.RLock()
		checked, failed, have := ms.checked, ms.failed, ms.metrics != nil
		ms.mu.RUnlock()
		switch {
		case failed != "":
			http.Error(w, "the last check failed: "+failed, http.StatusServiceUnavailable)
		case !have:
			http.Error(w, "no check has finished yet", http.StatusServiceUnavailable)
		default:
			fmt.Fprintf(w, "ok: last check finished %s\n", checked.UTC().Format(time.RFC3339))
		}
	})
	return mux
}
