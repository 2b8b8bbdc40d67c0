package remote

import (
	"net"
	"sync/atomic"
	"time"
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
