package layers

import (
	"net"
	"net/netip"
	"time"
)

// Initiator is made by a Listener for each accepted connection (or by a
// task pretending to be a client, such as a health check). It carries the
// connection's layer-4 facts and what the front stages learned, and it is
// the only thing the L4 rules look at: no session and no buffer exist yet.
//
// An Initiator is owned by the goroutine serving its connection.
type Initiator struct {
	// Conn is the raw accepted connection.
	Conn net.Conn
	// Listener is the address the connection was accepted on, as bound.
	Listener string
	// Remote and Local are the socket's addresses.
	Remote, Local netip.AddrPort
	// Source and Dest are the client's and the original destination's
	// addresses: the socket's, or what a PROXY header said.
	Source, Dest netip.AddrPort
	// Proxied is true when Source/Dest came from a PROXY header.
	Proxied bool
	// Accepted is when the listener accepted the connection.
	Accepted time.Time
	// SNI is the server name seen by the ClientHello peek or the TLS stage.
	SNI string
	// ALPN lists the protocols the client offered (peek) .
	ALPN []string
	// Handshake is set by the TLS decode stage once its handshake is done.
	Handshake *HandshakeFacts

	release []func()
}

// NewInitiator makes the Initiator for conn accepted on listener.
func NewInitiator(conn net.Conn, listener string, now time.Time) *Initiator {
	in := &Initiator{Conn: conn, Listener: listener, Accepted: now}
	in.Remote = AddrPortOf(conn.RemoteAddr())
	in.Local = AddrPortOf(conn.LocalAddr())
	in.Source, in.Dest = in.Remote, in.Local
	return in
}

// OnRelease registers f to run when the connection ends (slot returns for
// connection caps).
func (in *Initiator) OnRelease(f func()) { in.release = append(in.release, f) }

// Release runs the registered release functions once. The owner calls it
// when the connection is closed.
func (in *Initiator) Release() {
	for i := len(in.release) - 1; i >= 0; i-- {
		in.release[i]()
	}
	in.release = nil
}

// AddrPortOf converts a net.Addr of a TCP or UDP socket to netip.AddrPort;
// other addresses give the zero value.
func AddrPortOf(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort()
	case *net.UDPAddr:
		return a.AddrPort()
	}
	if a == nil {
		return netip.AddrPort{}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// Unmap returns the AddrPort with a 4-in-6 address turned into plain IPv4.
func Unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
