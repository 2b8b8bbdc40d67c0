// Command kube-apiserver is the kplay testbed's kube-apiserver stand-in,
// installed on test hosts under that name so that the command in kubeadm's
// static pod manifest runs it.
//
// It accepts and ignores every kube-apiserver flag except --tls-cert-file,
// --tls-private-key-file, --client-ca-file, --secure-port (default 6443),
// --bind-address (default 0.0.0.0, like the real one) and
// --advertise-address. It reads its serving certificate once, at start, so a
// renewed certificate is served only after a restart. It serves HTTPS:
//
//   - /livez, /readyz, /healthz: 200 "ok" without a client certificate;
//   - /api: with a client certificate signed by the client CA, a small
//     APIVersions object; without one, 401;
//   - /version: the version object (no client certificate needed).
//
// For health-gate tests: --kplay-start-delay=DURATION, the environment
// variable KPLAY_APISERVER_START_DELAY, or the file
// /var/lib/kplay-testbed/apiserver-start-delay (holding a duration) delays
// the start of serving; while the file
// /var/lib/kplay-testbed/apiserver-unhealthy exists, /livez, /readyz and
// /healthz answer 500.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	// delayFile holds a start delay (a Go duration).
	delayFile = "/var/lib/kplay-testbed/apiserver-start-delay"
	// unhealthyFile makes the health endpoints fail while it exists.
	unhealthyFile = "/var/lib/kplay-testbed/apiserver-unhealthy"
	// gitVersion is the version the stand-in reports.
	gitVersion = "v1.34.4"
)

// config is what the stand-in takes from its flags.
type config struct {
	certFile, keyFile, clientCA string
	port                        int
	bind, advertise             string
	startDelay                  time.Duration
}

// parseFlags reads the flags the stand-in uses from kube-apiserver's command
// line (--name=value or --name value) and ignores the rest.
func parseFlags(args []string) (config, error) {
	c := config{port: 6443, bind: "0.0.0.0"}
	known := map[string]*string{}
	var port, delay string
	known["tls-cert-file"] = &c.certFile
	known["tls-private-key-file"] = &c.keyFile
	known["client-ca-file"] = &c.clientCA
	known["secure-port"] = &port
	known["bind-address"] = &c.bind
	known["advertise-address"] = &c.advertise
	known["kplay-start-delay"] = &delay
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "--") {
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		dst, ok := known[name]
		if !ok {
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return c, fmt.Errorf("flag --%s needs a value", name)
			}
			i++
			value = args[i]
		}
		*dst = value
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return c, fmt.Errorf("bad --secure-port %q", port)
		}
		c.port = n
	}
	if delay == "" {
		delay = os.Getenv("KPLAY_APISERVER_START_DELAY")
	}
	if delay == "" {
		if data, err := os.ReadFile(delayFile); err == nil {
			delay = strings.TrimSpace(string(data))
		}
	}
	if delay != "" {
		d, err := time.ParseDuration(delay)
		if err != nil {
			return c, fmt.Errorf("bad start delay %q: %w", delay, err)
		}
		c.startDelay = d
	}
	if c.certFile == "" || c.keyFile == "" {
		return c, errors.New("--tls-cert-file and --tls-private-key-file are required")
	}
	return c, nil
}

func main() {
	log.SetPrefix("kube-apiserver(stand-in): ")
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	c, err := parseFlags(os.Args[1:])
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	if err := run(ctx, c); err != nil {
		log.Fatal(err)
	}
}

// run serves until ctx ends.
func run(ctx context.Context, c config) error {
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("load serving certificate: %w", err)
	}
	if leaf, err := x509.ParseCertificate(cert.Certificate[0]); err == nil {
		log.Printf("serving certificate %s: serial %s, not after %s", c.certFile, leaf.SerialNumber, leaf.NotAfter.Format(time.RFC3339))
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.clientCA != "" {
		pem, err := os.ReadFile(c.clientCA)
		if err != nil {
			return fmt.Errorf("read client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("client CA %s: no certificates", c.clientCA)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.VerifyClientCertIfGiven
	}
	if c.startDelay > 0 {
		log.Printf("delaying start by %v", c.startDelay)
		select {
		case <-time.After(c.startDelay):
		case <-ctx.Done():
			return nil
		}
	}
	addr := net.JoinHostPort(c.bind, strconv.Itoa(c.port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: handler(c), TLSConfig: tc, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: log.New(os.Stderr, "kube-apiserver(stand-in): http: ", log.LstdFlags)}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Printf("serving on https://%s (advertise %s)", addr, c.advertise)
	if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	log.Printf("stopped")
	return nil
}

// handler serves the stand-in's endpoints.
func handler(c config) http.Handler {
	mux := http.NewServeMux()
	health := func(w http.ResponseWriter, r *http.Request) {
		if _, err := os.Stat(unhealthyFile); err == nil {
			http.Error(w, "[-]kplay-testbed failed: "+unhealthyFile+" exists", http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "ok")
	}
	for _, p := range []string{"/livez", "/readyz", "/healthz"} {
		mux.HandleFunc(p, health)
	}
	mux.HandleFunc("/version", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]string{"major": "1", "minor": "34", "gitVersion": gitVersion, "platform": "linux/amd64"})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}`+"\n")
			return
		}
		if r.URL.Path != "/api" && r.URL.Path != "/api/" {
			http.NotFound(w, r)
			return
		}
		server := net.JoinHostPort(c.advertise, strconv.Itoa(c.port))
		writeJSON(w, map[string]any{
			"kind":     "APIVersions",
			"versions": []string{"v1"},
			"serverAddressByClientCIDRs": []map[string]string{
				{"clientCIDR": "0.0.0.0/0", "serverAddress": server},
			},
		})
	})
	return mux
}

// writeJSON writes v as a JSON response.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
