package steps

import (
	"bytes"
	"encoding/json"
	"math"
	"sort"
	"time"
)

// CertKind says what kind of certificate a CertInfo describes.
type CertKind string

// The kinds of certificates check_certs reports.
const (
	// KindPKI is a leaf certificate file under pki/ (renewed by kubeadm).
	KindPKI CertKind = "pki"
	// KindKubeconfig is a client certificate embedded in a kubeconfig (renewed by kubeadm).
	KindKubeconfig CertKind = "kubeconfig"
	// KindCA is a certificate authority (not renewed by kubeadm certs renew).
	KindCA CertKind = "ca"
	// KindKubelet is kubelet's client certificate (rotated by kubelet, not by kubeadm).
	KindKubelet CertKind = "kubelet"
)

// CertInfo describes one certificate found (or missing) on a host.
type CertInfo struct {
	// Host is the inventory name of the host.
	Host string `json:"host,omitempty"`
	// Name is kubeadm's name for it (apiserver, etcd-server, admin.conf, ca, kubelet-client, …).
	Name string `json:"name"`
	// Path is the file it was read from, on the host.
	Path string `json:"path"`
	// Kind is pki, kubeconfig, ca or kubelet.
	Kind CertKind `json:"kind"`
	// Subject is the certificate's subject DN.
	Subject string `json:"subject,omitempty"`
	// Issuer is the issuer DN.
	Issuer string `json:"issuer,omitempty"`
	// CA is the name of the CA that signs it (ca, etcd-ca, front-proxy-ca), empty for CAs.
	CA string `json:"ca,omitempty"`
	// NotBefore is the start of validity.
	NotBefore time.Time `json:"not_before,omitzero"`
	// NotAfter is the expiry, RFC 3339 in JSON.
	NotAfter time.Time `json:"not_after,omitzero"`
	// DaysLeft is whole days from the check until NotAfter (negative once expired).
	DaysLeft int `json:"days_left"`
	// Expired is true when NotAfter was not after the time of the check.
	Expired bool `json:"expired,omitempty"`
	// ExpiredAgoSeconds is how long before the check NotAfter passed, in whole seconds (only when Expired).
	ExpiredAgoSeconds int64 `json:"expired_ago_seconds,omitempty"`
	// IsCA is the certificate's basic-constraints CA flag.
	IsCA bool `json:"is_ca"`
	// Renewable is true when `kubeadm certs renew` renews it.
	Renewable bool `json:"renewable"`
	// Missing is true when the file kubeadm would have written is absent.
	Missing bool `json:"missing,omitempty"`
	// SHA256 is the fingerprint of the DER certificate, hex.
	SHA256 string `json:"sha256,omitempty"`
}

// setAge fills DaysLeft, Expired and ExpiredAgoSeconds as of now (nothing for a missing certificate).
func (c *CertInfo) setAge(now time.Time) {
	if c.Missing {
		return
	}
	c.DaysLeft = daysLeft(c.NotAfter, now)
	c.Expired = !c.NotAfter.After(now)
	c.ExpiredAgoSeconds = 0
	if c.Expired {
		c.ExpiredAgoSeconds = int64(now.Sub(c.NotAfter) / time.Second)
	}
}

// MarshalJSON writes days_left as null for a missing certificate, which
// has no age (a 0 would read as "expires today").
// The fields keep their order: a quoted key cannot occur unescaped inside a
// JSON string, so the one replacement can only hit the key.
func (c CertInfo) MarshalJSON() ([]byte, error) {
	type plain CertInfo
	if c.Missing {
		c.DaysLeft = 0
	}
	b, err := json.Marshal(plain(c))
	if err != nil || !c.Missing {
		return b, err
	}
	return bytes.Replace(b, []byte(`"days_left":0,`), []byte(`"days_left":null,`), 1), nil
}

// CertList is the Data of check_certs (and of renew_certs' plan): one host's certificates.
type CertList []CertInfo

// SetAge recomputes, in place, every present certificate's DaysLeft, Expired
// and ExpiredAgoSeconds as of now.
func (l CertList) SetAge(now time.Time) {
	for i := range l {
		l[i].setAge(now)
	}
}

// Expiring returns the present certificates whose NotAfter is before now+within, soonest first.
func (l CertList) Expiring(now time.Time, within time.Duration) CertList {
	var out CertList
	limit := now.Add(within)
	for _, c := range l {
		if !c.Missing && c.NotAfter.Before(limit) {
			out = append(out, c)
		}
	}
	out.SortByExpiry()
	return out
}

// ExpiresWithin reports whether any present certificate expires before now+within.
func (l CertList) ExpiresWithin(now time.Time, within time.Duration) bool {
	return len(l.Expiring(now, within)) > 0
}

// Renewable returns the present certificates that kubeadm certs renew renews.
func (l CertList) Renewable() CertList {
	var out CertList
	for _, c := range l {
		if c.Renewable && !c.Missing {
			out = append(out, c)
		}
	}
	return out
}

// Find returns the certificate with kubeadm name, if present in the list.
func (l CertList) Find(name string) (CertInfo, bool) {
	for _, c := range l {
		if c.Name == name {
			return c, true
		}
	}
	return CertInfo{}, false
}

// SortByExpiry sorts soonest expiry first; missing certificates go last; ties by host, name.
func (l CertList) SortByExpiry() {
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i], l[j]
		if a.Missing != b.Missing {
			return !a.Missing
		}
		if !a.NotAfter.Equal(b.NotAfter) {
			return a.NotAfter.Before(b.NotAfter)
		}
		if a.Host != b.Host {
			return a.Host < b.Host
		}
		return a.Name < b.Name
	})
}

// daysLeft is whole days from now until t, rounded down (negative once past).
func daysLeft(t, now time.Time) int {
	return int(math.Floor(t.Sub(now).Hours() / 24))
}
