package h3test

import (
	"context"
	"crypto/tls"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// Dial returns a function for http3.Transport.Dial: each QUIC connection
// gets a loopback UDP socket of its own, wrapped by wrap, dialed early
// (0-RTT) when early is set. cleanup (t.Cleanup) receives what closes the
// socket at the end of the test.
func Dial(cleanup func(func()), wrap func(net.PacketConn) net.PacketConn, early bool) func(context.Context, string, *tls.Config, *quic.Config) (*quic.Conn, error) {
	return func(ctx context.Context, addr string, tc *tls.Config, qc *quic.Config) (*quic.Conn, error) {
		ua, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return nil, err
		}
		pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return nil, err
		}
		tr := &quic.Transport{Conn: wrap(pc)}
		cleanup(func() { tr.Close(); pc.Close() })
		if early {
			return tr.DialEarly(ctx, ua, tc, qc)
		}
		return tr.Dial(ctx, ua, tc, qc)
	}
}

// LossyConn drops each datagram sent or received with probability Loss
// and counts them in Dropped.
type LossyConn struct {
	net.PacketConn
	Loss    float64
	Dropped atomic.Int64
}

// WriteTo sends p, or drops it.
func (c *LossyConn) WriteTo(p []byte, a net.Addr) (int, error) {
	if rand.Float64() < c.Loss {
		c.Dropped.Add(1)
		return len(p), nil
	}
	return c.PacketConn.WriteTo(p, a)
}

// ReadFrom returns the next datagram not dropped.
func (c *LossyConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, a, err := c.PacketConn.ReadFrom(p)
		if err != nil || rand.Float64() >= c.Loss {
			return n, a, err
		}
		c.Dropped.Add(1)
	}
}

// HoldHandshake drops the Initial and Handshake packets the client sends
// within Hold of the first packet it receives: the client's Finished is
// lost and sent again later, so that the server reads 0-RTT requests
// before the handshake completes, as on a real network (on loopback the
// handshake would otherwise win the race).
type HoldHandshake struct {
	net.PacketConn
	Hold time.Duration

	mu   sync.Mutex
	seen time.Time // when the first packet was read
}

// ReadFrom notes when the server first answered.
func (h *HoldHandshake) ReadFrom(p []byte) (int, net.Addr, error) {
	n, a, err := h.PacketConn.ReadFrom(p)
	h.mu.Lock()
	if h.seen.IsZero() && err == nil {
		h.seen = time.Now()
	}
	h.mu.Unlock()
	return n, a, err
}

// WriteTo sends p unless it is a long-header Initial or Handshake packet
// sent while holding.
func (h *HoldHandshake) WriteTo(p []byte, a net.Addr) (int, error) {
	h.mu.Lock()
	holding := !h.seen.IsZero() && time.Since(h.seen) < h.Hold
	h.mu.Unlock()
	// A long header (0x80) of type Initial (0x00) or Handshake (0x20).
	if holding && len(p) > 0 && p[0]&0x80 != 0 && (p[0]&0x30 == 0x00 || p[0]&0x30 == 0x20) {
		return len(p), nil
	}
	return h.PacketConn.WriteTo(p, a)
}
