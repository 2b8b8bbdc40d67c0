// Command kplay-hostinit is PID 1 of every kplay test host, and the helper
// that (re)starts a host's sshd.
//
//	kplay-hostinit init -name NAME -cidr ADDR/LEN [-kube -period 2s] -bind SRC:DST...
//	kplay-hostinit start-sshd
//
// The testbed starts `init` in new network, PID, UTS, IPC and mount
// namespaces. It makes its mounts private, sets the hostname, mounts a fresh
// /proc and /sys, bind-mounts each SRC over DST (every source is opened before
// any mount, so a mount cannot hide a later source), then waits for one byte
// on fd 3: the controller sends it once the host's eth0 is in place (EOF
// means the controller gave up, and init exits). It then brings up lo and
// eth0 with the address, starts sshd (and on kube hosts the kubelet
// stand-in), writes /run/kplay/ready and reaps zombies for ever. It does all
// this without running other programs, so a host costs two execs (init and
// sshd) to start.
//
// `start-sshd` starts the host's sshd (sshd -D -e -E /var/log/sshd.log) in
// the background and writes its pid to /run/kplay/sshd.pid; the sshd is
// reparented to init when start-sshd exits.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

const (
	// sshdPath is Debian's sshd; it must be run by absolute path.
	sshdPath = "/usr/sbin/sshd"
	// sshdLog is where sshd logs (-E).
	sshdLog = "/var/log/sshd.log"
	// hostPATH is the PATH of the daemons init starts.
	hostPATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	// oPath is Linux's O_PATH, which package syscall does not define.
	oPath = 0x200000
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kplay-hostinit init|start-sshd [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "init":
		err = initHost(os.Args[2:])
	case "start-sshd":
		_, err = startSSHD()
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "kplay-hostinit %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// bindList is a repeatable -bind SRC:DST flag.
type bindList []string

// String joins the binds.
func (b *bindList) String() string { return strings.Join(*b, ",") }

// Set adds a bind.
func (b *bindList) Set(s string) error {
	if !strings.Contains(s, ":") {
		return fmt.Errorf("bind %q: want SRC:DST", s)
	}
	*b = append(*b, s)
	return nil
}

// initHost is PID 1's work.
func initHost(args []string) error {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	name := fs.String("name", "", "hostname")
	cidr := fs.String("cidr", "", "eth0 address, ADDR/LEN")
	kube := fs.Bool("kube", false, "start the kubelet stand-in")
	period := fs.Duration("period", 2*time.Second, "kubelet stand-in poll period")
	var binds bindList
	fs.Var(&binds, "bind", "SRC:DST bind mount (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ip, ipnet, err := net.ParseCIDR(*cidr)
	if err != nil || ip.To4() == nil {
		return fmt.Errorf("bad -cidr %q", *cidr)
	}
	// Swallow the signals that would end a Go program. (Handled, not
	// ignored: ignored dispositions would be inherited by the daemons.)
	drain := make(chan os.Signal, 8)
	signal.Notify(drain, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go func() {
		for range drain {
		}
	}()
	if err := setupMounts(*name, binds); err != nil {
		return err
	}
	// Wait for the controller to put eth0 into our network namespace.
	goPipe := os.NewFile(3, "go")
	var b [1]byte
	if n, _ := goPipe.Read(b[:]); n != 1 {
		return errors.New("controller went away before the network was ready")
	}
	goPipe.Close()
	if err := setupNetwork(ip.To4(), net.IP(ipnet.Mask).To4()); err != nil {
		return err
	}
	if err := os.Chdir("/"); err != nil {
		return fmt.Errorf("chdir: %w", err)
	}
	os.Setenv("PATH", hostPATH)
	os.Setenv("HOME", "/root")
	if _, err := startSSHD(); err != nil {
		return err
	}
	if *kube {
		if err := startDaemon("/var/log/kubelet.log", "/usr/local/bin/kplay-kubelet",
			"-manifests", "/etc/kubernetes/manifests", "-period", period.String(),
			"-status", "/var/lib/kplay-testbed/kubelet-status.json"); err != nil {
			return fmt.Errorf("start kubelet stand-in: %w", err)
		}
	}
	if err := os.WriteFile("/run/kplay/ready", nil, 0o644); err != nil {
		return fmt.Errorf("ready mark: %w", err)
	}
	reap()
	return nil
}

// setupMounts makes the mount namespace private, sets the hostname, mounts
// /proc and /sys for the new namespaces and makes the bind mounts.
func setupMounts(name string, binds []string) error {
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := syscall.Sethostname([]byte(name)); err != nil {
		return fmt.Errorf("sethostname: %w", err)
	}
	// Open every source first: a mount over /tmp must not hide a source that
	// lives under /tmp.
	type bind struct {
		fd       int
		src, dst string
	}
	var bs []bind
	for _, s := range binds {
		// DST is a fixed path without ':'; SRC (under the bed's Dir) may have one.
		i := strings.LastIndexByte(s, ':')
		src, dst := s[:i], s[i+1:]
		fd, err := syscall.Open(src, oPath|syscall.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open bind source %s: %w", src, err)
		}
		bs = append(bs, bind{fd, src, dst})
	}
	if err := syscall.Mount("proc", "/proc", "proc", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	// /sys shows the network devices of the namespace that mounts it.
	if err := syscall.Unmount("/sys", syscall.MNT_DETACH); err == nil {
		if err := syscall.Mount("sysfs", "/sys", "sysfs", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("mount /sys: %w", err)
		}
	}
	for _, b := range bs {
		if err := syscall.Mount("/proc/self/fd/"+strconv.Itoa(b.fd), b.dst, "", syscall.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s over %s: %w", b.src, b.dst, err)
		}
		syscall.Close(b.fd)
	}
	return nil
}

// ifreqFlags is struct ifreq with ifr_flags.
type ifreqFlags struct {
	name  [syscall.IFNAMSIZ]byte
	flags uint16
	_     [22]byte
}

// ifreqAddr is struct ifreq with an IPv4 ifr_addr.
type ifreqAddr struct {
	name [syscall.IFNAMSIZ]byte
	addr syscall.RawSockaddrInet4
	_    [8]byte
}

// setupNetwork brings up lo and eth0 with the address, using ioctls.
func setupNetwork(ip, mask net.IP) error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer syscall.Close(fd)
	ioctl := func(req uintptr, arg unsafe.Pointer) error {
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), req, uintptr(arg)); e != 0 {
			return e
		}
		return nil
	}
	up := func(dev string) error {
		var r ifreqFlags
		copy(r.name[:], dev)
		if err := ioctl(syscall.SIOCGIFFLAGS, unsafe.Pointer(&r)); err != nil {
			return fmt.Errorf("get flags of %s: %w", dev, err)
		}
		r.flags |= syscall.IFF_UP
		if err := ioctl(syscall.SIOCSIFFLAGS, unsafe.Pointer(&r)); err != nil {
			return fmt.Errorf("bring up %s: %w", dev, err)
		}
		return nil
	}
	setAddr := func(dev string, req uintptr, a net.IP) error {
		var r ifreqAddr
		copy(r.name[:], dev)
		r.addr.Family = syscall.AF_INET
		copy(r.addr.Addr[:], a)
		if err := ioctl(req, unsafe.Pointer(&r)); err != nil {
			return fmt.Errorf("set address of %s: %w", dev, err)
		}
		return nil
	}
	bcast := make(net.IP, 4)
	for i := range bcast {
		bcast[i] = ip[i] | ^mask[i]
	}
	if err := up("lo"); err != nil {
		return err
	}
	if err := setAddr("eth0", syscall.SIOCSIFADDR, ip); err != nil {
		return err
	}
	if err := setAddr("eth0", syscall.SIOCSIFNETMASK, mask); err != nil {
		return err
	}
	if err := setAddr("eth0", syscall.SIOCSIFBRDADDR, bcast); err != nil {
		return err
	}
	return up("eth0")
}

// startSSHD starts the host's sshd in the background and records its pid.
func startSSHD() (int, error) {
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return 0, fmt.Errorf("privilege separation directory: %w", err)
	}
	if err := os.Chmod("/run/sshd", 0o755); err != nil {
		return 0, fmt.Errorf("privilege separation directory: %w", err)
	}
	pid, err := startProcess(sshdLog, sshdPath, "-D", "-e", "-E", sshdLog, "-f", "/etc/ssh/sshd_config")
	if err != nil {
		return 0, fmt.Errorf("start sshd: %w", err)
	}
	if err := os.MkdirAll("/run/kplay", 0o755); err != nil {
		return 0, fmt.Errorf("pid file: %w", err)
	}
	if err := os.WriteFile("/run/kplay/sshd.pid", []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return 0, fmt.Errorf("pid file: %w", err)
	}
	return pid, nil
}

// startDaemon starts a background process logging to logPath.
func startDaemon(logPath, path string, args ...string) error {
	_, err := startProcess(logPath, path, args...)
	return err
}

// startProcess starts path with stdin /dev/null and stdout and stderr
// appended to logPath, and does not wait for it (init reaps it).
func startProcess(logPath, path string, args ...string) (int, error) {
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return 0, fmt.Errorf("log directory: %w", err)
	}
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return 0, fmt.Errorf("open log: %w", err)
	}
	defer logf.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", os.DevNull, err)
	}
	defer null.Close()
	p, err := os.StartProcess(path, append([]string{path}, args...), &os.ProcAttr{
		Dir:   "/",
		Env:   []string{"PATH=" + hostPATH, "HOME=/root", "LANG=C"},
		Files: []*os.File{null, logf, logf},
	})
	if err != nil {
		return 0, err
	}
	pid := p.Pid
	p.Release()
	return pid, nil
}

// reap waits for every child, ours and orphans reparented to us, for ever.
func reap() {
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs, syscall.SIGCHLD)
	tick := time.NewTicker(5 * time.Second)
	for {
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
		select {
		case <-sigs:
		case <-tick.C:
		}
	}
}
