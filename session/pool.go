package session

import (
	"sync"
	"time"
)

// Idle server connections.
//
// Each Server keeps the HTTP connections that finished a response cleanly,
// most recently used last, for later sessions to reuse (DESIGN.md §1: a
// connector's connections are pooled per server, and one Connector per
// server already encodes its TLS parameters). A pooled connection holds no
// buffer and no goroutine: taking one that has been idle for a while checks
// without blocking that the server has not closed it (upstream.Alive). Connections idle longer than
// the backend's IdleTimeout are closed by one timer per server.

// A connection pooled less than probeAfter ago is taken without the
// liveness probe: under load connections come back to the pool and leave it
// within microseconds, and the probe is a system call per request (a third
// of the work of reading a small response). Servers do not close a
// kept-alive connection that soon after answering on it; and if one did,
// nothing is lost: only requests that can be replayed ride pooled
// connections, and an empty response on one is replayed on a fresh
// connection (analyseConnect).
const probeAfter = 250 * time.Millisecond

// Defaults of the idle pool. An HTTP/2 or HTTP/3 front multiplexes many
// requests in flight onto HTTP/1 server connections, one each: a pool
// smaller than that concurrency closes and redials connections all the
// time (HAProxy keeps every idle one by default).
const (
	defaultMaxIdle     = 1024
	defaultIdleTimeout = 10 * time.Second
)

type idleConn struct {
	up    upstream
	since time.Time
}

// idlePool is a Server's idle connections; mu guards it.
type idlePool struct {
	mu     sync.Mutex
	conns  []idleConn // oldest first
	timer  *time.Timer
	closed bool
}

// takeIdle returns the most recently pooled live connection, or nil.
func (s *Server) takeIdle() upstream {
	p := &s.pool
	for {
		p.mu.Lock()
		n := len(p.conns)
		if n == 0 {
			p.mu.Unlock()
			return nil
		}
		ic := p.conns[n-1]
		p.conns[n-1] = idleConn{}
		p.conns = p.conns[:n-1]
		p.mu.Unlock()
		idle := time.Since(ic.since)
		if idle < probeAfter || (idle < s.b.idleTimeout && ic.up.Alive()) {
			return ic.up
		}
		ic.up.Close()
	}
}

// putIdle pools up, or closes it when the pool is full or off. A stream
// on a shared HTTP/2 connection is closed: that gives its place on the
// connection back, which stays shared.
func (s *Server) putIdle(up upstream) {
	if s.mux != nil {
		up.Close()
		return
	}
	p := &s.pool
	max := s.b.maxIdle
	p.mu.Lock()
	if p.closed || max <= 0 || len(p.conns) >= max {
		p.mu.Unlock()
		up.Close()
		return
	}
	p.conns = append(p.conns, idleConn{up: up, since: time.Now()})
	if p.timer == nil {
		p.timer = time.AfterFunc(s.b.idleTimeout, s.purgeIdle)
	} else if len(p.conns) == 1 {
		p.timer.Reset(s.b.idleTimeout)
	}
	p.mu.Unlock()
}

// purgeIdle closes the connections idle for too long and re-arms the timer
// for the next one to expire.
func (s *Server) purgeIdle() {
	p := &s.pool
	now := time.Now()
	var expired []upstream
	p.mu.Lock()
	k := 0
	for k < len(p.conns) && now.Sub(p.conns[k].since) >= s.b.idleTimeout {
		expired = append(expired, p.conns[k].up)
		k++
	}
	if k > 0 {
		n := copy(p.conns, p.conns[k:])
		clear(p.conns[n:])
		p.conns = p.conns[:n]
	}
	if len(p.conns) > 0 && !p.closed {
		p.timer.Reset(s.b.idleTimeout - now.Sub(p.conns[0].since))
	}
	p.mu.Unlock()
	for _, up := range expired {
		up.Close()
	}
}

// IdleConns returns the number of idle pooled connections to the server.
func (s *Server) IdleConns() int {
	s.pool.mu.Lock()
	defer s.pool.mu.Unlock()
	return len(s.pool.conns)
}

// CloseIdle closes the backend's idle pooled connections and its shared
// HTTP/3 connections, and stops pooling new ones; shared HTTP/2
// connections close once their last stream ends. Call it when the backend
// is retired (a reload, shutdown) and its sessions are over.
func (b *Backend) CloseIdle() {
	for _, s := range b.servers {
		if s.mux != nil {
			s.mux.CloseIdle()
		}
		p := &s.pool
		p.mu.Lock()
		p.closed = true
		conns := p.conns
		p.conns = nil
		if p.timer != nil {
			p.timer.Stop()
		}
		p.mu.Unlock()
		for _, ic := range conns {
			ic.up.Close()
		}
		if s.h3 != nil {
			s.h3.Close() // the sessions that shared it are over
		}
	}
}

// acquireNow is Acquire's path that does not wait: decided is false when
// the client would have to queue (call Acquire then).
func (b *Backend) acquireNow(r *pickReq, tried []*Server) (srv *Server, err error, decided bool) {
	b.mu.Lock()
	srv, err = b.takeLocked(r, tried)
	b.mu.Unlock()
	switch {
	case err == errMustWait:
		return nil, nil, false
	case err != nil:
		return nil, queueError(err), true
	}
	return srv, nil, true
}
