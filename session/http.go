package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/strata-proxy/strata/layers"
	"github.com/strata-proxy/strata/layers/h1"
	"github.com/strata-proxy/strata/layers/h2"
	"github.com/strata-proxy/strata/layers/hstream"
	"github.com/strata-proxy/strata/layers/msg"
)

// HTTPTimeouts are an HTTP frontend's timers, with HAProxy's meanings.
// Zero means none.
type HTTPTimeouts struct {
	// Handshake bounds the front stages together (PROXY header, TLS).
	Handshake time.Duration
	// HTTPRequest bounds the arrival of a whole request head, from its
	// first byte (from the accept for the first request): 408. It also
	// bounds the wait for a request body before forwarding.
	HTTPRequest time.Duration
	// KeepAlive bounds the wait for the next request on a kept-alive
	// connection; then the connection closes quietly. 0 means HTTPRequest.
	KeepAlive time.Duration
	// Client bounds the client's inactivity while a request body is read
	// or a response written.
	Client time.Duration
	// Server bounds the server's inactivity: waiting for the response head
	// (504 when it passes) and each read of the response body.
	Server time.Duration
	// Connect bounds each connect attempt.
	Connect time.Duration
	// Queue bounds the wait for a server slot, on top of the backend's
	// queue timeout: 503.
	Queue time.Duration
	// Tunnel bounds the inactivity of an upgraded connection (WebSocket);
	// 0 means the larger of Client and Server.
	Tunnel time.Duration
}

// HTTPFrontendOptions configures an HTTPFrontend: what the user wrote, with
// no live state.
type HTTPFrontendOptions struct {
	// Name identifies the frontend in logs.
	Name string
	// Stages are the front stages in order (PROXY decode, TLS decode);
	// the HTTP/1 mux stage comes after them.
	Stages []layers.Stage
	// L4 rules run in Admit; nil admits all.
	L4 *layers.L4Rules
	// Limit caps this frontend's live connections; nil is no cap.
	Limit *layers.ConnLimit
	// Buffers hands out the forwarding buffers (a default pool when nil);
	// a request head must fit one buffer.
	Buffers *layers.BufferPool
	// AccessLog receives one line per request; nil means none.
	AccessLog *slog.Logger
	// Logger is the operational log; nil is silent.
	Logger *slog.Logger
	// Limits bound request heads and bodies (431, 414, 413).
	Limits   h1.Limits
	Timeouts HTTPTimeouts

	// The analysers' configuration, in the order they run.
	//
	// ACMEChallenge, when set, answers ACME HTTP-01 validations before
	// anything else sees the request.
	ACMEChallenge ACMEChallenge
	Rules         []HTTPRule // allow/deny
	// Routes are one ordered list of backend and redirect routes; the
	// first match wins (it chooses the backend or answers the redirect),
	// else DefaultBackend, else 503.
	Routes          []HTTPRoute
	DefaultBackend  *Backend
	RequestHeaders  []HeaderRule
	Forwarded       ForwardedOptions
	RequestID       RequestIDOptions
	ResponseHeaders []HeaderRule
	// HTTP2 serves HTTP/2 to clients that negotiate "h2" by ALPN (list it
	// in the TLS stage's ALPN protocols); H2C also serves cleartext
	// HTTP/2 to clients that open with its preface (prior knowledge).
	HTTP2, H2C bool
	// H2 are the HTTP/2 limits.
	H2 h2.Options
	// AltSvc, when set, is added as an Alt-Svc field to responses on this
	// frontend's TCP connections (to announce HTTP/3 on its UDP listeners).
	AltSvc string
	// ErrorPages replaces the body of the error responses strata writes
	// itself, by status (served as text/html).
	ErrorPages map[int]string
}

// HTTPFrontend serves HTTP-mode connections: the front stages, then the
// HTTP/1 mux stage, which hands each request to a session of its own (one
// at a time per connection, in order). It implements layers.Handler, is
// safe for concurrent use, and a reload builds a new one and drains the
// old with Shutdown.
type HTTPFrontend struct {
	o           HTTPFrontendOptions
	buffers     *layers.BufferPool
	log         *slog.Logger
	rules       []rule
	routes      []httpRoute
	reqHeaders  []headerRule
	respHeaders []headerRule
	reqIDName   string
	reqIDNameB  []byte
	errorPages  map[int][]byte
	h2          *h2.Server // nil when HTTP/2 is off
	altSvc      []byte

	// live holds the client connections being served, for Live and
	// Shutdown; once it is draining, kept-alive connections take no new
	// request.
	live liveSet[*httpConn]
}

// NewHTTPFrontend builds the frontend for o. It fails on an invalid header
// rule.
func NewHTTPFrontend(o HTTPFrontendOptions) (*HTTPFrontend, error) {
	f := &HTTPFrontend{
		o:         o,
		buffers:   o.Buffers,
		log:       o.Logger,
		rules:     newRules(o.Rules),
		reqIDName: requestIDName(o.RequestID),
	}
	f.reqIDNameB = []byte(f.reqIDName)
	var err error
	if f.routes, err = newHTTPRoutes(o.Routes); err != nil {
		return nil, fmt.Errorf("frontend %q: %w", o.Name, err)
	}
	if f.reqHeaders, err = newHeaderRules(o.RequestHeaders); err != nil {
		return nil, fmt.Errorf("frontend %q: request %w", o.Name, err)
	}
	if f.respHeaders, err = newHeaderRules(o.ResponseHeaders); err != nil {
		return nil, fmt.Errorf("frontend %q: response %w", o.Name, err)
	}
	if o.RequestID.Enabled && !validToken(f.reqIDName) {
		return nil, fmt.Errorf("frontend %q: request id header %q is not a valid field name", o.Name, f.reqIDName)
	}
	f.errorPages = make(map[int][]byte, len(o.ErrorPages))
	for code, body := range o.ErrorPages {
		if code < 200 || code > 599 {
			return nil, fmt.Errorf("frontend %q: error page for status %d: use a status from 200 to 599", o.Name, code)
		}
		f.errorPages[code] = []byte(body)
	}
	if f.buffers == nil {
		f.buffers = layers.NewBufferPool(0)
	}
	if o.HTTP2 || o.H2C {
		h2o := o.H2
		if h2o.IdleTimeout == 0 {
			h2o.IdleTimeout = o.Timeouts.KeepAlive
		}
		if h2o.MaxHeaderBytes == 0 {
			h2o.MaxHeaderBytes = o.Limits.WithDefaults().MaxHeadBytes
		}
		if h2o.Logger == nil {
			h2o.Logger = o.Logger
		}
		lim := o.Limits.WithDefaults()
		h2o.Stream = hstream.Options{
			Buffers:      f.buffers,
			MaxHeadBytes: lim.MaxHeadBytes,
			MaxFields:    lim.MaxFields,
			MaxURI:       lim.MaxURI,
			MaxBody:      lim.MaxBody,
			Client:       o.Timeouts.Client,
		}
		if os.Getenv("STRATA_H2_IMPL") == "xnet" {
			h2o.XNet = true // x/net's server, kept for comparison
		}
		f.h2 = h2.NewServer(h2o)
	}
	if o.AltSvc != "" {
		f.altSvc = []byte(o.AltSvc)
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	return f, nil
}

// Admit runs the L4 rules on in.
func (f *HTTPFrontend) Admit(in *layers.Initiator) error { return f.o.L4.Check(in) }

// Limit is the frontend's connection cap (nil: none).
func (f *HTTPFrontend) Limit() *layers.ConnLimit { return f.o.Limit }

// Live is the number of client connections served now.
func (f *HTTPFrontend) Live() int { return f.live.len() }

// Shutdown stops taking new requests on kept-alive connections (idle ones
// close at once, busy ones after their current response) and waits for the
// connections to end. When ctx is done first it closes the remaining ones
// ("proxy close: drain timeout"), waits for them and returns ctx's error.
// Stop the listeners first.
func (f *HTTPFrontend) Shutdown(ctx context.Context) error {
	if f.h2 != nil {
		f.h2.Shutdown()
	}
	return f.live.shutdown(ctx, errDrained, (*httpConn).wakeIdle, func(n int) {
		f.log.Warn("drain deadline reached; closing the HTTP connections still open",
			slog.String("frontend", f.o.Name), slog.Int("connections", n))
	})
}

func (f *HTTPFrontend) isDraining() bool { return f.live.isDraining() }

// Serve runs the client connection in: the front stages, then one session
// per request until the connection ends. It closes every server connection
// it opened that is not pooled; in.Conn is the caller's.
func (f *HTTPFrontend) Serve(in *layers.Initiator) {
	c := &httpConn{f: f, in: in}
	defer f.live.remove(c)
	if !f.live.add(c) {
		return
	}
	c.serve()
}

// httpConn is one client connection in HTTP mode. The goroutine running
// Serve owns it; the fields under mu are shared with Shutdown.
type httpConn struct {
	f   *HTTPFrontend
	in  *layers.Initiator
	mux httpMux
	// smux is the mux of a stream's connection (ServeStream: mux points
	// to it).
	smux streamMux
	// s is reused for each request (the sessions of a connection follow
	// each other); an idle connection gives it up (see serve).
	s *httpSession
	// turn is held by the worker goroutine while it runs (see serve);
	// panicked is a worker's panic.
	turn     sync.Mutex
	panicked *workerPanic

	mu      sync.Mutex
	cli     net.Conn // outermost client connection
	srv     net.Conn // the server connection in use, if any
	idle    bool     // waiting for a request with none started
	linger  bool     // an error response closes the connection (owner only)
	stream  bool     // serves one stream of a multiplexed connection (ServeStream)
	parked  bool     // the session found the connection idle (h1.ErrIdle): the worker hands it over (owner only)
	aborted bool
	cause   error
}

// Two goroutines take turns serving a connection. The one Serve runs on
// (the connection's) only waits: for the other, the worker, which runs the
// front stages and the requests; and, while the connection is idle
// between requests, for the client. A TLS handshake grows a goroutine's
// stack to 16–32 KiB and a request to about 8 KiB, and a parked goroutine
// keeps its stack until a GC shrinks it, by half at most each time: that
// stack was most of an idle keep-alive connection's memory. So a worker
// that waited idleGrace for a next request in vain ends (its stack goes
// back to the runtime) and the connection's goroutine, whose stack stays
// small, waits on (h1.ServerConn.WaitIdle), then starts a new worker.
// A busy connection keeps its worker: no cost per request.
//
// The worker owns the connection's state while it runs; the hand-overs
// are the go statement and the turn mutex.

// idleGrace is how long a worker waits for a next request before it hands
// the idle connection over.
const idleGrace = 50 * time.Millisecond

// idleWaiter is a front mux stage that can hand an idle connection over:
// its Next returns h1.ErrIdle after the grace, and WaitIdle goes on with
// the wait.
type idleWaiter interface{ WaitIdle() }

func (c *httpConn) serve() {
	// The worker unlocks turn when it ends or parks the connection: the
	// hand-over back (a Mutex may be unlocked by another goroutine than
	// the one that locked it).
	c.turn.Lock()
	go c.work(true)
	for {
		c.turn.Lock()
		if !c.parked {
			break
		}
		c.parked = false
		w, ok := c.mux.(idleWaiter)
		if !ok || !c.setIdle(true) {
			c.end() // draining
			break
		}
		c.s = nil // the next request gets a new one
		w.WaitIdle()
		go c.work(false)
	}
	c.turn.Unlock()
	if p := c.panicked; p != nil {
		panic(p) // for the listener's recover, which logs it
	}
}

// work runs the front stages (first) and then requests until the
// connection ends, or idles (then c.parked is set).
func (c *httpConn) work(first bool) {
	if c.s == nil {
		c.s = &httpSession{c: c}
	}
	defer func() {
		if p := recover(); p != nil {
			c.panicked = &workerPanic{value: p, stack: debug.Stack()}
			c.parked = false
		}
		c.turn.Unlock()
	}()
	if first {
		conn, err := c.runStages()
		if errors.Is(err, layers.ErrAnswered) {
			return // a stage answered it (ACME TLS-ALPN-01): no session
		}
		if err != nil {
			c.s.reset()
			c.s.term = err
			c.s.log()
			return
		}
		if !c.pickMux(conn) {
			return // HTTP/2, served to its end
		}
	}
	for {
		c.s.reset()
		if !c.s.serve() {
			break
		}
	}
	if !c.parked {
		c.end()
	}
}

// end gives back the mux stage's buffers and closes lingering when an
// error response asked for it.
func (c *httpConn) end() {
	c.mux.Close()
	if c.linger && c.abortCause() == nil {
		c.mu.Lock()
		conn := c.cli
		c.mu.Unlock()
		lingerClose(conn)
	}
}

// workerPanic is a panic of a worker goroutine, raised again on the
// connection's goroutine with the worker's stack.
type workerPanic struct {
	value any
	stack []byte
}

func (p *workerPanic) String() string {
	return fmt.Sprintf("%v\n\nworker goroutine:\n%s", p.value, p.stack)
}

// Lingering close: after an error response that closes the connection,
// the client may still be sending (the rest of a refused body, pipelined
// requests). Closing with unread input makes the kernel send a reset, which
// can destroy the response before the client reads it; so the sending side
// is shut first and the input drained for a moment, as nginx and net/http
// do.
const (
	lingerTime  = 500 * time.Millisecond
	lingerBytes = 256 << 10
)

func lingerClose(conn net.Conn) {
	cw, ok := conn.(closeWriter)
	if !ok || cw.CloseWrite() != nil {
		return
	}
	conn.SetReadDeadline(time.Now().Add(lingerTime))
	var buf [1024]byte
	for n := 0; n < lingerBytes; {
		k, err := conn.Read(buf[:])
		n += k
		if err != nil {
			return
		}
	}
}

// runStages stacks the front stages, bounded together by the handshake
// timeout.
func (c *httpConn) runStages() (net.Conn, error) {
	conn := c.in.Conn
	c.setCli(conn)
	if len(c.f.o.Stages) == 0 {
		return conn, nil
	}
	ctx := context.Background()
	if d := c.f.o.Timeouts.Handshake; d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	for _, st := range c.f.o.Stages {
		next, err := st.Accept(ctx, c.in, conn)
		if err != nil {
			return nil, layers.Wrap(layers.SideClient, st.Name(), layers.PhaseHandshake, timeoutIf(ctx, err))
		}
		conn = next
		c.setCli(conn)
	}
	conn.SetDeadline(time.Time{})
	c.setCli(conn)
	return conn, nil
}

func (c *httpConn) setCli(conn net.Conn) {
	c.mu.Lock()
	c.cli = conn
	aborted := c.aborted
	c.mu.Unlock()
	if aborted {
		conn.SetDeadline(aLongTimeAgo)
	}
}

func (c *httpConn) setSrv(conn net.Conn) {
	c.mu.Lock()
	c.srv = conn
	aborted := c.aborted
	c.mu.Unlock()
	if aborted && conn != nil {
		conn.SetDeadline(aLongTimeAgo)
	}
}

// setIdle records whether the connection waits between requests; a
// draining frontend closes it then.
func (c *httpConn) setIdle(idle bool) bool {
	if c.stream {
		return true // the connection's mux stage handles the drain (GOAWAY)
	}
	c.mu.Lock()
	c.idle = idle
	c.mu.Unlock()
	if idle && c.f.isDraining() {
		return false
	}
	return true
}

// wakeIdle ends an idle wait (Shutdown). f.mu is held.
func (c *httpConn) wakeIdle() {
	c.mu.Lock()
	if c.idle && c.cli != nil {
		c.cli.SetReadDeadline(aLongTimeAgo)
	}
	c.mu.Unlock()
}

// abort ends everything now (Shutdown's deadline).
func (c *httpConn) abort(why error) {
	c.mu.Lock()
	c.aborted = true
	if c.cause == nil {
		c.cause = why
	}
	cli, srv := c.cli, c.srv
	c.mu.Unlock()
	c.in.Conn.SetDeadline(aLongTimeAgo)
	if cli != nil {
		cli.SetDeadline(aLongTimeAgo)
	}
	if srv != nil {
		srv.SetDeadline(aLongTimeAgo)
	}
}

func (c *httpConn) abortCause() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cause
}

// httpSession is the session of one request (DESIGN.md §1): it runs the
// analysers on the request head, forwards the request to a server of the
// chosen backend, and the response back, and logs one record. The
// connection's goroutine owns it; it is reset and reused for the next
// request of the connection.
type httpSession struct {
	c   *httpConn
	st  HTTPStream
	req *msg.Head // the request head (the stream's)

	backend *Backend
	pick    pickReq // the balancing facts of the request (http_balance.go)
	// cookieSrv is the server the request's persistence cookie named, if
	// any; a response from another server sets the cookie again.
	cookieSrv *Server
	server    *Server  // holds a slot while set
	up        upstream // the server connection in use
	reused    bool     // up came from the server's idle pool
	tried     []*Server
	resp      *msg.Head // the final response head (the upstream's) or &local
	local     msg.Head  // a response the session writes itself
	body      []byte    // its body
	status    int
	waiting   bool // the body wait started (100 sent)
	tunneled  bool
	upl       *uploader // the request body's copier (http_upload.go), kept for the next request

	arena []byte // values set by analysers, valid for this request
	reqID []byte
	// Copies of request facts for the log, taken before the body is read.
	method, host, path []byte

	rec       Record
	term      error
	headStart time.Time
}

// reset is kept out of line: it builds a whole session value, whose
// temporary would otherwise sit in the frame of the connection's loop, and
// so on the stack of every idle connection.
//
//go:noinline
func (s *httpSession) reset() {
	c := s.c
	arena, tried, local, logb, upl := s.arena[:0], s.tried[:0], s.local, s.method[:0], s.upl
	local.Reset()
	*s = httpSession{c: c, arena: arena, tried: tried, local: local, method: logb, upl: upl}
}

func (s *httpSession) started() bool { return s.st != nil || !s.headStart.IsZero() }

// scheme is the scheme the client used.
func (s *httpSession) scheme() []byte {
	if s.c.in.Handshake != nil {
		return schemeHTTPS
	}
	return schemeHTTP
}

// serve runs one request and reports whether the connection carries on.
func (s *httpSession) serve() bool {
	res := s.runRequest()
	if res.action == resAbort && res.status == 0 && res.err == nil {
		return false // the connection ended between requests
	}
	if res.action == resIdle {
		s.c.parked = true // handed over idle (see httpConn.serve)
		return false
	}
	if !s.started() {
		if st, _ := s.c.mux.HeadTimes(); !st.IsZero() {
			s.headStart = st
		}
	}
	switch res.action {
	case resAnswered:
		s.writeLocal()
	case resAbort:
		s.term = res.err
		if res.status != 0 {
			s.localError(res.status)
			s.writeLocal()
		}
	case resContinue:
		s.forwardResponse()
	}
	s.releaseServer()
	s.log()
	if s.st == nil {
		return false
	}
	if s.tunneled {
		s.c.mux.Finish()
		return false
	}
	return s.c.mux.Finish() && !s.c.f.isDraining()
}

// runRequest runs the request analysers in order.
func (s *httpSession) runRequest() result {
	if !s.c.setIdle(true) {
		return quietly
	}
	for i := 0; i < len(requestAnalysers); {
		a := &requestAnalysers[i]
		res := a.run(s)
		switch res.action {
		case resContinue:
			if i == 0 {
				s.c.setIdle(false)
				s.startRequest()
			}
			i++
		case resWait:
			if i == 0 {
				s.c.setIdle(false)
			}
		default:
			if i == 0 {
				s.c.setIdle(false)
			}
			if err := s.c.abortCause(); err != nil {
				res.err, res.status = err, 0
			}
			return res
		}
	}
	return cont
}

// startRequest notes what the log needs of a whole request head.
func (s *httpSession) startRequest() {
	s.headStart, _ = s.c.mux.HeadTimes()
	_, done := s.c.mux.HeadTimes()
	s.rec.RequestHead = done.Sub(s.headStart)
}

// copyLogFacts copies the request facts the log needs before the body is
// read (which may overwrite the head's bytes).
func (s *httpSession) copyLogFacts() {
	if s.req == nil || len(s.method) > 0 || s.c.f.o.AccessLog == nil {
		return
	}
	b := s.method[:0]
	b = append(b, s.req.Method...)
	b = append(b, hostOf(s.req.Authority)...)
	b = append(b, s.req.Path...)
	b = append(b, s.reqID...)
	m := len(s.req.Method)
	h := m + len(hostOf(s.req.Authority))
	p := h + len(s.req.Path)
	s.method, s.host, s.path = b[:m], b[m:h], b[h:p]
	s.reqID = b[p:]
}

// releaseServer gives back the server slot.
func (s *httpSession) releaseServer() {
	if s.up != nil {
		s.dropUpstream()
	}
	if s.server != nil {
		s.server.Release()
		s.server = nil
	}
}

// dropUpstream closes the server connection in use.
func (s *httpSession) dropUpstream() {
	s.endUpload()
	s.c.setSrv(nil)
	s.up.Close()
	s.up = nil
}

// finishUpstream pools the server connection when it can carry another
// request, else closes it.
func (s *httpSession) finishUpstream() {
	if s.up == nil {
		return
	}
	complete, err, _ := s.endUpload()
	if err != nil && s.term == nil {
		s.term = err
	}
	s.c.setSrv(nil)
	if complete && s.up.Reusable() && s.server != nil && !s.c.f.isDraining() {
		s.up.Conn().SetDeadline(time.Time{})
		s.server.putIdle(s.up)
	} else {
		s.up.Close()
	}
	s.up = nil
}

// log writes the request's access-log record.
func (s *httpSession) log() {
	l := s.c.f.o.AccessLog
	if l == nil {
		return
	}
	r := &s.rec
	level := slog.LevelInfo
	var t Termination // none: the exchange completed
	if s.term != nil {
		t = TerminationOf(s.term)
	}
	if t.IsError() {
		level = slog.LevelWarn
	}
	if !l.Handler().Enabled(context.Background(), level) {
		return
	}
	s.copyLogFacts()
	in := s.c.in
	r.Time = s.headStart
	if r.Time.IsZero() {
		r.Time = in.Accepted
	}
	r.Client, r.Listener = in.Source, in.Local
	r.Frontend, r.SNI = s.c.f.o.Name, in.SNI
	if s.backend != nil {
		r.Backend = s.backend.Name()
	}
	// Views of the session's copies, valid while Log runs (see Record).
	r.Method, r.Host, r.Path, r.RequestID = viewString(s.method), viewString(s.host), viewString(s.path), viewString(s.reqID)
	r.Status = s.status
	r.Total = time.Since(r.Time)
	r.Termination = t
	r.Log(context.Background(), l)
}

// isTimeout reports whether err is a deadline passing.
func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, layers.ErrTimeout) {
		return true
	}
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}
