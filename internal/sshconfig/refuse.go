package sshconfig

import (
	"fmt"
	"strings"

	sshconfig "github.com/kevinburke/ssh_config"
)

// refused are the keys kplay does not honour that decide how a host is
// reached or which host key it must show: ignoring one would connect
// another way than ssh, or trust a key ssh would not, without a word.
var refused = []struct{ key, why string }{
	{"ProxyCommand", "kplay does not run ProxyCommand, and connecting directly instead would bypass it; reach the host with ProxyJump (here or the inventory's proxy_jump)"},
	{"HostKeyAlias", "kplay checks host keys under the address it dials; ignoring HostKeyAlias would check (or, with --accept-new-host-keys, record) a key other than the one pinned under the alias"},
	{"KnownHostsCommand", "kplay reads host keys from known_hosts files only; ignoring KnownHostsCommand would check the host against other keys than ssh does"},
}

// Refuse returns an *Error, naming the file, the line where it can be
// found and the key, when a key kplay does not honour but that decides how
// alias is reached or which key it must show applies to alias (first value
// wins, as for every key; "none" is no value). Else nil.
func (f *File) Refuse(alias string) error {
	if f == nil || f.cfg == nil {
		return nil
	}
	for _, r := range refused {
		v, err := f.cfg.Get(alias, r.key)
		if err != nil || v == "" || strings.EqualFold(v, "none") {
			continue
		}
		return &Error{File: f.Path, Line: f.lineOf(alias, r.key), Key: r.key,
			Msg: fmt.Sprintf("applies to %s: %s", alias, r.why)}
	}
	return nil
}

// lineOf is the line of the first value of key that applies to alias in
// the file itself, or 0 when it comes from an included file.
func (f *File) lineOf(alias, key string) int {
	for _, h := range f.cfg.Hosts {
		if !h.Matches(alias) {
			continue
		}
		for _, n := range h.Nodes {
			if kv, ok := n.(*sshconfig.KV); ok && strings.EqualFold(kv.Key, key) {
				return kv.Pos().Line
			}
		}
	}
	return 0
}
