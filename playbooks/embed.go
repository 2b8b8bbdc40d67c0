// Package playbooks embeds the shipped playbooks so that the kplay binary
// can run them (kplay check) without the repository at hand.
package playbooks

import "embed"

// FS holds the shipped *.yaml playbooks.
//
//go:embed *.yaml
var FS embed.FS
