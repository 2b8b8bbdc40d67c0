package integration

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kplay/kplay/internal/ptytest"
	"github.com/kplay/kplay/testbed"
)

// testTTYPrompt: with a passphrase-protected key, no agent and no
// KPLAY_KEY_PASSPHRASE, kplay asks on its controlling terminal (/dev/tty),
// once per key however many hosts use it, without echoing what is typed;
// the passphrase never reaches stdout or stderr.
func testTTYPrompt(t *testing.T, b *testbed.Bed, inv, home string) {
	dir := t.TempDir()
	const pass = "typed at the terminal"
	key := keygen(t, dir, "id_tty", pass)
	authorize(t, key+".pub", append([]*testbed.Host{b.Bastion}, b.Hosts...)...)
	cfg := withConfig(t, b, key)
	ptm, pts := ptytest.Open(t)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kplay.path, "check", "-i", inv, "-F", cfg, "--within", "1d")
	env := []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "TERM=xterm"}
	cmd.Env = env // no SSH_AUTH_SOCK, no KPLAY_KEY_PASSPHRASE
	var so, se bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, &so, &se
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	must(t, cmd.Start())
	pts.Close() // the child has it; EOF on ptm once kplay exits

	// Answer each prompt; keep everything the terminal shows.
	var screen strings.Builder
	prompts := 0
	r := bufio.NewReader(ptm)
	for {
		s, err := r.ReadString(':')
		screen.WriteString(s)
		if err != nil {
			break // EIO: the terminal's last holder has gone
		}
		if strings.HasSuffix(screen.String(), "Enter passphrase for "+key+":") {
			prompts++
			if _, err := ptm.WriteString(pass + "\n"); err != nil {
				t.Fatal(err)
			}
		}
	}
	err := cmd.Wait()
	t.Logf("terminal:\n%s\nstdout:\n%s\nstderr:\n%s", screen.String(), so.String(), se.String())
	if err != nil {
		t.Errorf("kplay check with the passphrase typed on the terminal: %v", err)
	}
	if prompts != 1 {
		t.Errorf("%d passphrase prompts for one key used by the bastion and %d hosts, want 1", prompts, len(b.Hosts))
	}
	if strings.Contains(screen.String()+so.String()+se.String(), pass) {
		t.Error("the passphrase was echoed or printed")
	}
}
