package session

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/strata-proxy/strata/layers"
	"github.com/strata-proxy/strata/layers/h1"
	"github.com/strata-proxy/strata/layers/h2"
	"github.com/strata-proxy/strata/layers/hstream"
	"github.com/strata-proxy/strata/layers/msg"
)

// The front mux stage of a connection is chosen in one place, by what the
// client negotiated (the ALPN → stage table of DESIGN.md §1):
//
//	"h2" by ALPN, or the HTTP/2 preface on a cleartext frontend with h2c on  → HTTP/2 (layers/h2)
//	"http/1.1", or no ALPN                                                    → HTTP/1 (layers/h1)
//
// HTTP/3 arrives on UDP listeners (layers/h3) and enters through
// ServeStream directly.
const alpnH2 = "h2"

// pickMux chooses the mux stage for conn, once the front stages are done.
// An HTTP/2 connection is served here to its end (false); for HTTP/1 it
// sets c.mux for the worker's request loop (true).
func (c *httpConn) pickMux(conn net.Conn) bool {
	f := c.f
	if f.h2 != nil {
		switch {
		case c.in.Handshake != nil && c.in.Handshake.ALPN == alpnH2:
			c.serveH2(conn, false)
			return false
		case f.o.H2C && c.in.Handshake == nil:
			if d := f.o.Timeouts.HTTPRequest; d > 0 {
				conn.SetReadDeadline(time.Now().Add(d))
			}
			next, isH2, err := h2.SniffPreface(conn)
			if err != nil {
				return false // closed or silent before a byte of a request: nothing to log
			}
			conn.SetReadDeadline(time.Time{})
			if isH2 {
				c.serveH2(conn, true)
				return false
			}
			conn = next
			c.setCli(conn)
		}
	}
	c.mux = f.newMux(c.in, conn)
	return true
}

// serveH2 serves an HTTP/2 connection: each stream becomes a session of its
// own (ServeStream). The frontend's Shutdown reaches it with GOAWAY.
func (c *httpConn) serveH2(conn net.Conn, sawPreface bool) {
	in := c.in
	if c.f.h2.Own() {
		c.f.h2.ServeConnStreams(conn, sawPreface, func(st *h2.ServerStream) {
			c.f.serveStreamH2(in, st)
		})
		return
	}
	c.f.h2.ServeConn(context.Background(), conn, sawPreface, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.f.ServeStream(in, w, r)
	}))
}

// ServeStream serves one request stream of a multiplexed connection (HTTP/2,
// HTTP/3) as a session of its own: the same analysers, balancing,
// forwarding and access-log line as an HTTP/1 request. It blocks until the
// exchange is over and is safe for concurrent use. in is the connection's
// initiator; w and r are the stream as net/http-style servers (x/net/http2,
// quic-go's http3) hand it over. A stream whose response could not be
// completed is reset (it panics with http.ErrAbortHandler, which those
// servers turn into a stream reset), so that a cut-off response never looks
// whole to the client.
func (f *HTTPFrontend) ServeStream(in *layers.Initiator, w http.ResponseWriter, r *http.Request) {
	lim := f.o.Limits.WithDefaults()
	st := hstream.New(w, r, hstream.Options{
		Buffers:      f.buffers,
		MaxHeadBytes: lim.MaxHeadBytes,
		MaxFields:    lim.MaxFields,
		MaxURI:       lim.MaxURI,
		MaxBody:      lim.MaxBody,
		Client:       f.o.Timeouts.Client,
	})
	c := f.streamConn(in, st)
	// The stream's context ends when the client resets it (or its
	// connection ends): the session stops at once, before connecting if
	// it has not yet, so that a rapid reset costs the servers nothing.
	// The mux stage starts this goroutine as soon as the request head is
	// in, ahead of the frames behind it; yielding once lets it read a
	// reset that came with the head (rapid reset, CVE-2023-44487) before
	// the session connects. It costs nothing measurable under load.
	stop := context.AfterFunc(r.Context(), c.cancelStream)
	runtime.Gosched()
	c.s.reset()
	c.s.serve()
	if stop() {
		// The cancel never started: nothing else holds c. Its session
		// keeps its buffers (arena, fields) for the next stream.
		c.recycle()
		streamConns.Put(c)
	}
	ended := st.Ended()
	st.Release()
	if !ended {
		panic(http.ErrAbortHandler)
	}
}

// serveStreamH2 serves one request stream of a connection of the HTTP/2
// mux of strata's own, as ServeStream does for net/http-style servers. A
// stream whose response could not be completed is reset by the mux when
// this returns.
func (f *HTTPFrontend) serveStreamH2(in *layers.Initiator, st *h2.ServerStream) {
	c := f.streamConn(in, st)
	var mu sync.Mutex
	done, cancelled := false, false
	st.OnReset(func() {
		mu.Lock()
		defer mu.Unlock()
		if !done {
			cancelled = true
			c.cancelStream()
		}
	})
	runtime.Gosched() // see ServeStream: a reset that came with the head is read first
	c.s.reset()
	c.s.serve()
	mu.Lock()
	done = true
	reuse := !cancelled
	mu.Unlock()
	if reuse {
		c.recycle()
		streamConns.Put(c)
	}
}

// streamConn is the httpConn of a stream's session, reused when it can be.
func (f *HTTPFrontend) streamConn(in *layers.Initiator, st muxStream) *httpConn {
	c, _ := streamConns.Get().(*httpConn)
	if c == nil {
		c = new(httpConn)
	}
	c.f, c.in, c.stream = f, in, true
	if c.s == nil {
		c.s = &httpSession{}
	}
	c.s.c = c
	c.smux = streamMux{st: st}
	c.mux = &c.smux
	return c
}

// streamConns keeps the httpConns of finished streams for reuse.
var streamConns sync.Pool

// recycle empties a stream's httpConn for the next stream, keeping its
// session's buffers.
func (c *httpConn) recycle() {
	c.s.reset()
	s := c.s
	s.c = nil
	c.f, c.in, c.mux, c.smux = nil, nil, nil, streamMux{}
	c.cli, c.srv, c.idle, c.linger, c.aborted, c.cause = nil, nil, false, false, false, nil
	c.parked, c.panicked = false, nil
	c.s = s
}

// errStreamCancelled ends a stream's session when its client reset it or
// its connection ended.
var errStreamCancelled = &layers.StageError{Side: layers.SideClient, Stage: "http stream", Phase: layers.PhaseData,
	Err: errors.New("cancelled by the client (stream reset or connection closed)")}

// cancelStream aborts the session of a stream: its server connection, if
// any, is unblocked; the client connection is the mux stage's and stays.
func (c *httpConn) cancelStream() {
	c.mu.Lock()
	c.aborted = true
	if c.cause == nil {
		c.cause = errStreamCancelled
	}
	srv := c.srv
	c.mu.Unlock()
	if srv != nil {
		srv.SetDeadline(aLongTimeAgo)
	}
}

// streamMux is the mux of a session serving one stream of a multiplexed
// connection: it yields that stream (or its refusal) once.
type streamMux struct {
	st   muxStream
	done bool
}

// muxStream is a stream as the mux stages of multiplexed connections
// hand it over (hstream.Stream, h2.ServerStream).
type muxStream interface {
	HTTPStream
	// Err is why the request is refused, or nil.
	Err() error
	// Start is when the request head arrived.
	Start() time.Time
	// Close gives back the stream's buffers.
	Close()
}

func (m *streamMux) Next() (HTTPStream, error) {
	if m.done {
		return nil, errStreamDone
	}
	m.done = true
	if err := m.st.Err(); err != nil {
		return nil, err
	}
	return m.st, nil
}

func (m *streamMux) HeadTimes() (start, done time.Time) {
	t := m.st.Start()
	return t, t
}

func (m *streamMux) WriteError(h *msg.Head, body []byte) error {
	return m.st.WriteHead(h, body, true)
}

func (m *streamMux) Finish() bool { return false }

func (m *streamMux) Close() { m.st.Close() }

// errStreamDone ends the session quietly if it asks for a second request.
var errStreamDone = io.EOF

// h1Mux adapts the HTTP/1 stage to httpMux.
type h1Mux struct{ *h1.ServerConn }

func (m h1Mux) Next() (HTTPStream, error) {
	r, err := m.ServerConn.Next()
	if r == nil {
		return nil, err
	}
	return r, err
}

// newMux is the HTTP/1 mux stage for a connection.
func (f *HTTPFrontend) newMux(in *layers.Initiator, conn net.Conn) httpMux {
	return h1Mux{h1.NewServerConn(conn, h1.ServerOptions{
		Buffers:   f.buffers,
		Limits:    f.o.Limits,
		Request:   f.o.Timeouts.HTTPRequest,
		KeepAlive: f.o.Timeouts.KeepAlive,
		Client:    f.o.Timeouts.Client,
		Start:     in.Accepted,
		Grace:     idleGrace,
	})}
}

var nameAltSvc = []byte("Alt-Svc")

// analyseAltSvc announces the frontend's HTTP/3 listeners on responses that
// came over TCP (RFC 7838), replacing what the server said: the protocols
// strata offers are strata's to announce.
func analyseAltSvc(s *httpSession) result {
	if v := s.c.f.altSvc; v != nil && s.req != nil && s.req.Major < 3 {
		s.resp.Set(nameAltSvc, v)
	}
	return cont
}
