package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-proxy/strata/layers"
	"github.com/strata-proxy/strata/layers/h2"
	"github.com/strata-proxy/strata/layers/h3"
)

// PassiveOptions turns on passive ejection: a server whose connects keep
// failing is taken out of rotation for a while, without waiting for the
// active checks to notice.
type PassiveOptions struct {
	// Failures is how many consecutive connect failures (Server.Observe)
	// eject the server. Values below 1 mean 1.
	Failures int
	// Eject is how long an ejected server stays out. Values below 1 mean
	// 30 s.
	Eject time.Duration
}

// BackendOptions configures a Backend: what the user wrote, with no live
// state.
type BackendOptions struct {
	// Name identifies the backend in logs.
	Name string
	// Balance is the algorithm: roundrobin (the default when empty),
	// leastconn, random, source, first, or for HTTP sessions uri (the
	// request path without its query) or header (the value of the request
	// field HashHeader), both hashed on a consistent-hash ring. A session
	// that has no request (TCP mode) is balanced round-robin by uri and
	// header.
	Balance string
	// HashHeader is the field name that the header algorithm hashes; it is
	// required by it and unused by the others.
	HashHeader string
	// Cookie turns on cookie persistence (HTTP sessions only); nil is off.
	Cookie *CookieOptions
	// Servers lists the servers in configured order (`first` fills them in
	// this order). At least one is needed.
	Servers []ServerOptions
	// Retries is how many times the session may try another server after a
	// failed connect; the backend only carries it.
	Retries int
	// QueueMax bounds the clients waiting for a slot; 0 is unlimited.
	QueueMax int
	// QueueTimeout is how long a client waits for a slot; 0 means it does
	// not wait and gets a queue timeout at once.
	QueueTimeout time.Duration
	// Health configures active checks; nil means none, and servers are up.
	Health *HealthOptions
	// Passive configures passive ejection; nil means off.
	Passive *PassiveOptions
	// Logger receives health transitions and ejections; nil is silent.
	Logger *slog.Logger
	// MaxIdle bounds the idle HTTP connections kept per server for reuse:
	// 0 means 1024, a negative value turns pooling off.
	MaxIdle int
	// IdleTimeout closes a pooled connection idle that long; 0 means 10 s.
	// Keep it below the servers' own keep-alive timeout.
	IdleTimeout time.Duration
}

// CookieOptions is cookie-based persistence, HAProxy's `cookie NAME
// insert`: a request whose cookie Name holds the name of a server that may
// be used goes to that server; other requests are balanced. Server names
// must be valid cookie values.
type CookieOptions struct {
	// Name is the cookie's name (a token).
	Name string
	// Insert adds "Set-Cookie: Name=<server>; Path=/; HttpOnly" to a
	// response whose request's cookie did not name the server that
	// answered (none, another, or one that could not be used). The
	// request's cookie is forwarded to the server unchanged either way
	// (HAProxy's plain insert, not insert indirect). When false the cookie
	// is only read: the servers set it.
	Insert bool
}

// Backend is a named group of servers behind one balancing algorithm, with
// a FIFO queue of clients waiting for a server slot and the health of its
// servers. It is safe for concurrent use: one mutex per backend (mu) guards
// the slots, the queue and the balancer's state, and is held only for the
// pick itself, so backends never contend with each other.
type Backend struct {
	name         string
	retries      int
	queueMax     int
	queueTimeout time.Duration
	health       *HealthOptions  // a copy, defaults applied
	passive      *PassiveOptions // a copy, defaults applied
	log          *slog.Logger
	servers      []*Server
	maxIdle      int
	idleTimeout  time.Duration
	hashOn       hashSource // what an HTTP session hashes for the balancer
	hashHeader   string     // the field hashed when hashOn is hashHeader
	cookie       string     // the persistence cookie's name; "" is off
	cookieInsert bool
	byName       map[string]*Server // for the persistence cookie

	started atomic.Bool
	checks  sync.WaitGroup // the health checkers started by Start

	mu     sync.Mutex
	bal    balancer   // its state is guarded by mu
	filter pickFilter // scratch for the pick under way; guarded by mu
	queue  waitQueue  // guarded by mu
}

// errMustWait tells Acquire (and the dispatcher) that usable servers exist
// but the one to use is full: the client waits in the queue.
var errMustWait = errors.New("wait for a slot")

// NewBackend builds the live backend for o. It fails on an unknown balance
// algorithm or health-check kind and when there are no servers.
func NewBackend(o BackendOptions) (*Backend, error) {
	if len(o.Servers) == 0 {
		return nil, fmt.Errorf("backend %q: no servers: add at least one server", o.Name)
	}
	balance := o.Balance
	if balance == "" {
		balance = "roundrobin"
	}
	newBalancer, ok := balancers[balance]
	if !ok {
		return nil, fmt.Errorf("backend %q: unknown balance %q: use roundrobin, leastconn, random, source, first, uri or header", o.Name, o.Balance)
	}
	b := &Backend{
		name:         o.Name,
		retries:      o.Retries,
		queueMax:     o.QueueMax,
		queueTimeout: o.QueueTimeout,
		log:          o.Logger,
		maxIdle:      o.MaxIdle,
		idleTimeout:  o.IdleTimeout,
	}
	switch balance {
	case "uri":
		b.hashOn = hashURI
	case "header":
		if !validToken(o.HashHeader) {
			return nil, fmt.Errorf("backend %q: balance header needs HashHeader, a field name; got %q", o.Name, o.HashHeader)
		}
		b.hashOn, b.hashHeader = hashHeader, o.HashHeader
	}
	if c := o.Cookie; c != nil {
		if !validToken(c.Name) {
			return nil, fmt.Errorf("backend %q: cookie name %q is not a token", o.Name, c.Name)
		}
		b.cookie, b.cookieInsert = c.Name, c.Insert
		b.byName = make(map[string]*Server, len(o.Servers))
	}
	if b.maxIdle == 0 {
		b.maxIdle = defaultMaxIdle
	}
	if b.idleTimeout <= 0 {
		b.idleTimeout = defaultIdleTimeout
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if o.Health != nil {
		h, err := o.Health.withDefaults()
		if err != nil {
			return nil, fmt.Errorf("backend %q: %w", o.Name, err)
		}
		b.health = &h
	}
	if o.Passive != nil {
		p := *o.Passive
		if p.Failures < 1 {
			p.Failures = 1
		}
		if p.Eject <= 0 {
			p.Eject = 30 * time.Second
		}
		b.passive = &p
	}
	b.servers = make([]*Server, len(o.Servers))
	for i, so := range o.Servers {
		if so.Name == "" {
			so.Name = so.Address
		}
		s := &Server{b: b, idx: i, opts: so}
		switch so.Proto {
		case ProtoH1:
		case ProtoH2:
			s.mux = h2.NewClient(h2.ClientOptions{IdleTimeout: b.idleTimeout})
		default:
			return nil, fmt.Errorf("backend %q: server %q: unknown protocol %d: use ProtoH1 or ProtoH2", o.Name, so.Name, so.Proto)
		}
		if so.QUIC != nil {
			s.h3 = h3.NewClient(h3.ClientOptions{Address: so.Address, TLS: so.QUIC})
		}
		s.healthy.Store(true)
		b.servers[i] = s
		if b.cookie != "" {
			if !validCookieValue(so.Name) {
				return nil, fmt.Errorf("backend %q: server name %q cannot be a cookie value: use letters, digits and !#$%%&'()*+-./:<=>?@[]^_`{|}~", o.Name, so.Name)
			}
			if b.byName[so.Name] != nil {
				return nil, fmt.Errorf("backend %q: two servers are named %q; cookie persistence needs unique names", o.Name, so.Name)
			}
			b.byName[so.Name] = s
			s.setCookie = []byte(b.cookie + "=" + so.Name + "; Path=/; HttpOnly")
		}
	}
	b.filter.usable = make([]bool, len(b.servers))
	b.bal = newBalancer(b.servers)
	return b, nil
}

// Name returns the backend's configured name.
func (b *Backend) Name() string { return b.name }

// Retries returns how many times a session may retry a failed connect on
// another server.
func (b *Backend) Retries() int { return b.retries }

// Servers returns the backend's servers in configured order. The slice is
// shared: do not modify it.
func (b *Backend) Servers() []*Server { return b.servers }

// Queued returns the number of clients waiting for a slot now.
func (b *Backend) Queued() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.queue.n
}

// Acquire chooses a server for a client and holds one of its slots; the
// caller gives it back with Server.Release. client is the client's IP (the
// `source` algorithm hashes it; uri and header, which have no request
// here, go round-robin). Servers in tried (those a retrying session
// already failed on) are avoided whenever another usable server exists.
//
// When every usable server is at MaxConn, Acquire waits in the backend's
// FIFO queue until a slot is handed to it, QueueTimeout passes or ctx is
// done. The duration returned is the time spent in the queue. Errors are
// *layers.StageError at the proxy's queue phase, wrapping ErrNoServer
// (nothing is up), ErrQueueFull, ErrTimeout (queue timeout) or ctx's error.
func (b *Backend) Acquire(ctx context.Context, client netip.Addr, tried []*Server) (*Server, time.Duration, error) {
	return b.acquire(ctx, pickReq{client: client}, tried)
}

// acquire is Acquire for a client with a request (pickReq: its hash and
// persistence cookie).
func (b *Backend) acquire(ctx context.Context, r pickReq, tried []*Server) (*Server, time.Duration, error) {
	b.mu.Lock()
	s, err := b.takeLocked(&r, tried)
	if err != errMustWait {
		b.mu.Unlock()
		if err != nil {
			return nil, 0, queueError(err)
		}
		return s, 0, nil
	}
	if b.queueTimeout <= 0 {
		b.mu.Unlock()
		return nil, 0, queueError(layers.ErrTimeout)
	}
	if b.queueMax > 0 && b.queue.n >= b.queueMax {
		b.mu.Unlock()
		return nil, 0, queueError(layers.ErrQueueFull)
	}
	w := &queueWaiter{req: r, tried: tried, ready: make(chan struct{}, 1)}
	b.queue.push(w)
	b.mu.Unlock()
	return b.wait(ctx, w)
}

// takeLocked runs the balancer for one client and takes a slot on the
// server it chose. It returns errMustWait when usable servers exist but the
// chosen one (or every one) is full, and ErrNoServer when none is usable.
//
// A server pinned by a persistence cookie is chosen, backup or not,
// whenever it is usable (up, not ejected, weight > 0) and the client has
// not already failed on it; when it is full the client waits for it, as a
// `source` client does. Otherwise the balancer decides. b.mu is held.
func (b *Backend) takeLocked(r *pickReq, tried []*Server) (*Server, error) {
	f := &b.filter
	if !f.prepare(b.servers, tried) {
		return nil, layers.ErrNoServer
	}
	var s *Server
	if p := r.pin; p != nil && f.usable[p.idx] && !slices.Contains(tried, p) {
		s = p
	} else {
		s = b.bal.pick(f, r)
	}
	f.tried = nil
	if s == nil || !s.hasSlot() {
		return nil, errMustWait
	}
	s.takeLocked()
	return s, nil
}

// wake re-runs the queue after a server came up, went down or was ejected.
func (b *Backend) wake() {
	b.mu.Lock()
	if b.queue.n > 0 {
		b.dispatchLocked()
	}
	b.mu.Unlock()
}

func queueError(err error) error {
	return &layers.StageError{Side: layers.SideProxy, Stage: "queue", Phase: layers.PhaseQueue, Err: err}
}

// hashSource is what an HTTP session hashes for the uri and header
// algorithms.
type hashSource uint8

const (
	hashNone   hashSource = iota
	hashURI               // the path, without the query
	hashHeader            // the value of the field Backend.hashHeader
)

// validCookieValue reports whether s is a non-empty run of RFC 6265
// cookie-octets (no quote, comma, semicolon, backslash, space or control).
func validCookieValue(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == ',' || c == ';' || c == '\\' {
			return false
		}
	}
	return true
}
