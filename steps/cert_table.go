package steps

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteCertTable writes certs as an aligned text table sorted by expiry:
// host (when withHost), certificate, expires, days left (or how long ago it
// expired), CA, kind.
func WriteCertTable(w io.Writer, certs CertList, withHost bool) error {
	l := append(CertList(nil), certs...)
	l.SortByExpiry()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if withHost {
		fmt.Fprint(tw, "HOST\t")
	}
	fmt.Fprintln(tw, "CERTIFICATE\tEXPIRES\tDAYS LEFT\tCA\tKIND")
	for _, c := range l {
		if withHost {
			fmt.Fprintf(tw, "%s\t", c.Host)
		}
		exp, ca := "missing", c.CA
		if !c.Missing {
			exp = c.NotAfter.UTC().Format("2006-01-02 15:04 MST")
		}
		if ca == "" {
			ca = "-"
		}
		kind := string(c.Kind)
		if c.Kind == KindKubelet {
			kind += " (not renewed by kubeadm)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Name, exp, c.DaysLeftText(), ca, kind)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing the certificate table: %w", err)
	}
	return nil
}

// DaysLeftText is the DAYS LEFT cell of the certificate table: whole days
// left, "EXPIRED 3h ago" once expired, or "-" when the certificate is missing.
func (c CertInfo) DaysLeftText() string {
	switch {
	case c.Missing:
		return "-"
	case c.Expired:
		return "EXPIRED " + expiredAgo(time.Duration(c.ExpiredAgoSeconds)*time.Second)
	case c.DaysLeft < 0:
		// Expired, but the age was not recorded (a CertInfo not built by a probe).
		return "EXPIRED"
	}
	return strconv.Itoa(c.DaysLeft)
}

// expiredAgo formats how long ago something expired, rounded down: minutes
// under an hour ("<1m ago" under a minute), hours under two days, else days.
func expiredAgo(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "<1m ago"
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", d/time.Minute)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", d/time.Hour)
	}
	return fmt.Sprintf("%dd ago", d/(24*time.Hour))
}

// certTableLines is WriteCertTable split into lines, for Result.Details.
func certTableLines(certs CertList) []string {
	var b strings.Builder
	_ = WriteCertTable(&b, certs, false)
	return strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
}
