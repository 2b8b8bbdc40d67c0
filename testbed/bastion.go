package testbed

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

const (
	// bastionName is the jump host's name and hostname.
	bastionName = "bastion"
	// bastionHost is the last octet of the bastion's address on the bridge,
	// below the hosts' range and above the controller's .1.
	bastionHost = firstHost - 1
)

// bastionOuter is the bastion's address on its link to the controller.
func bastionOuter(octet int) string { return fmt.Sprintf("10.215.%d.2", octet) }

// bastionLinkGateway is the controller's address on its link to the bastion.
func bastionLinkGateway(octet int) string { return fmt.Sprintf("10.215.%d.1", octet) }

// bastionLink gives the bastion's end of its link to the controller (eth1,
// put into its namespace by startHosts' batch) its address, before its init
// starts sshd on it.
func (b *Bed) bastionLink(ctx context.Context) error {
	for _, hs := range b.st.Hosts {
		if !hs.Bastion {
			continue
		}
		batch := fmt.Sprintf("addr add %s/30 dev eth1\nlink set eth1 up\n", hs.Address)
		cmd := exec.CommandContext(ctx, "ip", "-n", hs.Netns, "-batch", "-")
		cmd.Stdin = strings.NewReader(batch)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("host %s: link to the controller: %w: %s", hs.Name, err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// isolatedSubnets are the bed's /24s, which isolate makes unreachable from
// the controller.
func isolatedSubnets(octet int) []string {
	return []string{fmt.Sprintf("10.213.%d.0/24", octet), fmt.Sprintf("10.214.%d.0/24", octet)}
}

// isolate takes the controller's addresses off the bridge and marks the
// bed's subnets unreachable (so that nothing for them leaves by the default
// route), so that the controller reaches the hosts only through the
// bastion, and checks that the hosts are out of reach (the dials fail on
// the controller: nothing is sent).
func (b *Bed) isolate(ctx context.Context) error {
	st := &b.st
	var batch strings.Builder
	fmt.Fprintf(&batch, "addr del %s/24 dev %s\n", st.Gateway, st.Bridge)
	if len(st.cps()) > hostsPerSubnet {
		fmt.Fprintf(&batch, "addr del %s/24 dev %s\n", secondGateway(st.Octet), st.Bridge)
	}
	for _, n := range isolatedSubnets(st.Octet) {
		fmt.Fprintf(&batch, "route add unreachable %s\n", n)
	}
	if out, err := ipBatch(ctx, batch.String(), false); err != nil {
		return fmt.Errorf("cut the controller off the hosts: %w: %s", err, strings.TrimSpace(string(out)))
	}
	for _, h := range b.Hosts {
		d := net.Dialer{Timeout: time.Second}
		if c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(h.Address, "22")); err == nil {
			c.Close()
			return fmt.Errorf("host %s: still reachable from the controller after removing its route", h.Name)
		}
	}
	// The bastion's sshd listens (startHosts checked it without connecting,
	// so that tests can count the connections in its log).
	return nil
}

// sshClientConfig is an OpenSSH client config for a bed with a bastion: the
// bastion by name, every host through it, the bed's key and known_hosts.
func sshClientConfig(st *state) []byte {
	var s strings.Builder
	fmt.Fprintf(&s, "# OpenSSH client config for testbed %s: hosts only through the bastion\n", st.Prefix)
	var hosts []string
	for _, hs := range st.Hosts {
		if hs.Bastion {
			fmt.Fprintf(&s, "Host %s\n  HostName %s\n", hs.Name, hs.Address)
			continue
		}
		hosts = append(hosts, hs.Address)
	}
	fmt.Fprintf(&s, "Host %s\n  ProxyJump %s\n", strings.Join(hosts, " "), bastionName)
	fmt.Fprintf(&s, "Host *\n  User root\n  IdentityFile %s\n  IdentitiesOnly yes\n  UserKnownHostsFile %s\n",
		quoteConfig(st.KeyPath), quoteConfig(st.KnownHostsPath))
	return []byte(s.String())
}

// quoteConfig quotes a path for ssh_config when it holds a space.
func quoteConfig(p string) string {
	if strings.ContainsAny(p, " \t") {
		return `"` + p + `"`
	}
	return p
}

// removeIsolation deletes the unreachable routes isolate added for octet,
// if there are any.
func removeIsolation(ctx context.Context, octet int) error {
	out, err := exec.CommandContext(ctx, "ip", "-4", "route", "show", "type", "unreachable").Output()
	if err != nil {
		return fmt.Errorf("ip route show: %w", err)
	}
	var batch strings.Builder
	for _, n := range isolatedSubnets(octet) {
		if strings.Contains("\n"+string(out), "\nunreachable "+n+" ") || strings.Contains("\n"+string(out), "\nunreachable "+n+"\n") {
			fmt.Fprintf(&batch, "route del unreachable %s\n", n)
		}
	}
	if batch.Len() == 0 {
		return nil
	}
	if out, err := ipBatch(ctx, batch.String(), true); err != nil {
		return fmt.Errorf("remove the routes of octet %s: %w: %s", strconv.Itoa(octet), err, strings.TrimSpace(string(out)))
	}
	return nil
}
