package remote

import (
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

// activity records when bytes last arrived on a connection. A connection
// that delivers data is alive even when the answer to a keepalive is slow
// (a host whose CPU is saturated answers late, but answers): the keepalive
// gives up only when nothing at all has arrived for its whole window.
type activity struct{ last atomic.Int64 } // unix nanoseconds

// since is how long ago bytes last arrived (a long time if never).
func (a *activity) since() time.Duration {
	if a == nil {
		return time.Duration(1<<63 - 1)
	}
	last := a.last.Load()
	if last == 0 {
		return time.Duration(1<<63 - 1)
	}
	return time.Since(time.Unix(0, last))
}

// activityConn is a net.Conn that records its reads in a.
type activityConn struct {
	net.Conn
	a *activity
}

// Read reads and, when bytes arrived, notes the time.
func (c activityConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.a.last.Store(time.Now().UnixNano())
	}
	return n, err
}

// keepaliveLoop sends keepalive@openssh.com requests on conn until done
// is closed (then it returns nil), and returns why the peer is gone: an
// error answer, or maxMissed intervals with no answer and nothing else
// arriving either. A live but busy peer that is still sending data is not
// given up. As OpenSSH's ServerAliveInterval, a keepalive is sent only once
// interval has passed with nothing received: bytes arriving already show
// the peer alive, and each keepalive costs a packet out and one in. A dead
// peer is still found interval × (maxMissed + 1) after its last bytes at
// most. sent, if not nil, counts the keepalives sent.
func keepaliveLoop(conn ssh.Conn, act *activity, interval time.Duration, maxMissed int, done <-chan struct{}, sent *atomic.Uint64) error {
	window := interval * time.Duration(maxMissed)
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return nil
		case <-t.C:
		}
		if quiet := act.since(); quiet < interval {
			t.Reset(interval - quiet)
			continue
		}
		if sent != nil {
			sent.Add(1)
		}
		reply := make(chan error, 1)
		go func() {
			_, _, err := conn.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		if err := awaitKeepalive(reply, act, window, maxMissed, done); err != nil {
			return err
		}
		t.Reset(interval)
	}
}

// awaitKeepalive waits for a keepalive's answer: nil when it came (or done
// was closed), else why the peer is taken for gone.
func awaitKeepalive(reply <-chan error, act *activity, window time.Duration, maxMissed int, done <-chan struct{}) error {
	wait := time.NewTimer(window)
	defer wait.Stop()
	for {
		select {
		case err := <-reply:
			return err
		case <-wait.C:
			if quiet := act.since(); quiet < window {
				wait.Reset(window - quiet) // data still arrives: alive, only slow
				continue
			}
			return fmt.Errorf("no answer to %d keepalives in %s, and nothing else arrived", maxMissed, window)
		case <-done:
			return nil
		}
	}
}
