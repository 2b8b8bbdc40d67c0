package main

import (
	"bytes"
	"fmt"
	"io"

	"github.com/kplay/kplay/internal/atomicfile"
	"github.com/kplay/kplay/internal/certreport"
	"github.com/kplay/kplay/steps"
)

// checkWriters are the report formats of kplay check other than text.
var checkWriters = map[string]func(io.Writer, *certreport.Report) error{
	"json":       certreport.WriteJSON,
	"junit":      certreport.WriteJUnit,
	"prometheus": certreport.WritePrometheus,
}

// writeCheck writes the check's report: the chosen format on stdout, or
// with --output-file the format to the file (atomically, 0644: reports
// hold no secret) and the text on stdout. It returns the exit code, which
// turns 1 when the report could not be written and nothing else failed.
func writeCheck(f *commonFlags, out certreport.Report, all, expiring steps.CertList, stdout, stderr io.Writer) int {
	write := checkWriters[f.output]
	if write == nil {
		writeCheckText(stdout, out, all, expiring)
		return out.ExitCode
	}
	if f.outputFile == "" {
		if err := write(stdout, &out); err != nil {
			fmt.Fprintf(stderr, "kplay: %v\n", err)
			return max(out.ExitCode, exitFailed)
		}
		return out.ExitCode
	}
	var b bytes.Buffer
	err := write(&b, &out)
	if err == nil {
		err = atomicfile.WriteFile(f.outputFile, b.Bytes(), 0o644)
	}
	writeCheckText(stdout, out, all, expiring)
	if err != nil {
		fmt.Fprintf(stderr, "kplay: --output-file %s: %v\n", f.outputFile, err)
		return max(out.ExitCode, exitFailed)
	}
	fmt.Fprintf(stdout, "%s report written to %s\n", f.output, f.outputFile)
	return out.ExitCode
}

// writeCheckText writes the text report: the certificate table, the hosts
// that could not be checked, and the verdict.
func writeCheckText(w io.Writer, out certreport.Report, all, expiring steps.CertList) {
	_ = steps.WriteCertTable(w, all, true)
	fmt.Fprintln(w)
	for _, h := range out.Hosts {
		if h.Error != "" {
			fmt.Fprintf(w, "%s: NOT CHECKED: %s\n", h.Name, h.Error)
		}
	}
	for _, line := range checkVerdict(out, expiring) {
		fmt.Fprintln(w, line)
	}
}
