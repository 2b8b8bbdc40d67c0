package testbed

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	// stateDir holds one lock file per /24 (octet) and one record per bed.
	stateDir = "/run/kplay-testbed"
	// etcNetns is where `ip netns exec` finds per-namespace /etc entries.
	etcNetns = "/etc/netns"
	// bedFile is the bed description written into Bed.Dir.
	bedFile = "bed.json"
	// minOctet and maxOctet bound the third octet of a bed's 10.213.X.0/24.
	minOctet, maxOctet = 1, 254
)

// state describes a bed completely enough to tear it down from another
// process. It is written to Dir/bed.json and /run/kplay-testbed/OCTET.json
// before any namespace or interface is made.
type state struct {
	Prefix         string      `json:"prefix"`
	Octet          int         `json:"octet"`
	Subnet         string      `json:"subnet"`
	Gateway        string      `json:"gateway"`
	Bridge         string      `json:"bridge"`
	Dir            string      `json:"dir"`
	OwnDir         bool        `json:"own_dir"`
	Detached       bool        `json:"detached"`
	OwnerPID       int         `json:"owner_pid"`
	Kube           bool        `json:"kube"`
	KeyPath        string      `json:"key_path"`
	KnownHostsPath string      `json:"known_hosts_path"`
	InventoryPath  string      `json:"inventory_path"`
	SSHConfigPath  string      `json:"ssh_config_path,omitempty"`
	Hosts          []hostState `json:"hosts"`
}

// hostState is one host in a state.
type hostState struct {
	Name      string `json:"name"`
	Address   string `json:"address"`
	Netns     string `json:"netns"`
	Root      string `json:"root"`
	Veth      string `json:"veth"`
	InitPID   int    `json:"init_pid,omitempty"`
	InitStart uint64 `json:"init_start,omitempty"`
	// Bastion marks the jump host: Address is then on its link to the
	// controller (interface Link), and Inner its address on the bridge.
	Bastion bool   `json:"bastion,omitempty"`
	Inner   string `json:"inner,omitempty"`
	Link    string `json:"link,omitempty"`
}

// bridgeName names a bed's bridge after its octet, which keeps it unique
// among running beds and within the kernel's 15-byte limit.
func bridgeName(octet int) string { return fmt.Sprintf("kpbr%d", octet) }

// vethName names the controller end of a host's veth, like bridgeName.
func vethName(octet, host int) string { return fmt.Sprintf("kpv%dh%d", octet, host) }

// octetOfInterface returns the octet a testbed interface name belongs to.
func octetOfInterface(name string) (int, bool) {
	var rest string
	switch {
	case strings.HasPrefix(name, "kpbr"):
		rest = name[4:]
	case strings.HasPrefix(name, "kpv"):
		rest, _, _ = strings.Cut(name[3:], "h")
	default:
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < minOctet || n > maxOctet {
		return 0, false
	}
	return n, true
}

// recordPath is the bed record for an octet.
func recordPath(octet int) string {
	return filepath.Join(stateDir, strconv.Itoa(octet)+".json")
}

// tryLockOctet takes the lock that owns 10.213.OCTET.0/24 and every name
// derived from it, without waiting. It returns (nil, nil) if another process
// holds it. The lock lives as long as the returned file (and any copy of its
// descriptor handed to a child) stays open.
func tryLockOctet(octet int) (*os.File, error) {
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", stateDir, err)
	}
	p := filepath.Join(stateDir, strconv.Itoa(octet)+".lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", p, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	return f, nil
}

// lockOctet waits for the octet's lock until ctx ends.
func lockOctet(ctx context.Context, octet int) (*os.File, error) {
	for {
		f, err := tryLockOctet(octet)
		if err != nil || f != nil {
			return f, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for lock of 10.213.%d.0/24: %w", octet, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// writeState writes the bed's record and Dir/bed.json atomically.
func writeState(st *state) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode bed state: %w", err)
	}
	data = append(data, '\n')
	for _, p := range []string{recordPath(st.Octet), filepath.Join(st.Dir, bedFile)} {
		if err := writeFileAtomic(p, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// readState reads a bed description.
func readState(p string) (*state, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read bed state: %w", err)
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("decode bed state %s: %w", p, err)
	}
	return &st, nil
}

// Load returns the bed described by dir/bed.json (written by Start), for
// example to tear down a bed that `kplay-testbed up` left running. Its Close
// works from any process; Host.Exec and the other Host methods work as long
// as the bed runs.
func Load(ctx context.Context, dir string) (*Bed, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("load testbed %s: %w", dir, err)
	}
	st, err := readState(filepath.Join(dir, bedFile))
	if err != nil {
		return nil, fmt.Errorf("load testbed %s: %w", dir, err)
	}
	return newBed(st), nil
}

// newBed builds the Bed view of a state.
func newBed(st *state) *Bed {
	b := &Bed{st: *st, procs: map[string]*hostProc{}}
	b.syncHosts()
	return b
}

// cps are the bed's hosts without the bastion.
func (st *state) cps() []hostState {
	var out []hostState
	for _, hs := range st.Hosts {
		if !hs.Bastion {
			out = append(out, hs)
		}
	}
	return out
}

// CleanStale removes what crashed or killed runs left behind: for every /24
// whose lock nobody holds but which still has a record, namespaces, a bridge
// or veths, it kills the processes left in those namespaces and removes them
// with their /etc/netns entries and records. Running beds (including detached
// ones from `kplay-testbed up`) hold their lock and are left alone. Start calls
// it.
func CleanStale(ctx context.Context) error {
	octets := map[int]bool{}
	if entries, err := os.ReadDir(stateDir); err == nil {
		for _, e := range entries {
			if n, err := strconv.Atoi(strings.TrimSuffix(e.Name(), ".json")); err == nil && strings.HasSuffix(e.Name(), ".json") {
				octets[n] = true
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("clean stale testbeds: %w", err)
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("clean stale testbeds: list interfaces: %w", err)
	}
	for _, ifc := range ifaces {
		if n, ok := octetOfInterface(ifc.Name); ok {
			octets[n] = true
		}
	}
	var errs []error
	for octet := range octets {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("clean stale testbeds: %w", err)
		}
		lock, err := tryLockOctet(octet)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if lock == nil {
			continue // a live bed owns it
		}
		errs = append(errs, cleanOctet(ctx, octet))
		lock.Close()
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clean stale testbeds: %w", err)
	}
	return nil
}

// cleanOctet removes everything of a dead bed on octet. The caller holds the
// octet's lock.
func cleanOctet(ctx context.Context, octet int) error {
	st, err := readState(recordPath(octet))
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			// A torn record: fall back to the names derived from the octet.
			os.Remove(recordPath(octet))
		}
		st = &state{Octet: octet, Bridge: bridgeName(octet)}
	}
	// Interfaces named after the octet that the record does not know about.
	known := map[string]bool{}
	for _, h := range st.Hosts {
		known[h.Veth], known[h.Link] = true, true
	}
	if ifaces, err := net.Interfaces(); err == nil {
		for _, ifc := range ifaces {
			if n, ok := octetOfInterface(ifc.Name); ok && n == octet && ifc.Name != st.Bridge && !known[ifc.Name] {
				st.Hosts = append(st.Hosts, hostState{Veth: ifc.Name})
			}
		}
	}
	if err := killHosts(ctx, st, nil); err != nil {
		return fmt.Errorf("stale bed on 10.213.%d.0/24: %w", octet, err)
	}
	if err := removeResources(ctx, st); err != nil {
		return fmt.Errorf("stale bed on 10.213.%d.0/24: %w", octet, err)
	}
	return nil
}

// teardown kills a bed's hosts and removes its resources. If lock is nil
// (a bed loaded from another process), it takes the octet's lock once the
// hosts are dead, so that a new bed cannot take the octet while its names are
// being removed.
func teardown(ctx context.Context, st *state, procs map[string]*hostProc, lock *os.File) error {
	err := killHosts(ctx, st, procs)
	if err != nil {
		return err
	}
	if lock == nil {
		l, err := lockOctet(ctx, st.Octet)
		if err != nil {
			return err
		}
		defer l.Close()
	}
	return removeResources(ctx, st)
}

// killHosts SIGKILLs every process in the hosts' network namespaces (their
// inits first, which takes down each host's PID namespace) and waits until
// they are gone.
func killHosts(ctx context.Context, st *state, procs map[string]*hostProc) error {
	for _, p := range procs {
		// The unshare process: its death SIGKILLs the init (--kill-child).
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
		}
	}
	for _, hs := range st.Hosts {
		if hs.InitPID > 0 && procStartTime(hs.InitPID) == hs.InitStart {
			syscall.Kill(hs.InitPID, syscall.SIGKILL)
		}
	}
	netns := map[string]bool{}
	for _, hs := range st.Hosts {
		if hs.Netns != "" {
			netns[hs.Netns] = true
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		left, err := netnsProcesses(netns)
		if err != nil {
			return err
		}
		if len(left) == 0 {
			break
		}
		for _, pid := range left {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("processes still running in the hosts' namespaces: %v", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Reap our own children (the unshare processes).
	for name, p := range procs {
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			return fmt.Errorf("host %s: init process did not exit", name)
		}
	}
	return nil
}

// netnsProcesses lists the processes whose network namespace is one of the
// named ones.
func netnsProcesses(names map[string]bool) ([]int, error) {
	type key struct{ dev, ino uint64 }
	want := map[key]bool{}
	for n := range names {
		var s syscall.Stat_t
		if err := syscall.Stat(filepath.Join("/run/netns", n), &s); err == nil {
			want[key{s.Dev, s.Ino}] = true
		}
	}
	if len(want) == 0 {
		return nil, nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		var s syscall.Stat_t
		if syscall.Stat("/proc/"+e.Name()+"/ns/net", &s) != nil {
			continue
		}
		if want[key{s.Dev, s.Ino}] {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// removeResources deletes a bed's veths, bridge, namespaces, /etc/netns
// entries, record and bed.json (and Dir if the bed made it), then checks that
// they are gone. Its processes must be dead.
func removeResources(ctx context.Context, st *state) error {
	// Deleting the namespaces takes their veths with them, asynchronously
	// but far faster than deleting each veth (100 hosts: 0.3s against 2s).
	var batch strings.Builder
	if st.Bridge != "" && interfaceExists(st.Bridge) {
		fmt.Fprintf(&batch, "link del %s\n", st.Bridge)
	}
	for _, hs := range st.Hosts {
		if hs.Netns != "" {
			if _, err := os.Lstat(filepath.Join("/run/netns", hs.Netns)); err == nil {
				fmt.Fprintf(&batch, "netns del %s\n", hs.Netns)
			}
		}
	}
	var errs []error
	if err := removeIsolation(ctx, st.Octet); err != nil {
		errs = append(errs, err)
	}
	if batch.Len() > 0 {
		if out, err := ipBatch(ctx, batch.String(), true); err != nil {
			errs = append(errs, fmt.Errorf("%w: %s", err, out))
		}
	}
	vethsLeft := func() []string {
		var left []string
		for _, hs := range st.Hosts {
			for _, v := range []string{hs.Veth, hs.Link} {
				if v != "" && interfaceExists(v) {
					left = append(left, v)
				}
			}
		}
		return left
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(vethsLeft()) > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	if left := vethsLeft(); len(left) > 0 {
		// Their namespace is still alive (something holds it): cut them.
		batch.Reset()
		for _, v := range left {
			fmt.Fprintf(&batch, "link del %s\n", v)
		}
		if out, err := ipBatch(ctx, batch.String(), true); err != nil {
			errs = append(errs, fmt.Errorf("%w: %s", err, out))
		}
	}
	for _, hs := range st.Hosts {
		if hs.Veth != "" && interfaceExists(hs.Veth) {
			errs = append(errs, fmt.Errorf("interface %s still exists", hs.Veth))
		}
		if hs.Netns != "" {
			if _, err := os.Lstat(filepath.Join("/run/netns", hs.Netns)); err == nil {
				errs = append(errs, fmt.Errorf("netns %s still exists", hs.Netns))
			}
			if err := os.RemoveAll(filepath.Join(etcNetns, hs.Netns)); err != nil {
				errs = append(errs, fmt.Errorf("remove /etc/netns entry: %w", err))
			}
		}
	}
	if st.Bridge != "" && interfaceExists(st.Bridge) {
		errs = append(errs, fmt.Errorf("bridge %s still exists", st.Bridge))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if st.Dir != "" {
		if err := os.Remove(filepath.Join(st.Dir, bedFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove %s: %w", bedFile, err))
		}
		if st.OwnDir {
			if err := removeDirNoMounts(st.Dir); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := os.Remove(recordPath(st.Octet)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("remove bed record: %w", err))
	}
	return errors.Join(errs...)
}

// removeDirNoMounts removes dir unless something is mounted inside it (which
// would make RemoveAll delete another file system's contents).
func removeDirNoMounts(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			return fmt.Errorf("not removing %s: %s is mounted inside it", dir, fields[4])
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove bed directory: %w", err)
	}
	return nil
}

// interfaceExists reports whether a network interface exists on the controller.
func interfaceExists(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}

// ipBatch runs `ip -batch -` with the given commands (and -force, which goes
// on past failing lines, if force is set).
func ipBatch(ctx context.Context, cmds string, force bool) ([]byte, error) {
	args := []string{"-batch", "-"}
	if force {
		args = append([]string{"-force"}, args...)
	}
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Stdin = strings.NewReader(cmds)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("ip -batch: %w", err)
	}
	return out, nil
}

// procStartTime returns a process's start time (field 22 of
// /proc/PID/stat), or 0 if it does not exist. With the pid it identifies a
// process even if the pid is later reused.
func procStartTime(pid int) uint64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(s[i+1:])
	// fields[0] is field 3 (state); field 22 is fields[19].
	if len(fields) < 20 {
		return 0
	}
	n, _ := strconv.ParseUint(fields[19], 10, 64)
	return n
}

// writeFileAtomic writes data to p through a temporary file and a rename.
func writeFileAtomic(p string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}
