//go:build linux && !386

package session

import (
	"net"
	"syscall"
	"time"
	"unsafe"
)

// spliceSupported: on Linux, io.Copy between two *net.TCPConn moves the
// bytes with splice(2), and TCP_INFO tells the idle watchdog when a socket
// last carried data, so the splice path needs no per-read bookkeeping.
const spliceSupported = true

// tcpInfo is the head of the kernel's struct tcp_info
// (include/uapi/linux/tcp.h), up to tcpi_last_ack_recv. The kernel copies
// min(optlen, sizeof(struct tcp_info)), so a prefix is enough and stable.
type tcpInfo struct {
	State, CAState, Retransmits, Probes, Backoff, Options, WScale, AppLimited uint8

	RTO, ATO, SndMSS, RcvMSS                uint32
	Unacked, Sacked, Lost, Retrans, Fackets uint32

	// Milliseconds since the socket last sent data, (unused), since it
	// last received data, since it last received an ACK.
	LastDataSent, LastAckSent, LastDataRecv, LastAckRecv uint32
}

// tcpStateClose is TCP_CLOSE: the socket was reset or fully closed.
const tcpStateClose = 7

func getTCPInfo(c *net.TCPConn) (tcpInfo, bool) {
	var info tcpInfo
	rc, err := c.SyscallConn()
	if err != nil {
		return info, false
	}
	var errno syscall.Errno
	cerr := rc.Control(func(fd uintptr) {
		size := uint32(unsafe.Sizeof(info))
		_, _, errno = syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.IPPROTO_TCP, syscall.TCP_INFO,
			uintptr(unsafe.Pointer(&info)), uintptr(unsafe.Pointer(&size)), 0)
	})
	return info, cerr == nil && errno == 0
}

// tcpIdle is how long ago the socket last sent or received data, as the
// kernel saw it (jiffy resolution, a few milliseconds). ok is false when
// the kernel could not say; the caller then treats the socket as active.
func tcpIdle(c *net.TCPConn) (idle time.Duration, ok bool) {
	info, ok := getTCPInfo(c)
	if !ok {
		return 0, false
	}
	return time.Duration(min(info.LastDataRecv, info.LastDataSent)) * time.Millisecond, true
}

// tcpReset reports whether the socket was reset (or fully closed) by its
// peer: after a splice error, it tells which end failed.
func tcpReset(c *net.TCPConn) bool {
	info, ok := getTCPInfo(c)
	return ok && info.State == tcpStateClose
}
