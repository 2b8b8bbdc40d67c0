// Package certreport holds the report of kplay check and writes it in the
// formats other tools read: versioned JSON, JUnit XML and Prometheus text.
package certreport

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/kplay/kplay/steps"
)

// SchemaVersion is the version of the JSON document, documented by
// docs/schema/check.v1.json. It changes only when a field changes meaning
// or goes away; new fields do not change it.
const SchemaVersion = 1

// State is a certificate's state as of the check.
type State string

// The states of a certificate.
const (
	// StateOK: present, and does not expire within the window.
	StateOK State = "ok"
	// StateExpiring: present, and expires within the window.
	StateExpiring State = "expiring"
	// StateExpired: present, and already expired at the time of the check.
	StateExpired State = "expired"
	// StateMissing: the file kubeadm would have written is absent.
	StateMissing State = "missing"
)

// Report is the outcome of kplay check, also its JSON document.
type Report struct {
	SchemaVersion int       `json:"schema_version"`
	Within        string    `json:"within"`
	CheckedAt     time.Time `json:"checked_at"`
	// Expiring counts the certificates that expire before checked_at + within, the expired ones included.
	Expiring int `json:"expiring"`
	// Expired counts the certificates that had already expired at checked_at.
	Expired  int    `json:"expired"`
	ExitCode int    `json:"exit_code"`
	Hosts    []Host `json:"hosts"`
	RunID    string `json:"run_id"`
	// Unchecked names the hosts that could not be checked (empty when every host was).
	Unchecked []string `json:"unchecked"`
	// Renew is the command that renews the expiring certificates (exit 3 only).
	Renew      string `json:"renew,omitempty"`
	Thresholds string `json:"thresholds"`
}

// Host is one host of the check.
type Host struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	// Error is why the host could not be checked (omitted if it was).
	Error        string `json:"error,omitempty"`
	Certificates []Cert `json:"certificates"`
}

// Cert is one certificate of a host, as of the check.
type Cert struct {
	Host    string `json:"host"`
	Name    string `json:"name"`
	Path    string `json:"path"`
	Kind    string `json:"kind"`
	State   State  `json:"state"`
	Subject string `json:"subject,omitempty"`
	Issuer  string `json:"issuer,omitempty"`
	CA      string `json:"ca,omitempty"`
	// NotBefore, NotAfter and DaysLeft are null for a missing certificate.
	NotBefore *time.Time `json:"not_before"`
	NotAfter  *time.Time `json:"not_after"`
	DaysLeft  *int       `json:"days_left"`
	Expired   bool       `json:"expired"`
	// ExpiredAgoSeconds is how long before the check it expired (only when expired).
	ExpiredAgoSeconds int64  `json:"expired_ago_seconds,omitempty"`
	IsCA              bool   `json:"is_ca"`
	Renewable         bool   `json:"renewable"`
	Missing           bool   `json:"missing"`
	SHA256            string `json:"sha256,omitempty"`
}

// NewCert converts a certificate already aged as of now (steps.CertList.SetAge)
// and gives it its state for the window now+within.
func NewCert(c steps.CertInfo, now time.Time, within time.Duration) Cert {
	out := Cert{
		Host: c.Host, Name: c.Name, Path: c.Path, Kind: string(c.Kind), Subject: c.Subject, Issuer: c.Issuer, CA: c.CA,
		Expired: c.Expired, ExpiredAgoSeconds: c.ExpiredAgoSeconds, IsCA: c.IsCA, Renewable: c.Renewable,
		Missing: c.Missing, SHA256: c.SHA256,
	}
	if c.Missing {
		out.State = StateMissing
		return out
	}
	nb, na, days := c.NotBefore.UTC(), c.NotAfter.UTC(), c.DaysLeft
	out.NotBefore, out.NotAfter, out.DaysLeft = &nb, &na, &days
	if c.NotBefore.IsZero() {
		out.NotBefore = nil
	}
	switch {
	case c.Expired:
		out.State = StateExpired
	case c.NotAfter.Before(now.Add(within)):
		out.State = StateExpiring
	default:
		out.State = StateOK
	}
	return out
}

// NewCerts converts a host's certificates with NewCert.
func NewCerts(l steps.CertList, now time.Time, within time.Duration) []Cert {
	out := make([]Cert, 0, len(l))
	for _, c := range l {
		out = append(out, NewCert(c, now, within))
	}
	return out
}

// Checked reports whether the host's certificates were checked.
func (r *Report) Checked(host string) bool {
	for _, u := range r.Unchecked {
		if u == host {
			return false
		}
	}
	return true
}

// WriteJSON writes the report as one indented JSON document, with its
// schema version set.
func WriteJSON(w io.Writer, r *Report) error {
	doc := *r
	doc.SchemaVersion = SchemaVersion
	if doc.Unchecked == nil {
		doc.Unchecked = []string{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("writing the JSON report: %w", err)
	}
	return nil
}
