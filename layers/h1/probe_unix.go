//go:build unix

package h1

import "syscall"

// probe peeks at the socket without blocking: EAGAIN means open and quiet;
// a byte, EOF or an error means the server closed it or spoke unasked.
func (c *ClientConn) probe(fd uintptr) bool {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	c.probeOK = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
	return true
}

// readable peeks at the socket without blocking: false (wait) while it has
// nothing to read; true when it has bytes, or the peer closed it, or an
// error is pending.
func readable(fd uintptr) bool {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err != syscall.EAGAIN && err != syscall.EWOULDBLOCK
}

// canPeek tells whether readable works here.
const canPeek = true
