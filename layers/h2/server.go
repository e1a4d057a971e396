package h2

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/http2"

	"github.com/strata-proxy/strata/layers/hstream"
)

// Options are the limits of an HTTP/2 front. Zero means the default.
type Options struct {
	// MaxConcurrentStreams bounds the streams a client may have open on
	// one connection (100).
	MaxConcurrentStreams uint32
	// MaxHeaderBytes bounds a request's decoded header list (64 KiB).
	MaxHeaderBytes int
	// IdleTimeout closes a connection with no open stream (GOAWAY) after
	// this long (the frontend's keep-alive timeout; 0: none).
	IdleTimeout time.Duration
	// Logger receives what the protocol implementation logs (protocol
	// errors of peers, at debug level); nil is silent.
	Logger *slog.Logger
	// Stream bounds what a request stream of the mux of strata's own
	// accepts (its head, URI, body) and its waits for the client; the
	// x/net server's streams take the same limits in the session.
	Stream hstream.Options
	// XNet serves the connections with golang.org/x/net/http2's server
	// instead of the mux of strata's own (ServeConnStreams then falls
	// back to it through the caller's handler).
	XNet bool
}

// Server is the HTTP/2 mux stage for the connections of one frontend. It
// is safe for concurrent use: ServeConn runs once per connection.
type Server struct {
	hs    *http.Server
	s     *http2.Server
	o     Options
	sopts hstream.Options
	lim   abuseLimits
	log   *slog.Logger

	mu       sync.Mutex
	conns    map[*serverConn]struct{}
	shutdown bool

	wmu         sync.Mutex // guards the workers
	idleWorkers []worker
	down        bool          // Shutdown was called
	quit        chan struct{} // closed by Shutdown: parked workers end
}

// NewServer builds the stage.
func NewServer(o Options) *Server {
	if o.MaxConcurrentStreams == 0 {
		o.MaxConcurrentStreams = 100
	}
	if o.MaxHeaderBytes == 0 {
		o.MaxHeaderBytes = 64 << 10
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	hs := &http.Server{
		MaxHeaderBytes: o.MaxHeaderBytes,
		// x/net logs peers' protocol errors through the server's logger.
		ErrorLog: log.New(logWriter{logger}, "", 0),
	}
	s := &http2.Server{
		MaxConcurrentStreams: o.MaxConcurrentStreams,
		IdleTimeout:          o.IdleTimeout,
		// RFC 9113's default: no client needs larger frames, and
		// SETTINGS_MAX_FRAME_SIZE promises peers no more.
		MaxReadFrameSize: maxFrameSize,
		// The guard's HPACK decoder follows the server's: same table.
		MaxDecoderHeaderTableSize: headerTableSize,
	}
	// ConfigureServer ties the servers together so that Shutdown reaches
	// every connection ServeConn is serving.
	if err := http2.ConfigureServer(hs, s); err != nil {
		panic("h2: " + err.Error()) // only on a TLS configuration we never set
	}
	return &Server{hs: hs, s: s, o: o, sopts: o.Stream, lim: newAbuseLimits(o.MaxConcurrentStreams, o.MaxHeaderBytes), log: logger,
		conns: make(map[*serverConn]struct{}), quit: make(chan struct{})}
}

// Own reports whether connections are served by the mux of strata's own
// (ServeConnStreams) rather than x/net's server (ServeConn).
func (s *Server) Own() bool { return !s.o.XNet }

// ServeConnStreams serves the HTTP/2 connection conn with the mux of
// strata's own until it ends, calling handler for each request stream on
// a goroutine of its own. sawPreface says the client's connection preface
// was already read from conn (see SniffPreface). It closes conn before it
// returns.
func (s *Server) ServeConnStreams(conn net.Conn, sawPreface bool, handler StreamHandler) {
	remote := conn.RemoteAddr()
	lim := s.lim
	lim.ownMux = true
	lim.writeTimeout = s.sopts.Client
	conn = newGuard(conn, sawPreface, lim, func(reason string) {
		s.log.Info("http2 connection ended with GOAWAY ENHANCE_YOUR_CALM",
			slog.String("client", remote.String()), slog.String("reason", reason))
	})
	defer conn.Close()
	s.serveStreams(conn, sawPreface, handler)
}

// track registers a connection for Shutdown; it reports whether the
// server was shut down already (then the connection is to be sent GOAWAY
// at once).
func (s *Server) track(sc *serverConn) (down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns[sc] = struct{}{}
	return s.shutdown
}

func (s *Server) untrack(sc *serverConn) {
	s.mu.Lock()
	delete(s.conns, sc)
	s.mu.Unlock()
}

// ServeConn serves the HTTP/2 connection conn until it ends, calling
// handler for each request stream on a goroutine of its own. sawPreface
// says the client's connection preface was already read from conn (see
// SniffPreface). It closes conn before it returns.
func (s *Server) ServeConn(ctx context.Context, conn net.Conn, sawPreface bool, handler http.Handler) {
	remote := conn.RemoteAddr()
	conn = newGuard(conn, sawPreface, s.lim, func(reason string) {
		s.log.Info("http2 connection ended with GOAWAY ENHANCE_YOUR_CALM",
			slog.String("client", remote.String()), slog.String("reason", reason))
	})
	defer conn.Close() // the server closes it too; this ends the guard's writer whatever happened
	s.s.ServeConn(conn, &http2.ServeConnOpts{
		Context:          ctx,
		BaseConfig:       s.hs,
		Handler:          handler,
		SawClientPreface: sawPreface,
	})
}

// Shutdown sends GOAWAY to every connection being served, so that clients
// open no new stream; streams in flight finish and each ServeConn returns
// when its connection has none left.
func (s *Server) Shutdown() {
	s.wmu.Lock()
	if !s.down {
		s.down = true
		close(s.quit)
	}
	s.wmu.Unlock()
	s.mu.Lock()
	s.shutdown = true
	conns := make([]*serverConn, 0, len(s.conns))
	for sc := range s.conns {
		conns = append(conns, sc)
	}
	s.mu.Unlock()
	for _, sc := range conns {
		sc.shutdown()
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the GOAWAYs are sent at once; waiting is the caller's business
	s.hs.Shutdown(ctx)
}

// Preface is what an HTTP/2 client sends first (RFC 9113 §3.4).
const Preface = http2.ClientPreface

// SniffPreface reads from conn until it knows whether the client opened
// with the HTTP/2 preface. It returns a connection that replays what was
// read when it did not (an HTTP/1 request, for the HTTP/1 stage), and
// whether it did (then the preface is consumed: pass sawPreface to
// ServeConn). conn's read deadline bounds the wait.
func SniffPreface(conn net.Conn) (net.Conn, bool, error) {
	var buf [len(Preface)]byte
	n := 0
	for n < len(buf) {
		k, err := conn.Read(buf[n:])
		n += k
		if !bytes.HasPrefix([]byte(Preface), buf[:n]) {
			return &replayConn{Conn: conn, pending: append([]byte(nil), buf[:n]...)}, false, nil
		}
		if err != nil {
			if err == io.EOF && n == 0 {
				return nil, false, io.EOF
			}
			if n == len(buf) {
				break
			}
			return nil, false, err
		}
	}
	return conn, true, nil
}

// replayConn returns bytes read ahead before reading conn again.
type replayConn struct {
	net.Conn
	pending []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite shuts the sending side when the connection can.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// logWriter turns the protocol implementation's log lines into debug
// records: they describe misbehaving peers, not strata's health.
type logWriter struct{ l *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.l.Debug("http2", slog.String("msg", string(bytes.TrimRight(p, "\n"))))
	return len(p), nil
}
