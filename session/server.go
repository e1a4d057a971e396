package session

import (
	"crypto/tls"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/strata-proxy/strata/layers"
	"github.com/strata-proxy/strata/layers/h2"
	"github.com/strata-proxy/strata/layers/h3"
)

// ServerOptions is one configured server of a backend: what the user wrote,
// with no live state. A reload builds new ServerOptions and a new Backend.
type ServerOptions struct {
	// Name identifies the server in logs; it also places the server on the
	// `source` hash ring, so keep it stable across reloads. Empty means
	// Address.
	Name string
	// Address is host:port, used by the "tcp" health check.
	Address string
	// Weight is the server's share of the traffic. 0 drains the server: it
	// is never picked. The caller applies the default (1).
	Weight int
	// MaxConn caps the slots held on the server at once; 0 is unlimited.
	// Clients wait in the backend's queue when every server is full.
	MaxConn int
	// Backup servers are used only when no non-backup server is usable.
	Backup bool
	// Connector reaches the server: the socket, then the outbound stages
	// (PROXY header, TLS encode). The "tls" health check uses it too.
	Connector layers.Connector
	// QUIC, when set, sends HTTP requests to Address over HTTP/3 (UDP)
	// with this TLS configuration, one QUIC connection shared by every
	// session; while the server cannot be reached over QUIC, requests go
	// through Connector (TCP), in Proto, instead.
	QUIC *tls.Config
	// Proto is the HTTP version spoken to the server (HTTP/1.1 when zero).
	Proto Proto
}

// Proto is the HTTP version an HTTP session speaks to a server.
type Proto uint8

// The protocols spoken to servers.
const (
	// ProtoH1 is HTTP/1.1: one request at a time on a connection, idle
	// connections pooled for reuse.
	ProtoH1 Proto = iota
	// ProtoH2 is HTTP/2: over TLS when the Connector's stages include TLS
	// (which must offer "h2" by ALPN), else cleartext with prior knowledge
	// (h2c). Requests are streams multiplexed on a few connections shared
	// by every session (layers/h2.Client).
	ProtoH2
)

func (p Proto) String() string {
	switch p {
	case ProtoH1:
		return "h1"
	case ProtoH2:
		return "h2"
	}
	return "unknown"
}

// Server is the live side of one configured server: its slots, its health
// and its passive-ejection state. It belongs to one Backend and is safe for
// concurrent use.
type Server struct {
	b    *Backend
	idx  int // position in b.servers
	opts ServerOptions

	// healthy is written by the server's health checker only.
	healthy atomic.Bool
	// ejectUntil is when a passive ejection ends, in Unix nanoseconds; 0
	// means never ejected. Written by Observe.
	ejectUntil atomic.Int64
	// failures counts consecutive failed connects seen by Observe.
	failures atomic.Int64

	// pool holds the idle HTTP/1 connections to the server (pool.go).
	pool idlePool
	// mux holds the shared HTTP/2 connections when the server speaks
	// HTTP/2 (Proto ProtoH2); nil otherwise.
	mux *h2.Client
	// h3 is the HTTP/3 stage to the server when ServerOptions.QUIC is set
	// (its QUIC connection is shared by every session); nil otherwise.
	h3 *h3.Client
	// setCookie is the Set-Cookie value naming the server for cookie
	// persistence; nil when the backend has none. Read-only.
	setCookie []byte

	// active and maxActive are guarded by b.mu.
	active    int
	maxActive int
}

// Name returns the server's configured name (its address when none was
// given).
func (s *Server) Name() string { return s.opts.Name }

// Address returns the server's configured host:port.
func (s *Server) Address() string { return s.opts.Address }

// multiplexed reports whether requests to the server share connections
// (HTTP/2), so that any request may take a stream on one.
func (s *Server) multiplexed() bool { return s.mux != nil }

// SharedConns returns the number of HTTP/2 connections kept to the server
// (0 for an HTTP/1 server).
func (s *Server) SharedConns() int {
	if s.mux == nil {
		return 0
	}
	return s.mux.Conns()
}

// Connector returns how to reach the server.
func (s *Server) Connector() layers.Connector { return s.opts.Connector }

// Up reports whether the server is usable for new clients as far as health
// goes: its active checks say up and it is not passively ejected. A drained
// server (weight 0) may be up and still never picked.
func (s *Server) Up() bool { return s.upAt(time.Now().UnixNano()) }

func (s *Server) upAt(now int64) bool {
	if !s.healthy.Load() {
		return false
	}
	u := s.ejectUntil.Load()
	return u == 0 || now >= u
}

// usableAt is what the balancers look at: up and with a share of traffic.
func (s *Server) usableAt(now int64) bool { return s.opts.Weight > 0 && s.upAt(now) }

// hasSlot reports whether one more slot fits under MaxConn. b.mu is held.
func (s *Server) hasSlot() bool { return s.opts.MaxConn <= 0 || s.active < s.opts.MaxConn }

// takeLocked holds one slot. b.mu is held.
func (s *Server) takeLocked() {
	s.active++
	if s.active > s.maxActive {
		s.maxActive = s.active
	}
}

// Active returns the number of slots held on the server now.
func (s *Server) Active() int {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	return s.active
}

// MaxActive returns the most slots ever held on the server at once; it
// never exceeds MaxConn when MaxConn is set.
func (s *Server) MaxActive() int {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	return s.maxActive
}

// Release gives back a slot taken by Backend.Acquire. If clients are
// queued, the slot goes straight to the first one that can use it. Call it
// exactly once per successful Acquire.
func (s *Server) Release() {
	b := s.b
	b.mu.Lock()
	if s.active == 0 {
		b.mu.Unlock()
		// A double release would let MaxConn be exceeded; refuse it loudly
		// rather than corrupt the count.
		b.log.Error("server slot released twice; this is a strata bug, please report it",
			slog.String("backend", b.name), slog.String("server", s.opts.Name))
		return
	}
	s.active--
	if b.queue.n > 0 {
		b.dispatchLocked()
	}
	b.mu.Unlock()
}

// Observe records the outcome of a connect to the server. nil resets the
// count of consecutive failures; an error adds to it, and when the count
// reaches PassiveOptions.Failures the server is ejected for
// PassiveOptions.Eject. After the ejection the server is half-open: it is
// picked again, one more failure ejects it again, and one success
// (Observe(nil)) clears the count. Without PassiveOptions, Observe does
// nothing.
func (s *Server) Observe(err error) {
	p := s.b.passive
	if p == nil {
		return
	}
	if err == nil {
		if s.failures.Load() != 0 {
			s.failures.Store(0)
		}
		return
	}
	n := s.failures.Add(1)
	if n < int64(p.Failures) {
		return
	}
	now := time.Now()
	u := s.ejectUntil.Load()
	if u != 0 && now.UnixNano() < u {
		return // already ejected
	}
	if !s.ejectUntil.CompareAndSwap(u, now.Add(p.Eject).UnixNano()) {
		return // another failure ejected it first
	}
	b := s.b
	b.log.Warn("server ejected",
		slog.String("backend", b.name),
		slog.String("server", s.opts.Name),
		slog.String("address", s.opts.Address),
		slog.String("reason", err.Error()),
		slog.Int64("failures", n),
		slog.Duration("for", p.Eject))
	// Queued clients waiting for this server must move on now, and may
	// come back to it when the ejection ends.
	b.wake()
	time.AfterFunc(p.Eject, b.wake)
}
