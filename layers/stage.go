package layers

import (
	"context"
	"crypto/x509"
	"net"
)

// Stage is one transformation stacked on a connection: PROXY decode,
// ClientHello peek, TLS decode or encode. A stage owns the buffers it needs;
// its Accept runs the stage's opening step (reading a PROXY header, a TLS
// handshake) on conn and returns the connection the next stage reads from.
// It records what it learned on the Initiator (Source, SNI, Handshake) and
// reports failures as a *StageError naming itself.
//
// Accept must honour ctx (its deadline bounds the opening step) and must not
// keep a reference to conn after a failure: the caller closes it.
type Stage interface {
	Name() string
	Accept(ctx context.Context, in *Initiator, conn net.Conn) (net.Conn, error)
}

// HandshakeFacts is what a TLS stage reports when its handshake is done.
type HandshakeFacts struct {
	SNI         string
	ALPN        string
	Version     uint16
	CipherSuite uint16
	Resumed     bool
	// PeerCertificates is the verified client (or server) chain, leaf first;
	// empty when the peer sent none.
	PeerCertificates []*x509.Certificate
}

// EventKind is the kind of an Event a stage reports up to the session.
type EventKind uint8

// The events stages report.
const (
	EventHandshakeDone EventKind = iota + 1
	EventReadClosed              // the peer finished sending (FIN, close_notify)
	EventWriteClosed             // our sending direction was shut
	EventError                   // Err says why
	EventTimeout                 // a deadline passed
)

func (k EventKind) String() string {
	switch k {
	case EventHandshakeDone:
		return "handshake done"
	case EventReadClosed:
		return "read closed"
	case EventWriteClosed:
		return "write closed"
	case EventError:
		return "error"
	case EventTimeout:
		return "timeout"
	}
	return "unknown"
}

// Event is what a stage reports up to the session.
type Event struct {
	Kind  EventKind
	Side  Side
	Stage string
	Facts *HandshakeFacts // EventHandshakeDone only
	Err   error           // EventError, EventTimeout
}

// EventSink receives the events of one session's stages. Implementations
// must be cheap and safe for concurrent use by the two forwarding
// directions.
type EventSink interface {
	StageEvent(Event)
}
