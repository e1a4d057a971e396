//go:build !linux || 386

package session

import (
	"net"
	"time"
)

// spliceSupported is false where Go's io.Copy between TCP sockets does not
// splice or TCP_INFO is not read: sessions copy through the buffer pair,
// whose per-read activity stamps drive the idle timeouts.
const spliceSupported = false

// tcpIdle cannot tell; the socket counts as active.
func tcpIdle(*net.TCPConn) (time.Duration, bool) { return 0, false }

// tcpReset cannot tell.
func tcpReset(*net.TCPConn) bool { return false }
