package session

import (
	"net"
	"time"

	"github.com/strata-proxy/strata/layers/h1"
	"github.com/strata-proxy/strata/layers/h2"
	"github.com/strata-proxy/strata/layers/msg"
)

// HTTPStream is one request stream as a front mux stage hands it to a
// session: the request head and body in the version-neutral form of
// layers/msg, and the writing of the response. The HTTP/1 stage's
// *h1.Request is one; the HTTP/2 and HTTP/3 stages will provide theirs.
// Nothing of the wire format leaks through it.
//
// Body data returned by the read methods is valid until the next read call;
// the head's slices are valid until the first read that may wait
// (ReadBody, WaitBody) — the session copies what it needs after.
//
// Full duplex: once the session has sent the head and the buffered start
// of a large body, it reads the rest of the body (ReadBody, Trailers,
// BodyDone) on a goroutine of its own while it writes the response
// (WriteHead, WriteBody, EndBody) on another (http_upload.go); an
// implementation must allow that. A stream that can also wake a ReadBody
// blocked on the other goroutine implements CancelBody (bodyCanceler).
type HTTPStream interface {
	// Head is the request head.
	Head() *msg.Head
	// WaitBody is one step of waiting for the whole body before anything
	// is forwarded (see h1.Request.WaitBody).
	WaitBody() (done bool, err error)
	// ReadBodyBuffered returns body data already received, never waiting:
	// (nil, nil) when there is none.
	ReadBodyBuffered() ([]byte, error)
	// ReadBody returns the next body data, or io.EOF at the end.
	ReadBody() ([]byte, error)
	// BodyDone reports whether the body was read to its end.
	BodyDone() bool
	// Trailers are the body's trailers after io.EOF.
	Trailers() msg.Fields
	// Continue tells a client waiting with "Expect: 100-continue" to send
	// its body; the session calls it when it decides to read the body.
	Continue() error
	// WriteHead writes a 1xx or the final response head, with the first
	// body data and, when end is set, the end of the body.
	WriteHead(h *msg.Head, body []byte, end bool) error
	// WriteBody writes response body data.
	WriteBody(p []byte) error
	// EndBody ends the response body with its trailers.
	EndBody(trailers msg.Fields) error
	// Tunnel hands over the client side as a byte stream after a 101.
	Tunnel() net.Conn
}

// httpMux is a front mux stage serving one client connection: it yields
// the connection's request streams one after another.
type httpMux interface {
	// Next returns the next stream; (nil, nil) means it read more but the
	// head is not complete yet; see h1.ServerConn.Next for the errors.
	Next() (HTTPStream, error)
	// HeadTimes are when the current request's first byte arrived and when
	// its head was complete.
	HeadTimes() (start, done time.Time)
	// WriteError answers a request that could not be parsed.
	WriteError(h *msg.Head, body []byte) error
	// Finish ends the current stream and reports whether another may
	// follow on the connection.
	Finish() bool
	// Close gives back the stage's buffers.
	Close()
}

// upstream is the outbound stage of one exchange with a server: an HTTP/1
// connection (h1.ClientConn), or a stream on an HTTP/2 connection shared
// with other sessions (h2.Stream). Conn is the handle the session aborts
// it through (a deadline in the past, Close). WriteBody and EndBody may
// run on one goroutine while ReadHead, ReadBodyBuffered and ReadBody run
// on another (a full-duplex exchange, http_upload.go); the rest comes
// after both.
type upstream interface {
	WriteRequest(h *msg.Head, body []byte, end bool) error
	WriteBody(p []byte) error
	EndBody(trailers msg.Fields) error
	ReadHead(timeout time.Duration) (*msg.Head, error)
	ReadBodyBuffered() ([]byte, error)
	ReadBody(timeout time.Duration) ([]byte, error)
	Trailers() msg.Fields
	// Responded reports whether a byte of the response arrived.
	Responded() bool
	// Reusable reports whether the connection can carry another request.
	Reusable() bool
	// Alive checks an idle connection without blocking.
	Alive() bool
	Tunnel() net.Conn
	Conn() net.Conn
	Close() error
}

// newUpstream is the HTTP/1 outbound stage for a new server connection.
func (f *HTTPFrontend) newUpstream(conn net.Conn) upstream {
	c := h1.NewClientConn(conn, f.buffers, f.o.Limits)
	c.SetWriteTimeout(f.o.Timeouts.Server)
	return c
}

// streamOptions are the settings of a stream to an HTTP/2 server.
func (f *HTTPFrontend) streamOptions() h2.StreamOptions {
	return h2.StreamOptions{Buffers: f.buffers, WriteTimeout: f.o.Timeouts.Server}
}
