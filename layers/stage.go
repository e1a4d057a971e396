package layers

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
)

// Stage is one transformation stacked on a connection: PROXY decode,
// ClientHello peek, TLS decode or encode. A stage owns the buffers it needs;
// its Accept runs the stage's opening step (reading a PROXY header, a TLS
// handshake) on conn and returns the connection the next stage reads from.
//
// A stage reports up to the session through what it returns, never through
// callbacks, so one goroutine sees every event in order:
//   - handshake done: Accept returns, having recorded what it learned on
//     the Initiator (Source/Dest, SNI, ALPN, Handshake with the peer
//     certificates);
//   - error with a cause, or timeout: Accept, Read or Write returns a
//     *StageError naming the side, the stage and the phase (a timeout's
//     cause is ErrTimeout or os.ErrDeadlineExceeded);
//   - read closed: Read returns io.EOF (a FIN, a TLS close_notify);
//   - write closed: CloseWrite on the returned connection shuts the
//     sending direction alone (the session carries half-closes across).
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

// FactsOf turns a finished handshake's state (crypto/tls's, or quic-go's
// for QUIC) into the facts a TLS stage reports. PeerCertificates is the
// verified chain when there is one, else what the peer sent.
func FactsOf(cs tls.ConnectionState) *HandshakeFacts {
	peers := cs.PeerCertificates
	if len(cs.VerifiedChains) > 0 {
		peers = cs.VerifiedChains[0]
	}
	return &HandshakeFacts{
		SNI:              cs.ServerName,
		ALPN:             cs.NegotiatedProtocol,
		Version:          cs.Version,
		CipherSuite:      cs.CipherSuite,
		Resumed:          cs.DidResume,
		PeerCertificates: peers,
	}
}
