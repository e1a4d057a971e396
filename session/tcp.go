package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/strata-proxy/strata/layers"
)

// Timeouts are a TCP frontend's timers, with HAProxy's meanings. Zero
// means none.
type Timeouts struct {
	// Handshake bounds the front stages together (PROXY header,
	// ClientHello peek, TLS handshake).
	Handshake time.Duration
	// Client is the longest the client side may stay inactive (no data
	// received from it and none sent to it) once data flows; Server the
	// same for the server side.
	Client, Server time.Duration
	// Tunnel, when set, replaces Client and Server once the server
	// connection is established.
	Tunnel time.Duration
	// Connect bounds each connect attempt (socket and outbound stages).
	Connect time.Duration
	// Queue bounds the wait for a server slot, on top of the backend's own
	// queue timeout.
	Queue time.Duration
}

// TCPFrontendOptions configures a TCPFrontend: what the user wrote, with
// no live state.
type TCPFrontendOptions struct {
	// Name identifies the frontend in logs.
	Name string
	// Stages are the front stages in order (PROXY decode, ClientHello peek
	// or TLS decode); empty means plain TCP.
	Stages []layers.Stage
	// Router chooses each session's Backend.
	Router   *Router
	Timeouts Timeouts
	// L4 rules run in Admit; nil admits all.
	L4 *layers.L4Rules
	// Limit caps this frontend's live connections; nil is no cap.
	Limit *layers.ConnLimit
	// Buffers hands out the forwarding buffers (a default pool when nil).
	Buffers *layers.BufferPool
	// AccessLog receives one line per session; nil means none.
	AccessLog *slog.Logger
	// Logger is the operational log; nil is silent.
	Logger *slog.Logger
}

// TCPFrontend serves TCP-mode connections: one session per connection,
// forwarding bytes between the client and a server of the routed backend.
// It implements layers.Handler. It is safe for concurrent use; a reload
// builds a new one and drains the old with Shutdown.
type TCPFrontend struct {
	name      string
	stages    []layers.Stage
	router    *Router
	timeouts  Timeouts
	l4        *layers.L4Rules
	limit     *layers.ConnLimit
	buffers   *layers.BufferPool
	accessLog *slog.Logger
	log       *slog.Logger

	// live holds the running sessions, for Live and Shutdown.
	live liveSet[*tcpSession]
}

// NewTCPFrontend builds the frontend for o.
func NewTCPFrontend(o TCPFrontendOptions) *TCPFrontend {
	f := &TCPFrontend{
		name:      o.Name,
		stages:    o.Stages,
		router:    o.Router,
		timeouts:  o.Timeouts,
		l4:        o.L4,
		limit:     o.Limit,
		buffers:   o.Buffers,
		accessLog: o.AccessLog,
		log:       o.Logger,
	}
	if f.buffers == nil {
		f.buffers = layers.NewBufferPool(0)
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	return f
}

// Admit runs the L4 rules on in.
func (f *TCPFrontend) Admit(in *layers.Initiator) error { return f.l4.Check(in) }

// Limit is the frontend's connection cap (nil: none).
func (f *TCPFrontend) Limit() *layers.ConnLimit { return f.limit }

// Live is the number of sessions running now.
func (f *TCPFrontend) Live() int { return f.live.len() }

// Shutdown waits for the frontend's live sessions to end. When ctx is done
// first, it closes the remaining ones (termination "proxy close: drain
// timeout"), waits for them to return and reports ctx's error; sessions
// that start after that are closed at once. Stop the listeners first.
func (f *TCPFrontend) Shutdown(ctx context.Context) error {
	return f.live.shutdown(ctx, errDrained, nil, func(n int) {
		f.log.Warn("drain deadline reached; closing the sessions still open",
			slog.String("frontend", f.name), slog.Int("sessions", n))
	})
}

// Terminations the session raises itself.
var (
	errNoRoute = &layers.StageError{Side: layers.SideProxy, Phase: layers.PhaseRoute, Err: layers.ErrNoRoute}
	errDrained = &layers.StageError{Side: layers.SideProxy, Phase: layers.PhaseClose, Err: layers.ErrDrained}
)

// Serve runs the session for in: front stages, route, connect (with
// queueing and retries), then forwarding until both directions are done,
// and one access-log line. It closes every connection it opened; in.Conn
// is the caller's.
func (f *TCPFrontend) Serve(in *layers.Initiator) {
	s := newTCPSession(f, in)
	defer f.live.remove(s)
	if !f.live.add(s) {
		s.finish(errDrained)
		return
	}
	err := s.serve()
	if errors.Is(err, layers.ErrAnswered) {
		// A stage answered the connection (ACME TLS-ALPN-01): there was
		// no session to log.
		s.cancel()
		return
	}
	s.finish(err)
}

// tcpSession is one TCP-mode session. The goroutine running Serve owns it;
// the fields below mu are shared with the second forwarding goroutine, the
// idle watchdog, Shutdown and the stages' events.
type tcpSession struct {
	f      *TCPFrontend
	in     *layers.Initiator
	ctx    context.Context // done when the session is aborted or over
	cancel context.CancelFunc
	base   time.Time // monotonic origin of the activity stamps
	rec    Record    // written by the owner; BytesIn by the upstream goroutine until it ends
	server *Server   // holds a slot once connected

	// Set by forward before the goroutines start, read-only afterwards.
	cliRaw, srvRaw *net.TCPConn // the sockets under cli, srv when spliced
	spliced        bool
	dataStart      int64 // ns since base when forwarding began

	// stamp is, per side (client, server), when the side last carried data
	// (ns since base); the user-space copy writes it, the watchdog reads it.
	stamp [2]atomic.Int64

	mu       sync.Mutex
	cli, srv net.Conn // the outermost connections; written by the owner under mu
	err      *Termination
	closed   *Termination // first normal close
	aborted  bool
	done     bool // no termination is recorded after this
	watchdog *time.Timer
}

func newTCPSession(f *TCPFrontend, in *layers.Initiator) *tcpSession {
	s := &tcpSession{f: f, in: in, base: time.Now()}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// serve is the session as a straight sequence of steps; its error is the
// termination when nothing was recorded before.
func (s *tcpSession) serve() error {
	if err := s.runStages(); err != nil {
		return err
	}
	b := s.f.router.Pick(s.in)
	if b == nil {
		return errNoRoute
	}
	s.rec.Backend = b.Name()
	if err := s.connect(b); err != nil {
		return err
	}
	defer s.server.Release()
	s.forward()
	return nil
}

// runStages stacks the front stages on the client connection, bounded
// together by the handshake timeout.
func (s *tcpSession) runStages() error {
	conn := s.in.Conn
	s.setConn(layers.SideClient, conn)
	if len(s.f.stages) == 0 {
		return nil
	}
	ctx := s.ctx
	if d := s.f.timeouts.Handshake; d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	for _, st := range s.f.stages {
		next, err := st.Accept(ctx, s.in, conn)
		if err != nil {
			return layers.Wrap(layers.SideClient, st.Name(), layers.PhaseHandshake, timeoutIf(ctx, err))
		}
		conn = next
		s.setConn(layers.SideClient, conn)
	}
	// A stage may have left its deadline on the socket.
	conn.SetDeadline(time.Time{})
	s.setConn(layers.SideClient, conn) // re-applies an abort that raced the line above
	return nil
}

// connect takes a server slot and connects, trying up to 1+Retries times,
// on another server when the backend has one. The last error wins.
func (s *tcpSession) connect(b *Backend) error {
	var tried []*Server
	var last error
	for attempt := 0; attempt <= b.Retries(); attempt++ {
		srv, wait, err := s.acquire(b, tried)
		s.rec.Queue += wait
		if err != nil {
			if last != nil && errors.Is(err, layers.ErrNoServer) {
				return last // the connect failure says more than "no server left"
			}
			return err
		}
		s.rec.Server, s.rec.Retries = srv.Name(), attempt
		start := time.Now()
		conn, err := s.dial(srv)
		s.rec.Connect = time.Since(start)
		if s.ctx.Err() == nil {
			srv.Observe(err) // an abort of ours is not the server's failure
		}
		if err == nil {
			s.server = srv
			s.setConn(layers.SideServer, conn)
			return nil
		}
		srv.Release()
		last = err
		tried = append(tried, srv)
	}
	return last
}

func (s *tcpSession) acquire(b *Backend, tried []*Server) (*Server, time.Duration, error) {
	ctx := s.ctx
	if d := s.f.timeouts.Queue; d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	return b.Acquire(ctx, s.in.Source.Addr(), tried)
}

func (s *tcpSession) dial(srv *Server) (net.Conn, error) {
	ctx := s.ctx
	if d := s.f.timeouts.Connect; d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	conn, err := srv.Connector().Connect(ctx, s.in)
	if err != nil {
		return nil, layers.Wrap(layers.SideServer, "tcp", layers.PhaseConnect, timeoutIf(ctx, err))
	}
	return conn, nil
}

// timeoutIf marks err, raised by a step bounded by ctx, as a timeout when
// ctx is done and the step did not say where it failed itself.
func timeoutIf(ctx context.Context, err error) error {
	var se *layers.StageError
	if ctx.Err() == nil || errors.Is(err, layers.ErrTimeout) || errors.As(err, &se) {
		return err
	}
	return fmt.Errorf("%w: %w", layers.ErrTimeout, err)
}

// setConn records the current outermost connection of a side, so that an
// abort reaches it, and applies an abort that came first.
func (s *tcpSession) setConn(side layers.Side, c net.Conn) {
	s.mu.Lock()
	if side == layers.SideClient {
		s.cli = c
	} else {
		s.srv = c
	}
	aborted := s.aborted
	s.mu.Unlock()
	if aborted {
		c.SetDeadline(aLongTimeAgo)
	}
}

// aLongTimeAgo is a deadline in the past: setting it wakes every blocked
// Read and Write of a connection (and a splice) with a timeout error.
var aLongTimeAgo = time.Unix(1, 0)

// fail records err as the termination unless one was recorded already (the
// first terminal event wins) or the session aborted (later errors are its
// echoes). A nil err records nothing.
func (s *tcpSession) fail(err error) {
	if err == nil {
		return
	}
	t := TerminationOf(err)
	s.mu.Lock()
	if s.err == nil && !s.aborted && !s.done {
		s.err = &t
	}
	s.mu.Unlock()
}

// closedFirst records that side finished sending, if no side did before.
func (s *tcpSession) closedFirst(side layers.Side) {
	s.mu.Lock()
	if s.closed == nil {
		t := closedBy(side)
		s.closed = &t
	}
	s.mu.Unlock()
}

// abort records why (see fail; nil: nothing) and ends everything now: blocked reads,
// writes and splices return at once, and so do the queue wait and connect.
func (s *tcpSession) abort(why error) {
	s.fail(why)
	s.mu.Lock()
	s.aborted = true
	cli, srv := s.cli, s.srv
	s.mu.Unlock()
	s.cancel()
	s.in.Conn.SetDeadline(aLongTimeAgo)
	if cli != nil {
		cli.SetDeadline(aLongTimeAgo)
	}
	if srv != nil {
		srv.SetDeadline(aLongTimeAgo)
	}
}

// finish closes what the session opened, settles the termination and logs
// the record.
func (s *tcpSession) finish(err error) {
	if err != nil {
		s.fail(err)
	}
	s.mu.Lock()
	s.done = true
	if s.watchdog != nil {
		s.watchdog.Stop()
	}
	aborted, cli, srv := s.aborted, s.cli, s.srv
	term := Termination{Side: layers.SideProxy, Phase: layers.PhaseClose}
	switch {
	case s.err != nil:
		term = *s.err
	case s.closed != nil:
		term = *s.closed
	}
	s.mu.Unlock()
	s.cancel()
	closeConn(srv, aborted)
	if cli != s.in.Conn {
		closeConn(cli, aborted)
	}

	r := &s.rec
	r.Time = s.in.Accepted
	r.Client, r.Listener = s.in.Source, s.in.Local
	r.Frontend, r.SNI = s.f.name, s.in.SNI
	r.Total = time.Since(s.in.Accepted)
	r.Termination = term
	r.Log(context.Background(), s.f.accessLog)
}

// closeConn closes c. After an abort it closes the innermost socket first,
// so that a TLS connection does not wait up to five seconds trying to send
// its close_notify to a peer that is not reading.
func closeConn(c net.Conn, hard bool) {
	if c == nil {
		return
	}
	if hard {
		inner := c
		for {
			nc, ok := inner.(interface{ NetConn() net.Conn })
			if !ok {
				break
			}
			inner = nc.NetConn()
		}
		if inner != c {
			inner.Close()
		}
	}
	c.Close()
}

// Forwarding.
//
// Splice path: when both connections are plain TCP sockets — directly, or
// under transparent wrappers (rawTCP) — each direction is one io.Copy from
// the client connection to the server socket and back, which Go turns into
// splice(2): the bytes never enter user space and the session holds no
// buffer at all. The idle watchdog asks the kernel (TCP_INFO) when each
// socket last carried data.
//
// Buffer path: otherwise (TLS on either side) each direction waits for data
// in a small read buffer of its own (probeSize) and writes it on. Only a
// read that fills that buffer — a burst in flight — takes a pooled
// forwarding buffer, which the direction keeps while reads keep filling it
// and gives back as soon as a read comes back short, that is as soon as the
// source is drained and the next read would wait. So an idle session holds
// no pooled buffer, small exchanges never touch the pool, and bulk transfers
// move in full-size reads; a pooled buffer waits in a Read only in the
// rare case where a burst ended exactly on a buffer boundary, until the
// next data or timeout. Each read and write stamps its side's activity
// time for the idle watchdog.
//
// Half-close: a direction that reads EOF shuts the write side of the other
// connection (closeWriter) and ends; the other direction carries on until
// its own EOF. A read or write error ends both (abort).

// probeSize is the per-direction read buffer of the buffer path: large
// enough for the typical small message, small beside a pooled buffer.
const probeSize = 1024

// closeWriter is a connection that can shut its sending side alone:
// *net.TCPConn, *tls.Conn and the transparent stage wrappers.
type closeWriter interface {
	CloseWrite() error
}

// transparentConn is a stage wrapper that does not transform the bytes:
// WriteTo hands what it buffered and then the inner connection's stream to
// a writer unchanged (the PROXY decode and ClientHello peek wrappers). A
// *tls.Conn has NetConn but no WriteTo, so it is never unwrapped.
type transparentConn interface {
	NetConn() net.Conn
	io.WriterTo
}

// rawTCP returns the TCP socket under c when c is one or sits only under
// transparent wrappers, else nil.
func rawTCP(c net.Conn) *net.TCPConn {
	for {
		switch t := c.(type) {
		case *net.TCPConn:
			return t
		case transparentConn:
			c = t.NetConn()
		default:
			return nil
		}
	}
}

func sideIndex(side layers.Side) int {
	if side == layers.SideServer {
		return 1
	}
	return 0
}

func (s *tcpSession) now() int64 { return int64(time.Since(s.base)) }

func (s *tcpSession) touch(side layers.Side) { s.stamp[sideIndex(side)].Store(s.now()) }

// forward copies both ways until both directions are done.
func (s *tcpSession) forward() {
	s.cliRaw, s.srvRaw = rawTCP(s.cli), rawTCP(s.srv)
	s.spliced = spliceSupported && s.cliRaw != nil && s.srvRaw != nil
	s.dataStart = s.now()
	s.stamp[0].Store(s.dataStart)
	s.stamp[1].Store(s.dataStart)
	s.startWatchdog()

	up := make(chan struct{})
	go func() {
		defer close(up)
		s.rec.BytesIn = s.pipe(layers.SideClient)
	}()
	s.rec.BytesOut = s.pipe(layers.SideServer)
	<-up
}

// pipe copies from side's connection to the other one and returns the
// bytes copied.
func (s *tcpSession) pipe(from layers.Side) int64 {
	to, src, dst := layers.SideServer, s.cli, s.srv
	srcRaw, dstRaw := s.cliRaw, s.srvRaw
	if from == layers.SideServer {
		to, src, dst = layers.SideClient, s.srv, s.cli
		srcRaw, dstRaw = s.srvRaw, s.cliRaw
	}
	var n int64
	var err error
	var errSide layers.Side
	if s.spliced {
		// src itself (a wrapper's WriteTo replays its buffered bytes
		// first), into the socket under dst.
		n, err = io.Copy(dstRaw, src)
		errSide = from
		if err != nil && (errors.Is(err, syscall.EPIPE) || (!tcpReset(srcRaw) && tcpReset(dstRaw))) {
			errSide = to
		}
		dst = dstRaw
	} else {
		n, errSide, err = s.copyBuffered(src, dst, from, to)
	}

	if err == nil || errors.Is(err, io.EOF) {
		s.closedFirst(from)
		if cw, ok := dst.(closeWriter); ok {
			if cw.CloseWrite() == nil {
				return n
			}
		}
		// The end of stream cannot be passed on alone: end everything.
		s.abort(nil)
		return n
	}
	phase := layers.PhaseData
	if errors.Is(err, os.ErrDeadlineExceeded) {
		phase = layers.PhaseIdle // a deadline someone else set; ours come after a recorded termination
	}
	s.abort(layers.Wrap(errSide, "", phase, err))
	return n
}

// copyBuffered is the buffer path of one direction (see Forwarding). It
// returns the bytes written, the side the ending error came from and that
// error (io.EOF for a normal end).
func (s *tcpSession) copyBuffered(src, dst net.Conn, from, to layers.Side) (int64, layers.Side, error) {
	var probe [probeSize]byte
	pool := s.f.buffers
	var pooled *[]byte
	defer func() { pool.Put(pooled) }()
	var written int64
	for {
		buf := probe[:]
		if pooled != nil {
			buf = *pooled
		}
		n, rerr := src.Read(buf)
		if n > 0 {
			s.touch(from)
			w, werr := dst.Write(buf[:n])
			written += int64(w)
			if werr != nil {
				return written, to, werr
			}
			s.touch(to)
		}
		switch {
		case rerr != nil:
			return written, from, rerr
		case n == len(buf):
			if pooled == nil {
				pooled = pool.Get() // a full read: more is on its way
			}
		case pooled != nil:
			pool.Put(pooled) // drained: give the buffer back before waiting
			pooled = nil
		}
	}
}

// Idle timeouts.
//
// One timer per session (the watchdog) checks both sides. It is armed for
// the shorter idle limit and, when it fires, asks each side how long it
// has been idle: the activity stamps on the buffer path, the kernel's
// TCP_INFO (last data sent or received) on the splice path. If every side
// was active since, it re-arms for the earliest remaining time; otherwise
// that side's idle timeout ends the session. So an active session wakes
// once per idle period, never per read.

// idleLimits are the client and server inactivity limits while data flows
// (0: none).
func (s *tcpSession) idleLimits() [2]time.Duration {
	t := s.f.timeouts
	if t.Tunnel > 0 {
		return [2]time.Duration{t.Tunnel, t.Tunnel}
	}
	return [2]time.Duration{t.Client, t.Server}
}

func (s *tcpSession) startWatchdog() {
	limits := s.idleLimits()
	first := time.Duration(0)
	for _, l := range limits {
		if l > 0 && (first == 0 || l < first) {
			first = l
		}
	}
	if first == 0 {
		return
	}
	s.mu.Lock()
	if !s.done {
		s.watchdog = time.AfterFunc(first, s.checkIdle)
	}
	s.mu.Unlock()
}

// idleFor is how long side has carried no data.
func (s *tcpSession) idleFor(side layers.Side) time.Duration {
	now := s.now()
	if s.spliced {
		raw := s.cliRaw
		if side == layers.SideServer {
			raw = s.srvRaw
		}
		d, ok := tcpIdle(raw)
		if !ok {
			return 0
		}
		// Data before forwarding began (a PROXY header, a ClientHello)
		// does not count against the idle limit.
		return min(d, time.Duration(now-s.dataStart))
	}
	return time.Duration(now - s.stamp[sideIndex(side)].Load())
}

func (s *tcpSession) checkIdle() {
	limits := s.idleLimits()
	next := time.Duration(0)
	for i, side := range [2]layers.Side{layers.SideClient, layers.SideServer} {
		if limits[i] <= 0 {
			continue
		}
		left := limits[i] - s.idleFor(side)
		if left <= 0 {
			s.abort(&layers.StageError{Side: side, Phase: layers.PhaseIdle, Err: layers.ErrTimeout})
			return
		}
		if next == 0 || left < next {
			next = left
		}
	}
	s.mu.Lock()
	if !s.done && !s.aborted {
		s.watchdog.Reset(next)
	}
	s.mu.Unlock()
}
