package main

import (
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	c, err := parseFlags([]string{
		"--advertise-address=10.0.0.1", "--allow-privileged=true", "--secure-port", "7443",
		"--tls-cert-file=/c.crt", "--tls-private-key-file=/c.key", "--client-ca-file=/ca.crt",
		"--etcd-servers=https://127.0.0.1:2379", "--kplay-start-delay=1s", "-v=2", "positional",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := config{certFile: "/c.crt", keyFile: "/c.key", clientCA: "/ca.crt", port: 7443,
		bind: "0.0.0.0", advertise: "10.0.0.1", startDelay: time.Second}
	if c != want {
		t.Errorf("parseFlags = %+v, want %+v", c, want)
	}
	if _, err := parseFlags([]string{"--tls-cert-file=/c.crt"}); err == nil {
		t.Error("no error without --tls-private-key-file")
	}
	if _, err := parseFlags([]string{"--tls-cert-file=/c", "--tls-private-key-file=/k", "--secure-port=x"}); err == nil {
		t.Error("no error for a bad --secure-port")
	}
}
