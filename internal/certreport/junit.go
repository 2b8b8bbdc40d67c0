package certreport

import (
	"encoding/xml"
	"fmt"
	"io"
	"time"
)

// junitSuites is the root of a JUnit XML report, as GitLab, GitHub Actions
// (through report actions) and Jenkins read it.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

// junitSuite is one host.
type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Errors    int         `xml:"errors,attr"`
	Skipped   int         `xml:"skipped,attr"`
	Timestamp string      `xml:"timestamp,attr"`
	Hostname  string      `xml:"hostname,attr"`
	Cases     []junitCase `xml:"testcase"`
}

// junitCase is one certificate, or the check of a host that could not be checked.
type junitCase struct {
	Classname string        `xml:"classname,attr"`
	Name      string        `xml:"name,attr"`
	File      string        `xml:"file,attr,omitempty"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
	Skipped   *junitProblem `xml:"skipped,omitempty"`
}

// junitProblem is a failure, an error or a skip.
type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes the report as JUnit XML: one testsuite per host, one
// testcase per certificate, a failure (with the date) for each certificate
// that expires within the window or has expired, a skipped testcase for a
// missing one, and an error for each host that could not be checked.
func WriteJUnit(w io.Writer, r *Report) error {
	doc := junitSuites{Name: "kplay check (within " + r.Within + ")"}
	for _, h := range r.Hosts {
		s := junitHost(r, h)
		doc.Tests += s.Tests
		doc.Failures += s.Failures
		doc.Errors += s.Errors
		doc.Skipped += s.Skipped
		doc.Suites = append(doc.Suites, s)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("writing the JUnit report: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("writing the JUnit report: %w", err)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("writing the JUnit report: %w", err)
	}
	return nil
}

// junitHost is one host's testsuite.
func junitHost(r *Report, h Host) junitSuite {
	s := junitSuite{Name: h.Name, Hostname: h.Name, Timestamp: r.CheckedAt.UTC().Format("2006-01-02T15:04:05")}
	for _, c := range h.Certificates {
		tc := junitCase{Classname: h.Name, Name: c.Name, File: c.Path}
		switch c.State {
		case StateExpired:
			tc.Failure = &junitProblem{Type: "expired", Message: fmt.Sprintf("%s expired %s (%s ago)",
				c.Name, c.NotAfter.Format(time.RFC3339), agoText(c.ExpiredAgoSeconds)), Text: certText(c)}
			s.Failures++
		case StateExpiring:
			tc.Failure = &junitProblem{Type: "expiring", Message: fmt.Sprintf("%s expires %s (%d days left), within %s",
				c.Name, c.NotAfter.Format(time.RFC3339), *c.DaysLeft, r.Within), Text: certText(c)}
			s.Failures++
		case StateMissing:
			tc.Skipped = &junitProblem{Message: "missing: " + c.Path}
			s.Skipped++
		}
		s.Cases = append(s.Cases, tc)
	}
	if !r.Checked(h.Name) || h.Error != "" {
		msg := h.Error
		if msg == "" {
			msg = "no certificate was reported"
		}
		s.Cases = append(s.Cases, junitCase{Classname: h.Name, Name: "check certificates",
			Error: &junitProblem{Type: "unchecked", Message: h.Name + " could not be checked: " + msg, Text: msg}})
		s.Errors++
	}
	s.Tests = len(s.Cases)
	return s
}

// certText is the body of a failure: what a person needs to act.
func certText(c Cert) string {
	text := fmt.Sprintf("host: %s\npath: %s\nkind: %s\nnot_after: %s\n", c.Host, c.Path, c.Kind, c.NotAfter.Format(time.RFC3339))
	if c.Subject != "" {
		text += "subject: " + c.Subject + "\n"
	}
	if c.CA != "" {
		text += "ca: " + c.CA + "\n"
	}
	return text
}

// agoText formats whole seconds as the largest fitting unit: 3h, 2d, 5m.
func agoText(sec int64) string {
	d := time.Duration(sec) * time.Second
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d >= time.Hour:
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return fmt.Sprintf("%dm", d/time.Minute)
}
