package h3

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/strata-proxy/strata/layers"
)

// Frontend is what a Listener hands its connections and streams to: the
// HTTP frontend built from the running configuration
// (session.HTTPFrontend). Its methods are called from many goroutines.
type Frontend interface {
	// Admit runs the L4 rules on a new QUIC connection's initiator; an
	// error refuses the connection before its handshake.
	Admit(in *layers.Initiator) error
	// Limit is the frontend's connection cap (nil: none); a QUIC
	// connection holds one slot while it lives.
	Limit() *layers.ConnLimit
	// ServeStream serves one request stream as a session of its own and
	// returns when the exchange is over.
	ServeStream(in *layers.Initiator, w http.ResponseWriter, r *http.Request)
}

// Handler is the configuration a Listener serves with; a reload installs a
// new one with SetHandler. It is not modified after SetHandler.
type Handler struct {
	// Frontend serves the streams.
	Frontend Frontend
	// TLS is the frontend's TLS decode configuration: certificates chosen
	// by SNI, client authentication, session tickets. The Listener uses a
	// clone with TLS 1.3 and ALPN "h3" (QUIC allows nothing else).
	TLS *tls.Config
	// ZeroRTT accepts 0-RTT (early data) for safe methods; off by default.
	ZeroRTT bool
	// HandshakeTimeout bounds the QUIC handshake (quic-go's default, 5 s,
	// when 0).
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection with no activity (quic-go's default,
	// 30 s, when 0).
	IdleTimeout time.Duration
	// MaxStreams caps the concurrent request streams of one connection
	// (100 when 0).
	MaxStreams int64
}

// Options are a Listener's fixed settings, chosen when its socket opens.
type Options struct {
	// MaxHeaderBytes bounds a request's HEADERS frame (net/http's default,
	// 1 MiB, when 0); the frontend's own limits answer 431 below it.
	MaxHeaderBytes int
	// Logger receives the listener's operational lines; nil is silent.
	Logger *slog.Logger
}

// ListenerStats are the counters of a Listener since it was made.
type ListenerStats struct {
	Accepted uint64 // QUIC connections admitted
	Refused  uint64 // refused by the L4 rules or a full connection cap
	Streams  uint64 // request streams served
}

// Listener is one UDP socket serving HTTP/3. SetHandler, Shutdown, Close
// and the getters may be called from any goroutine; Serve runs in one.
type Listener struct {
	name   string
	pc     *net.UDPConn
	tr     *quic.Transport
	ln     *quic.EarlyListener
	srv    *http3.Server
	logger *slog.Logger
	global atomic.Pointer[layers.ConnLimit]

	handler atomic.Pointer[installed]
	// ticketKey is shared by every Handler's TLS configuration, so a
	// session ticket issued before a reload still resumes after it.
	ticketKey [32]byte

	accepted, refused, streams atomic.Uint64
	inflight                   atomic.Int64 // request streams being served
	active                     atomic.Int64 // live QUIC connections

	closeOnce sync.Once
}

// installed is a Handler with what SetHandler derives from it once.
type installed struct {
	h    Handler
	tls  *tls.Config
	quic *quic.Config
}

// connKey is the context key of a connection's *conn (set by
// ConnContext, so the request contexts that http3 derives from the
// connection's carry it).
type connKey struct{}

// Listen opens the UDP socket on addr ("host:port"; an empty host is every
// address) with its QUIC transport. Call SetHandler, then Serve.
func Listen(addr string, o Options) (*Listener, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("quic listen %s: %w", addr, err)
	}
	pc, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("quic listen %s: %w", addr, err)
	}
	return ListenFrom(pc, addr, o)
}

// ListenFrom serves HTTP/3 on an already open UDP socket under name. The
// Listener owns pc from now on and closes it.
func ListenFrom(pc *net.UDPConn, name string, o Options) (*Listener, error) {
	l := &Listener{name: name, pc: pc, logger: o.Logger}
	if l.logger == nil {
		l.logger = slog.New(slog.DiscardHandler)
	}
	if _, err := rand.Read(l.ticketKey[:]); err != nil {
		pc.Close()
		return nil, fmt.Errorf("quic listen %s: session ticket key: %w", name, err)
	}
	l.tr = &quic.Transport{Conn: pc, ConnContext: l.connContext}
	base := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{http3.NextProtoH3},
		GetConfigForClient: l.tlsConfigForClient,
	}
	qc := &quic.Config{GetConfigForClient: l.quicConfigForClient, Allow0RTT: true}
	ln, err := l.tr.ListenEarly(base, qc)
	if err != nil {
		l.tr.Close()
		pc.Close()
		return nil, fmt.Errorf("quic listen %s: %w", name, err)
	}
	l.ln = ln
	l.srv = &http3.Server{
		Handler:        http.HandlerFunc(l.serveHTTP),
		MaxHeaderBytes: o.MaxHeaderBytes,
		Logger:         o.Logger,
	}
	return l, nil
}

// Name is the bind string the listener was made with.
func (l *Listener) Name() string { return l.name }

// Addr is the UDP socket's address (the chosen port when bound to :0).
func (l *Listener) Addr() net.Addr { return l.pc.LocalAddr() }

// Active is the number of live QUIC connections.
func (l *Listener) Active() int { return int(l.active.Load()) }

// Stats returns the counters.
func (l *Listener) Stats() ListenerStats {
	return ListenerStats{Accepted: l.accepted.Load(), Refused: l.refused.Load(), Streams: l.streams.Load()}
}

// SetHandler installs h for the connections accepted and the streams
// opened from now on. Streams in flight finish on the Handler they started
// with; the QUIC connections themselves are kept.
func (l *Listener) SetHandler(h Handler) {
	tc := h.TLS.Clone()
	if tc == nil {
		tc = &tls.Config{}
	}
	tc.MinVersion = tls.VersionTLS13
	tc.SetSessionTicketKeys([][32]byte{l.ticketKey})
	qc := &quic.Config{
		HandshakeIdleTimeout: h.HandshakeTimeout,
		MaxIdleTimeout:       h.IdleTimeout,
		MaxIncomingStreams:   h.MaxStreams,
		Allow0RTT:            h.ZeroRTT,
	}
	if qc.MaxIncomingStreams == 0 {
		qc.MaxIncomingStreams = defaultMaxStreams
	}
	l.handler.Store(&installed{h: h, tls: http3.ConfigureTLSConfig(tc), quic: qc})
}

// defaultMaxStreams is quic-go's and most servers' default.
const defaultMaxStreams = 100

func (l *Listener) tlsConfigForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	cur := l.handler.Load()
	if cur == nil {
		return nil, errNoHandler
	}
	return cur.tls, nil
}

func (l *Listener) quicConfigForClient(*quic.ClientInfo) (*quic.Config, error) {
	cur := l.handler.Load()
	if cur == nil {
		return nil, errNoHandler
	}
	return cur.quic, nil
}

var errNoHandler = errors.New("h3: no handler installed")

// Serve accepts QUIC connections until Shutdown or Close; each connection
// takes a slot of global (nil: none) and of the Handler's Limit while it
// lives — a full cap refuses new connections (QUIC has no backlog to leave
// them in). It returns nil when the listener is closed.
func (l *Listener) Serve(global *layers.ConnLimit) error {
	if l.handler.Load() == nil {
		return fmt.Errorf("quic listener %s: no handler set (call SetHandler before Serve)", l.name)
	}
	l.global.Store(global)
	for {
		qc, err := l.ln.Accept(context.Background())
		if err != nil {
			if errors.Is(err, quic.ErrServerClosed) || errors.Is(err, quic.ErrTransportClosed) || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("quic listener %s: accept: %w", l.name, err)
		}
		c, _ := qc.Context().Value(connKey{}).(*conn)
		if c == nil { // accepted before Serve stored global: cannot happen, but never serve unaccounted
			qc.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeInternalError), "")
			continue
		}
		go l.serveConn(c, qc)
	}
}

// connContext runs before a new connection's handshake: it makes the
// Initiator, runs the L4 rules and takes the connection caps' slots. An
// error refuses the connection.
func (l *Listener) connContext(ctx context.Context, ci *quic.ClientInfo) (context.Context, error) {
	cur := l.handler.Load()
	if cur == nil {
		return nil, errNoHandler
	}
	in := &layers.Initiator{Listener: l.name, Accepted: time.Now()}
	in.Remote = layers.AddrPortOf(ci.RemoteAddr)
	in.Local = layers.AddrPortOf(l.pc.LocalAddr())
	in.Source, in.Dest = in.Remote, in.Local
	fe := cur.h.Frontend
	if err := fe.Admit(in); err != nil {
		in.Release()
		l.refused.Add(1)
		return nil, err
	}
	global := l.global.Load()
	if !global.TryAcquire() {
		in.Release()
		l.refused.Add(1)
		return nil, errFull
	}
	limit := fe.Limit()
	if !limit.TryAcquire() {
		global.Release()
		in.Release()
		l.refused.Add(1)
		return nil, errFull
	}
	l.accepted.Add(1)
	l.active.Add(1)
	c := &conn{l: l, in: in}
	// The context is cancelled when the connection ends, whether or not
	// its handshake completed and it reached Accept.
	context.AfterFunc(ctx, func() {
		in.Release()
		limit.Release()
		global.Release()
		l.active.Add(-1)
	})
	return context.WithValue(ctx, connKey{}, c), nil
}

var errFull = errors.New("h3: connection cap reached")

// serveConn serves one QUIC connection's HTTP/3 exchange until it ends.
func (l *Listener) serveConn(c *conn, qc *quic.Conn) {
	c.qc = qc
	in := c.in
	in.Conn = (*quicNetConn)(qc)
	// Without 0-RTT, serve only after the handshake: the peer's
	// certificate and the final TLS facts are known then.
	if !qc.ConnectionState().Used0RTT {
		select {
		case <-qc.HandshakeComplete():
		case <-qc.Context().Done():
			return
		}
	}
	in.Handshake = layers.FactsOf(qc.ConnectionState().TLS)
	in.SNI = in.Handshake.SNI
	in.ALPN = []string{in.Handshake.ALPN}
	if err := l.srv.ServeQUICConn(qc); err != nil && !errors.Is(err, http.ErrServerClosed) {
		l.logger.Debug("HTTP/3 connection ended with an error",
			slog.String("listener", l.name), slog.String("source", in.Source.String()), slog.String("error", err.Error()))
	}
}

// Shutdown stops accepting connections, sends GOAWAY on every connection,
// waits for the request streams in flight to finish and for the clients to
// close (a moment at most), then closes the connections and the socket.
// When ctx is done first it closes everything at once and returns ctx's
// error.
func (l *Listener) Shutdown(ctx context.Context) error {
	l.ln.Close()
	srvCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	shut := make(chan struct{})
	go func() { // GOAWAY now; the connections close when srvCtx ends
		l.srv.Shutdown(srvCtx)
		close(shut)
	}()
	err := l.waitStreams(ctx, shut)
	if err == nil {
		// The handlers are done, but their last response bytes may still
		// be on their way: a client that got GOAWAY closes the connection
		// itself once its streams are complete. Give it a moment.
		t := time.NewTimer(closeLinger)
		select {
		case <-shut:
		case <-t.C:
		case <-ctx.Done():
			err = ctx.Err()
		}
		t.Stop()
	}
	cancel()
	<-shut
	l.closeTransport()
	return err
}

// drainPoll is how often Shutdown looks at the streams in flight;
// closeLinger is how long it then waits for the clients to close.
const (
	drainPoll   = 10 * time.Millisecond
	closeLinger = time.Second
)

// waitStreams waits until no request stream is in flight (twice in a row,
// since a stream accepted just before GOAWAY may still be on its way to
// the handler), the server has ended every connection (shut is closed),
// or ctx is done (then its error).
func (l *Listener) waitStreams(ctx context.Context, shut <-chan struct{}) error {
	t := time.NewTicker(drainPoll)
	defer t.Stop()
	for quiet := 0; quiet < 2; {
		select {
		case <-shut:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if l.inflight.Load() == 0 {
			quiet++
		} else {
			quiet = 0
		}
	}
	return nil
}

// Close closes every connection and the socket at once.
func (l *Listener) Close() error {
	l.ln.Close()
	l.srv.Close()
	l.closeTransport()
	return nil
}

func (l *Listener) closeTransport() {
	l.closeOnce.Do(func() {
		l.tr.Close()
		l.pc.Close()
	})
}
