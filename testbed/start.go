package testbed

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// userPasswordHash is crypt(3) SHA-512 of "kplay", the password of the
	// hosts' non-root users (sshd refuses passwords; sudo asks kplaypw for it).
	userPasswordHash = "$6$kplaytestbed$tihpQ8adOnQFIosmx3dgzAO6Yjj07z/gH0nM47qBtMOXJSM94w1I0NAcemeumUcXDusQmuboZ/g6UMo6AvdRG1"
	// hostPATH is the PATH of processes the testbed starts inside hosts.
	hostPATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// testUser is a non-root account on every host.
type testUser struct {
	name     string
	uid      int
	sudoLine string
}

// testUsers returns the hosts' non-root accounts: kplay may sudo without a
// password, kplaypw must give its password ("kplay") to sudo.
func testUsers() []testUser {
	return []testUser{
		{"kplay", 2001, "kplay ALL=(ALL:ALL) NOPASSWD: ALL"},
		{"kplaypw", 2002, "kplaypw ALL=(ALL:ALL) ALL"},
	}
}

// Start builds and starts a bed. It returns once every host's sshd listens
// and, with Options.Kube, every host's apiserver answers /livez. On error it
// tears down whatever it made. ctx bounds Start only; the hosts run until
// Close.
func Start(ctx context.Context, o Options) (*Bed, error) {
	t0 := time.Now()
	if o.Hosts < 1 || o.Hosts > MaxHosts {
		return nil, fmt.Errorf("testbed: Hosts = %d, want 1..%d", o.Hosts, MaxHosts)
	}
	if o.Prefix != "" && !validPrefix(o.Prefix) {
		return nil, fmt.Errorf("testbed: bad Prefix %q: want 1-40 letters, digits, '-' or '_'", o.Prefix)
	}
	if o.KubeletPeriod <= 0 {
		o.KubeletPeriod = defaultKubeletPeriod
	}
	if o.Controllers {
		o.Real = true
	}
	if o.Real {
		o.Kube = true
	}
	if o.CertValidity < 0 {
		return nil, fmt.Errorf("testbed: negative CertValidity %v", o.CertValidity)
	}
	if err := CleanStale(ctx); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	octet, lock, err := pickOctet()
	if err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	prefix := o.Prefix
	if prefix == "" {
		prefix = fmt.Sprintf("kplay%d-%d", os.Getpid(), octet)
	}
	st := &state{
		Prefix:   prefix,
		Octet:    octet,
		Subnet:   fmt.Sprintf("10.213.%d.0/24", octet),
		Gateway:  fmt.Sprintf("10.213.%d.1", octet),
		Bridge:   bridgeName(octet),
		Detached: o.Detach,
		OwnerPID: os.Getpid(),
		Kube:     o.Kube,
	}
	b := newBed(st)
	b.lock = lock
	if !o.Detach {
		b.spawner = newSpawner()
	}
	ok := false
	defer func() {
		if !ok {
			b.Close()
		}
	}()
	if err := b.start(ctx, &o, t0); err != nil {
		return nil, fmt.Errorf("testbed %s: start: %w", prefix, err)
	}
	ok = true
	if o.Detach {
		// The hosts' inits hold the lock now; it is released when they die.
		b.lock.Close()
		b.lock = nil
	}
	o.logf("testbed %s: %d hosts up in %v", prefix, o.Hosts, time.Since(t0).Round(time.Millisecond))
	return b, nil
}

// pickOctet takes the lock of a free 10.213.X.0/24, starting at a place that
// depends on the pid so that parallel starts rarely contend.
func pickOctet() (int, *os.File, error) {
	n := maxOctet - minOctet + 1
	first := os.Getpid() % n
	for i := 0; i < n; i++ {
		octet := minOctet + (first+i)%n
		lock, err := tryLockOctet(octet)
		if err != nil {
			return 0, nil, err
		}
		if lock == nil {
			continue
		}
		// Whatever is left on this octet belongs to a dead bed.
		if err := cleanOctet(context.Background(), octet); err != nil {
			lock.Close()
			return 0, nil, err
		}
		return octet, lock, nil
	}
	return 0, nil, errors.New("no free subnet under 10.213.0.0/16: every /24 is locked")
}

// start does the work of Start on a bed that owns its octet.
func (b *Bed) start(ctx context.Context, o *Options, t0 time.Time) error {
	st := &b.st
	if err := b.makeDir(o); err != nil {
		return err
	}
	st.KeyPath = filepath.Join(st.Dir, "id_ed25519")
	st.KnownHostsPath = filepath.Join(st.Dir, "known_hosts")
	st.InventoryPath = filepath.Join(st.Dir, "inventory.yaml")
	for i := 1; i <= o.Hosts; i++ {
		name := fmt.Sprintf("cp%d", i)
		st.Hosts = append(st.Hosts, hostState{
			Name:    name,
			Address: hostAddress(st.Octet, i),
			Netns:   st.Prefix + "-" + name,
			Root:    filepath.Join(st.Dir, "hosts", name),
			Veth:    vethName(st.Octet, i),
		})
	}
	if o.Bastion {
		st.SSHConfigPath = filepath.Join(st.Dir, "ssh_config")
		st.Hosts = append(st.Hosts, hostState{
			Name:    bastionName,
			Address: bastionOuter(st.Octet),
			Inner:   fmt.Sprintf("10.213.%d.%d", st.Octet, bastionHost),
			Netns:   st.Prefix + "-" + bastionName,
			Root:    filepath.Join(st.Dir, "hosts", bastionName),
			Veth:    vethName(st.Octet, 0),
			Link:    fmt.Sprintf("kpv%dhj", st.Octet),
			Bastion: true,
		})
	}
	b.syncHosts()
	// Record the names before making anything, so that a crash from here on
	// leaves something CleanStale can find.
	if err := writeState(st); err != nil {
		return err
	}
	for _, h := range st.Hosts {
		if _, err := os.Lstat(filepath.Join("/run/netns", h.Netns)); err == nil {
			return fmt.Errorf("network namespace %s already exists (another bed with prefix %q?)", h.Netns, st.Prefix)
		}
	}

	// Files: binaries (kube ones may take a while to build) and hosts.
	if err := os.MkdirAll(filepath.Join(st.Dir, "bin"), 0o755); err != nil {
		return fmt.Errorf("create bin directory: %w", err)
	}
	var wg sync.WaitGroup
	var binErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		binErr = installBinaries(ctx, o, filepath.Join(st.Dir, "bin"))
	}()
	err := b.prepareFiles(ctx, o)
	wg.Wait()
	if err := errors.Join(err, binErr); err != nil {
		return err
	}
	o.logf("testbed %s: files ready after %v", st.Prefix, time.Since(t0).Round(time.Millisecond))

	if err := b.startHosts(ctx, o, t0); err != nil {
		return err
	}
	o.logf("testbed %s: sshd listening on every host after %v", st.Prefix, time.Since(t0).Round(time.Millisecond))

	if o.Kube {
		if err := b.setupKube(ctx, o, t0); err != nil {
			return err
		}
		o.logf("testbed %s: apiservers live after %v", st.Prefix, time.Since(t0).Round(time.Millisecond))
	}
	if o.Bastion {
		return b.isolate(ctx)
	}
	return nil
}

// hostAddress is the address of host i (1-based) of the bed on octet:
// 10.213.OCTET.11 to .250 for the first hostsPerSubnet hosts, then the same
// in 10.214.OCTET.0/24 (see MaxHosts).
func hostAddress(octet, i int) string {
	b, j := 213, i-1
	if j >= hostsPerSubnet {
		b, j = 214, j-hostsPerSubnet
	}
	return fmt.Sprintf("10.%d.%d.%d", b, octet, firstHost+j)
}

// secondGateway is the controller's address in a bed's second /24.
func secondGateway(octet int) string { return fmt.Sprintf("10.214.%d.1", octet) }

// syncHosts rebuilds b.Hosts from b.st.
func (b *Bed) syncHosts() {
	b.Hosts, b.Bastion, b.BastionInner = b.Hosts[:0], nil, ""
	for _, hs := range b.st.Hosts {
		h := &Host{
			Name: hs.Name, Address: hs.Address, Netns: hs.Netns, Root: hs.Root,
			veth: hs.Veth, initPID: hs.InitPID, initStart: hs.InitStart,
		}
		if hs.Bastion {
			b.Bastion, b.BastionInner = h, hs.Inner
			continue
		}
		b.Hosts = append(b.Hosts, h)
	}
	b.Dir, b.KeyPath, b.KnownHostsPath, b.InventoryPath = b.st.Dir, b.st.KeyPath, b.st.KnownHostsPath, b.st.InventoryPath
	b.SSHConfigPath = b.st.SSHConfigPath
	b.Subnet, b.Gateway, b.Bridge = b.st.Subnet, b.st.Gateway, b.st.Bridge
}

// generated are the entries of Dir that Start makes (and removes from a
// reused Dir first).
func generated() []string {
	return []string{"hosts", "bin", "id_ed25519", "id_ed25519.pub", "known_hosts", "inventory.yaml", "ssh_config", bedFile}
}

// makeDir creates (or clears for reuse) the bed's directory.
func (b *Bed) makeDir(o *Options) error {
	st := &b.st
	if o.Dir == "" {
		d, err := os.MkdirTemp("", st.Prefix+"-")
		if err != nil {
			return fmt.Errorf("create bed directory: %w", err)
		}
		st.Dir, st.OwnDir = d, true
		return nil
	}
	d, err := filepath.Abs(o.Dir)
	if err != nil {
		return fmt.Errorf("bed directory %s: %w", o.Dir, err)
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		return fmt.Errorf("create bed directory: %w", err)
	}
	if old, err := readState(filepath.Join(d, bedFile)); err == nil {
		lock, err := tryLockOctet(old.Octet)
		if err != nil {
			return err
		}
		if lock == nil && old.Octet != st.Octet {
			return fmt.Errorf("bed directory %s is in use by running bed %s (10.213.%d.0/24): tear it down first", d, old.Prefix, old.Octet)
		}
		if lock != nil {
			lock.Close()
		}
	}
	for _, g := range generated() {
		p := filepath.Join(d, g)
		if g == "hosts" {
			if _, err := os.Stat(p); err == nil {
				if err := removeDirNoMounts(p); err != nil {
					return err
				}
			}
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("clear bed directory: %w", err)
		}
	}
	st.Dir = d
	return nil
}

// prepareFiles writes the bed's bin directory, client key and every host's
// directories, configuration and host keys.
func (b *Bed) prepareFiles(ctx context.Context, o *Options) error {
	st := &b.st
	if err := os.Chmod(st.Dir, 0o755); err != nil {
		return fmt.Errorf("bed directory: %w", err)
	}
	client, err := newSSHKey("ed25519", "kplay-testbed")
	if err != nil {
		return fmt.Errorf("client key: %w", err)
	}
	if err := client.write(st.KeyPath); err != nil {
		return fmt.Errorf("client key: %w", err)
	}
	pub := []byte(client.public)
	// The mount targets `ip netns exec` needs on the controller.
	for _, d := range []string{"/etc/kubernetes", etcNetns} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	etc, err := hostEtcFiles(st)
	if err != nil {
		return err
	}
	knownHosts := make([]string, len(st.Hosts))
	err = parallel(ctx, len(st.Hosts), 4*runtime.NumCPU(), func(ctx context.Context, i int) error {
		line, err := prepareHost(ctx, o, &st.Hosts[i], pub, etc)
		knownHosts[i] = line
		if err != nil {
			return fmt.Errorf("host %s: %w", st.Hosts[i].Name, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if o.Real {
		if err := writeRealKubeadmConfigs(o, st); err != nil {
			return err
		}
	}
	if err := writeFileAtomic(st.KnownHostsPath, []byte(strings.Join(knownHosts, "")), 0o644); err != nil {
		return err
	}
	if st.SSHConfigPath != "" {
		if err := writeFileAtomic(st.SSHConfigPath, sshClientConfig(st), 0o644); err != nil {
			return err
		}
	}
	return writeFileAtomic(st.InventoryPath, inventory(st), 0o644)
}

// hostEtcFiles returns the contents of the hosts' /etc/passwd, group, shadow
// (the controller's plus the test users), hosts (the controller's plus the
// bed's hosts) and, if sudo is installed, the sudoers.d entry for the test
// users.
func hostEtcFiles(st *state) (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, f := range etcFiles() {
		data, err := os.ReadFile(filepath.Join("/etc", f))
		if err != nil {
			return nil, fmt.Errorf("read /etc/%s: %w", f, err)
		}
		if len(data) > 0 && data[len(data)-1] != '\n' {
			data = append(data, '\n')
		}
		files[f] = data
	}
	var sudoers strings.Builder
	for _, u := range testUsers() {
		if strings.Contains("\n"+string(files["passwd"]), "\n"+u.name+":") {
			continue // the controller has it already
		}
		files["passwd"] = fmt.Appendf(files["passwd"], "%s:x:%d:%d:kplay test user:/home/%s:/bin/bash\n", u.name, u.uid, u.uid, u.name)
		files["group"] = fmt.Appendf(files["group"], "%s:x:%d:\n", u.name, u.uid)
		files["shadow"] = fmt.Appendf(files["shadow"], "%s:%s:19000:0:99999:7:::\n", u.name, userPasswordHash)
		sudoers.WriteString(u.sudoLine + "\n")
	}
	files["hosts"] = fmt.Appendf(files["hosts"], "# kplay testbed %s\n", st.Prefix)
	for _, h := range st.cps() {
		files["hosts"] = fmt.Appendf(files["hosts"], "%s\t%s\n", h.Address, h.Name)
	}
	if fi, err := os.Stat("/etc/sudoers.d"); err == nil && fi.IsDir() {
		files["sudoers.d/kplay-testbed"] = []byte(sudoers.String())
	}
	return files, nil
}

// sshdConfig is a host's sshd_config.
func sshdConfig(addr string) string {
	return `# kplay testbed host sshd
ListenAddress ` + addr + `:22
HostKey /etc/ssh/ssh_host_ed25519_key
HostKey /etc/ssh/ssh_host_ecdsa_key
AuthorizedKeysFile /etc/ssh/authorized_keys/%u
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PidFile none
MaxStartups 500
MaxSessions 200
LogLevel VERBOSE
UseDNS no
PrintMotd no
PrintLastLog no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
`
}

// prepareHost makes one host's controller-side tree and /etc/netns entry and
// returns its known_hosts line.
func prepareHost(ctx context.Context, o *Options, hs *hostState, clientPub []byte, etc map[string][]byte) (string, error) {
	r := hs.Root
	for _, d := range hostDirs() {
		p := filepath.Join(r, d.onController)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return "", fmt.Errorf("create %s: %w", p, err)
		}
		if err := os.Chmod(p, d.mode); err != nil {
			return "", fmt.Errorf("chmod %s: %w", p, err)
		}
	}
	for _, d := range []string{"etc/ssh/authorized_keys", "var/lib/kplay-testbed"} {
		if err := os.MkdirAll(filepath.Join(r, d), 0o755); err != nil {
			return "", fmt.Errorf("create %s: %w", d, err)
		}
	}
	sshDir := filepath.Join(r, "etc/ssh")
	var knownHost string
	for _, typ := range []string{"ed25519", "ecdsa"} {
		k, err := newSSHKey(typ, "root@"+hs.Name)
		if err != nil {
			return "", fmt.Errorf("host key: %w", err)
		}
		if err := k.write(filepath.Join(sshDir, "ssh_host_"+typ+"_key")); err != nil {
			return "", fmt.Errorf("host key: %w", err)
		}
		if typ == "ed25519" {
			knownHost = k.knownHostsLine(hs.Address)
		}
	}
	if err := os.WriteFile(filepath.Join(sshDir, "sshd_config"), []byte(sshdConfig(hs.Address)), 0o644); err != nil {
		return "", fmt.Errorf("sshd_config: %w", err)
	}
	// moduli serves diffie-hellman-group-exchange; share the controller's.
	if err := os.Link("/etc/ssh/moduli", filepath.Join(sshDir, "moduli")); err != nil && !errors.Is(err, os.ErrNotExist) {
		if data, rerr := os.ReadFile("/etc/ssh/moduli"); rerr == nil {
			os.WriteFile(filepath.Join(sshDir, "moduli"), data, 0o644)
		}
	}
	users := append([]testUser{{name: "root"}}, testUsers()...)
	for _, u := range users {
		if err := os.WriteFile(filepath.Join(sshDir, "authorized_keys", u.name), clientPub, 0o644); err != nil {
			return "", fmt.Errorf("authorized_keys: %w", err)
		}
		if u.uid == 0 {
			continue
		}
		home := filepath.Join(r, "home", u.name)
		if err := os.MkdirAll(home, 0o755); err != nil {
			return "", fmt.Errorf("home of %s: %w", u.name, err)
		}
		if err := os.Chown(home, u.uid, u.uid); err != nil {
			return "", fmt.Errorf("home of %s: %w", u.name, err)
		}
	}
	// /etc/netns/NETNS: symlinks into the host's tree, bind-mounted over /etc
	// by `ip netns exec`.
	ns := filepath.Join(etcNetns, hs.Netns)
	if err := os.RemoveAll(ns); err != nil {
		return "", fmt.Errorf("clear %s: %w", ns, err)
	}
	if err := os.MkdirAll(ns, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", ns, err)
	}
	for _, d := range hostDirs() {
		if d.viaEtcNetns {
			if err := os.Symlink(filepath.Join(r, d.onController), filepath.Join(ns, filepath.Base(d.inHost))); err != nil {
				return "", fmt.Errorf("link %s: %w", d.inHost, err)
			}
		}
	}
	for name, data := range etc {
		p := filepath.Join(r, "etc", name)
		mode := os.FileMode(0o644)
		switch {
		case name == "shadow":
			mode = 0o640
		case strings.HasPrefix(name, "sudoers.d/"):
			mode = 0o440
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return "", fmt.Errorf("create sudoers.d: %w", err)
			}
		}
		if err := os.WriteFile(p, data, mode); err != nil {
			return "", fmt.Errorf("write /etc/%s: %w", name, err)
		}
		if err := os.Chmod(p, mode); err != nil {
			return "", fmt.Errorf("chmod /etc/%s: %w", name, err)
		}
		top, _, _ := strings.Cut(name, "/")
		link := filepath.Join(ns, top)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join(r, "etc", top), link); err != nil {
			return "", fmt.Errorf("link /etc/%s: %w", top, err)
		}
	}
	if o.Kube && !hs.Bastion {
		if err := os.WriteFile(filepath.Join(r, "etc/kubernetes/kubeadm-config.yaml"), []byte(kubeadmConfig(o, hs)), 0o600); err != nil {
			return "", fmt.Errorf("kubeadm config: %w", err)
		}
	}
	return knownHost, nil
}

// inventory renders the bed's kplay inventory.
func inventory(st *state) []byte {
	var s strings.Builder
	s.WriteString("# kplay inventory for testbed " + st.Prefix + " (" + st.Subnet + ")\n")
	s.WriteString("defaults:\n  user: root\n  port: 22\n")
	s.WriteString("  key: " + yamlString(st.KeyPath) + "\n")
	s.WriteString("  known_hosts: " + yamlString(st.KnownHostsPath) + "\n")
	s.WriteString("  connect_timeout: 5s\nhosts:\n")
	var names []string
	for _, h := range st.cps() {
		fmt.Fprintf(&s, "  %s: {address: %s}\n", h.Name, h.Address)
		names = append(names, h.Name)
	}
	s.WriteString("groups:\n  control_plane: [" + strings.Join(names, ", ") + "]\n")
	return []byte(s.String())
}

// yamlString returns s as a YAML scalar: plain if it is a simple path,
// double-quoted otherwise.
func yamlString(s string) string {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("/._-", c)) {
			return strconv.Quote(s)
		}
	}
	return s
}

// binds returns the bind mounts a host's init makes, as SRC:DST: the host's
// own /etc entries (as `ip netns exec` would mount them from /etc/netns) and
// directories, and the bed's bin directory as /usr/local/bin.
func binds(st *state, hs *hostState, etc map[string][]byte) []string {
	out := []string{filepath.Join(st.Dir, "bin") + ":/usr/local/bin"}
	for _, d := range hostDirs() {
		out = append(out, filepath.Join(hs.Root, d.onController)+":"+d.inHost)
	}
	seen := map[string]bool{}
	for name := range etc {
		top, _, _ := strings.Cut(name, "/")
		if !seen[top] {
			seen[top] = true
			out = append(out, filepath.Join(hs.Root, "etc", top)+":/etc/"+top)
		}
	}
	return out
}

// startHosts starts every host's init in new namespaces, names their network
// namespaces and wires them to the bridge in one `ip -batch`, lets the inits
// go on, and waits until every host's sshd listens.
func (b *Bed) startHosts(ctx context.Context, o *Options, t0 time.Time) error {
	st := &b.st
	etc, err := hostEtcFiles(st)
	if err != nil {
		return err
	}
	initPath := filepath.Join(st.Dir, "bin", "kplay-hostinit")
	goPipes := make([]*os.File, len(st.Hosts))
	defer func() {
		for _, w := range goPipes {
			if w != nil {
				w.Close()
			}
		}
	}()
	procs := make([]*hostProc, len(st.Hosts))
	// Creating namespaces is mostly kernel time; a few at once go a little
	// faster (the spawner, if any, serialises the forks themselves).
	err = parallel(ctx, len(st.Hosts), 4, func(ctx context.Context, i int) error {
		hs := &st.Hosts[i]
		logf, err := os.OpenFile(filepath.Join(hs.Root, "init.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("host %s: init log: %w", hs.Name, err)
		}
		r, w, err := os.Pipe()
		if err != nil {
			logf.Close()
			return fmt.Errorf("host %s: pipe: %w", hs.Name, err)
		}
		goPipes[i] = w
		args := []string{"init", "-name", hs.Name, "-cidr", hs.Address + "/24", "-period", o.KubeletPeriod.String()}
		if hs.Bastion {
			args[4] = hs.Inner + "/24"
		}
		if o.Kube && !hs.Bastion {
			args = append(args, "-kube")
		}
		for _, bd := range binds(st, hs, etc) {
			args = append(args, "-bind", bd)
		}
		cmd := exec.Command(initPath, args...)
		cmd.Env = []string{"PATH=" + hostPATH, "HOME=/root", "LANG=C"}
		cmd.Dir = "/"
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.ExtraFiles = []*os.File{r}
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Setsid: true,
			Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS |
				syscall.CLONE_NEWIPC | syscall.CLONE_NEWNS,
		}
		if o.Detach {
			// The lock lives as long as any host does.
			cmd.ExtraFiles = append(cmd.ExtraFiles, b.lock)
		} else {
			// If this process dies without Close, the host dies with it.
			cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
		}
		if b.spawner != nil {
			err = b.spawner.run(cmd.Start)
		} else {
			err = cmd.Start()
		}
		logf.Close()
		r.Close()
		if err != nil {
			return fmt.Errorf("host %s: start init: %w", hs.Name, err)
		}
		hs.InitPID, hs.InitStart = cmd.Process.Pid, procStartTime(cmd.Process.Pid)
		p := &hostProc{cmd: cmd, done: make(chan struct{})}
		procs[i] = p
		go func() {
			p.err = cmd.Wait()
			close(p.done)
		}()
		return nil
	})
	for i, p := range procs {
		if p != nil {
			b.procs[st.Hosts[i].Name] = p
		}
	}
	b.syncHosts()
	if err != nil {
		return err
	}
	if err := writeState(st); err != nil {
		return err
	}
	o.logf("testbed %s: inits started after %v", st.Prefix, time.Since(t0).Round(time.Millisecond))

	var batch strings.Builder
	fmt.Fprintf(&batch, "link add %s type bridge\n", st.Bridge)
	fmt.Fprintf(&batch, "addr add %s/24 dev %s\n", st.Gateway, st.Bridge)
	if len(st.Hosts) > hostsPerSubnet {
		fmt.Fprintf(&batch, "addr add %s/24 dev %s\n", secondGateway(st.Octet), st.Bridge)
	}
	fmt.Fprintf(&batch, "link set %s up\n", st.Bridge)
	for _, hs := range st.Hosts {
		fmt.Fprintf(&batch, "netns attach %s %d\n", hs.Netns, hs.InitPID)
		fmt.Fprintf(&batch, "link add %s type veth peer name eth0 netns %s\n", hs.Veth, hs.Netns)
		fmt.Fprintf(&batch, "link set %s master %s up\n", hs.Veth, st.Bridge)
		if hs.Bastion {
			fmt.Fprintf(&batch, "link add %s type veth peer name eth1 netns %s\n", hs.Link, hs.Netns)
			fmt.Fprintf(&batch, "addr add %s/30 dev %s\n", bastionLinkGateway(st.Octet), hs.Link)
			fmt.Fprintf(&batch, "link set %s up\n", hs.Link)
		}
	}
	if out, err := ipBatch(ctx, batch.String(), false); err != nil {
		return fmt.Errorf("create network: %w: %s", err, strings.TrimSpace(string(out)))
	}
	if err := b.bastionLink(ctx); err != nil {
		return err
	}
	for i, w := range goPipes {
		if _, err := w.Write([]byte{1}); err != nil {
			return fmt.Errorf("host %s: signal init: %w (init log: %s)", st.Hosts[i].Name, err, tail(filepath.Join(st.Hosts[i].Root, "init.log")))
		}
	}
	o.logf("testbed %s: network ready after %v", st.Prefix, time.Since(t0).Round(time.Millisecond))

	waitCtx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	return parallel(waitCtx, 1, 1, func(ctx context.Context, _ int) error {
		// One poller for all hosts: cheaper than a goroutine each.
		pending := map[int]bool{}
		for i := range st.Hosts {
			pending[i] = true
		}
		for {
			for i := range pending {
				hs := &st.Hosts[i]
				if _, err := os.Stat(filepath.Join(hs.Root, "run/kplay/ready")); err == nil && listening(hs.InitPID, hs.Address, 22) {
					delete(pending, i)
					continue
				}
				select {
				case <-b.procs[hs.Name].done:
					return fmt.Errorf("host %s: init exited (%v): %s", hs.Name, b.procs[hs.Name].err, tail(filepath.Join(hs.Root, "init.log")))
				default:
				}
			}
			if len(pending) == 0 {
				return nil
			}
			select {
			case <-ctx.Done():
				for i := range pending {
					hs := &st.Hosts[i]
					return fmt.Errorf("host %s (and %d more): not up (init log: %s; sshd log: %s): %w", hs.Name, len(pending)-1,
						tail(filepath.Join(hs.Root, "init.log")), tail(hs.Root+"/var/log/sshd.log"), ctx.Err())
				}
			case <-time.After(10 * time.Millisecond):
			}
		}
	})
}

// listening reports whether a TCP socket listens on addr:port in the network
// namespace of process pid. It reads /proc instead of connecting, so that
// readiness checks do not show up in sshd's log.
func listening(pid int, addr string, port int) bool {
	var a [4]byte
	parts := strings.Split(addr, ".")
	if len(parts) != 4 {
		return false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return false
		}
		a[i] = byte(n)
	}
	want := fmt.Sprintf("%02X%02X%02X%02X:%04X", a[3], a[2], a[1], a[0], port)
	any := fmt.Sprintf("00000000:%04X", port)
	f, err := os.Open(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 3 && (fields[1] == want || fields[1] == any) && fields[3] == "0A" {
			return true
		}
	}
	return false
}

// tail returns the last lines of a log file, for error messages.
func tail(p string) string {
	data, err := os.ReadFile(p)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	s := strings.TrimSpace(string(data))
	if len(s) > 1500 {
		s = "..." + s[len(s)-1500:]
	}
	if s == "" {
		return "(empty)"
	}
	return s
}

// parallel runs f(ctx, 0..n-1) with at most limit at once. The first error
// cancels the ctx the others get; parallel returns the first few errors.
func parallel(ctx context.Context, n, limit int, f func(ctx context.Context, i int) error) error {
	if limit < 1 {
		limit = 1
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, limit)
	var mu sync.Mutex
	var errs []error
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if len(errs) == 0 {
			cancel()
		}
		errs = append(errs, err)
	}
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(ctx, i); err != nil {
				fail(err)
			}
		}()
	}
	wg.Wait()
	if len(errs) == 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		return nil
	}
	if len(errs) > 3 {
		return fmt.Errorf("%w\n(and %d more errors)", errors.Join(errs[:3]...), len(errs)-3)
	}
	return errors.Join(errs...)
}

// spawner runs functions on one OS thread that lives as long as the bed.
// The kernel sends a child its parent-death signal (Pdeathsig) when the
// *thread* that forked it ends, and the Go runtime ends a thread when a
// goroutine locked to it exits; forking the hosts from a thread the bed owns
// means that only Close (or this process dying) takes them down.
type spawner struct {
	reqs chan func()
}

// newSpawner starts a spawner's thread.
func newSpawner() *spawner {
	s := &spawner{reqs: make(chan func())}
	go func() {
		runtime.LockOSThread()
		for f := range s.reqs {
			f()
		}
		// Exit still locked: the thread ends with the bed.
	}()
	return s
}

// run runs f on the spawner's thread.
func (s *spawner) run(f func() error) error {
	errc := make(chan error, 1)
	s.reqs <- func() { errc <- f() }
	return <-errc
}

// stop ends the spawner's thread (which sends the parent-death signal to
// anything it started that still runs).
func (s *spawner) stop() { close(s.reqs) }
