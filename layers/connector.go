package layers

import (
	"context"
	"net"
	"time"
)

// Connector knows one destination (a server of a backend) and makes
// connections to it: the socket, then its outbound stages (PROXY header,
// TLS encode).
type Connector interface {
	// Connect returns a connection ready for data, or a *StageError with
	// Side SideServer naming the stage and phase that failed.
	Connect(ctx context.Context, in *Initiator) (net.Conn, error)
	// Addr is the destination, as configured.
	Addr() string
}

// Dialer is the socket step of a Connector: a TCP connect to Address with
// the context's deadline, optionally followed by outbound stages.
type Dialer struct {
	Address string
	// Stages run in order on the new socket (PROXY header, TLS encode).
	Stages []Stage
	// KeepAlive is the TCP keep-alive period (0 = Go's default).
	KeepAlive time.Duration
}

// Addr returns the configured address.
func (d *Dialer) Addr() string { return d.Address }

// Connect dials the server and runs the outbound stages.
func (d *Dialer) Connect(ctx context.Context, in *Initiator) (net.Conn, error) {
	nd := net.Dialer{KeepAlive: d.KeepAlive}
	c, err := nd.DialContext(ctx, "tcp", d.Address)
	if err != nil {
		if ctx.Err() != nil {
			err = ErrTimeout
		}
		return nil, &StageError{Side: SideServer, Stage: "tcp", Phase: PhaseConnect, Err: err}
	}
	var conn net.Conn = c
	for _, s := range d.Stages {
		next, err := s.Accept(ctx, in, conn)
		if err != nil {
			conn.Close()
			return nil, Wrap(SideServer, s.Name(), PhaseConnect, err)
		}
		conn = next
	}
	return conn, nil
}
