package h1

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/strata-proxy/strata/layers"
	"github.com/strata-proxy/strata/layers/msg"
)

// ErrEmptyResponse is returned by ReadHead when the server closed (or
// reset) the connection before sending any byte of a response: the request
// may be retried when it is safe to replay.
var ErrEmptyResponse = errors.New("h1: server closed the connection before responding")

// ClientConn is the outbound HTTP/1 stage of one server connection: it
// writes a request head and body, reads the response head(s) and body, and
// says whether the connection can carry another request. One request is in
// flight at a time. The goroutine of the session using it owns it, except
// that the rest of a request body (WriteBody, EndBody) may be written on
// another goroutine while this one reads the response (a full-duplex
// exchange); Reusable, Alive, Tunnel and Close come after that writer is
// done. An idle ClientConn (in a server's pool) holds no buffer.
type ClientConn struct {
	rd  reader
	wr  writer
	lim Limits

	resp     msg.Head
	body     body
	head     bool // the request was HEAD
	connect  bool // the request was CONNECT
	reqClose bool // the request asked to close
	reqOut   msg.BodyKind
	reqLeft  int64
	got      bool // a response byte arrived
	broken   bool // reading side: the connection cannot be reused
	wbroken  bool // writing side: the connection cannot be reused
	sent     bool // writing side: the request was sent whole
	final    bool // the final response head was read
	srvClose bool // the final response asked to close (kept: the head is the caller's to edit)

	raw     syscall.RawConn // the socket, to probe an idle connection; nil if unknown
	probeFn func(fd uintptr) bool
	probeOK bool
}

// NewClientConn makes the outbound stage on conn, a connection made by a
// Connector (its TLS stage, if any, already run).
func NewClientConn(conn net.Conn, buffers *layers.BufferPool, lim Limits) *ClientConn {
	if buffers == nil {
		buffers = layers.NewBufferPool(0)
	}
	c := &ClientConn{lim: lim}
	c.rd.conn, c.rd.pool = conn, buffers
	c.wr.conn, c.wr.pool = conn, buffers
	if tc := rawTCP(conn); tc != nil {
		if rc, err := tc.SyscallConn(); err == nil {
			c.raw = rc
			c.probeFn = c.probe
		}
	}
	return c
}

// rawTCP finds the TCP socket under c, through wrappers that expose
// NetConn (TLS, PROXY), or nil.
func rawTCP(c net.Conn) *net.TCPConn {
	for range 8 {
		switch t := c.(type) {
		case *net.TCPConn:
			return t
		case interface{ NetConn() net.Conn }:
			c = t.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// Conn is the underlying connection.
func (c *ClientConn) Conn() net.Conn { return c.rd.conn }

// Close closes the connection and gives the buffers back.
func (c *ClientConn) Close() error {
	c.broken = true
	c.rd.drop()
	c.wr.release()
	return c.rd.conn.Close()
}

// SetWriteTimeout bounds each write (0: none).
func (c *ClientConn) SetWriteTimeout(d time.Duration) { c.wr.idle = d }

// WriteRequest writes the request head h, in its HTTP/1 version and
// canonical framing (one framing field from h.Body), followed by the first body data
// and, when end is set, the end of the body. A request with h.Upgrade is
// sent with "Connection: upgrade" and its Upgrade field.
func (c *ClientConn) WriteRequest(h *msg.Head, body []byte, end bool) error {
	c.head = string(h.Method) == "HEAD"
	c.connect = string(h.Method) == "CONNECT"
	c.reqClose = h.Close
	c.got, c.final = false, false
	c.resp.Reset()
	c.reqOut, c.reqLeft = h.Body, h.ContentLength
	c.sent = false
	// The request keeps its version: an HTTP/1.0 request (which may lack
	// a Host) is not turned into an invalid HTTP/1.1 one; it asks for
	// keep-alive so that the connection can be pooled.
	out := AppendRequestHead(c.wr.head(), h)
	switch {
	case h.Upgrade != nil:
		out = out[:len(out)-2]
		out = append(out, "Connection: upgrade\r\nUpgrade: "...)
		out = append(out, h.Upgrade...)
		out = append(out, "\r\n\r\n"...)
	case h.Major == 1 && h.Minor == 0:
		out = out[:len(out)-2]
		out = append(out, "Connection: keep-alive\r\n\r\n"...)
	}
	c.wr.keep(out)
	if len(body) == 0 {
		if end && c.reqOut == msg.BodyChunked {
			out = AppendLastChunk(out, nil)
			c.wr.keep(out)
		}
		err := c.fail(c.wr.write(out, nil, nil))
		if end {
			c.sent = err == nil && (c.reqOut != msg.BodyLength || c.reqLeft == 0)
			c.wr.release()
		}
		return err
	}
	if err := c.writeData(out, body); err != nil {
		return err
	}
	if end {
		return c.EndBody(nil)
	}
	return nil
}

func (c *ClientConn) writeData(prefix, p []byte) error {
	if len(p) == 0 {
		if len(prefix) > 0 {
			return c.fail(c.wr.write(prefix, nil, nil))
		}
		return nil
	}
	switch c.reqOut {
	case msg.BodyLength:
		if int64(len(p)) > c.reqLeft {
			c.wbroken = true
			return errors.New("h1: request body longer than its Content-Length")
		}
		c.reqLeft -= int64(len(p))
	case msg.BodyChunked:
		if prefix == nil {
			prefix = c.wr.head()
		}
		prefix = AppendChunkHeader(prefix, len(p))
		c.wr.keep(prefix)
		return c.fail(c.wr.write(prefix, p, crlf))
	default:
		c.wbroken = true
		return errors.New("h1: body data for a request without a body")
	}
	return c.fail(c.wr.write(prefix, p, nil))
}

// WriteBody writes a run of the request body.
func (c *ClientConn) WriteBody(p []byte) error { return c.writeData(nil, p) }

// EndBody ends the request body (with trailers, when chunked) and gives
// the write scratch back.
func (c *ClientConn) EndBody(trailers msg.Fields) error {
	var err error
	switch c.reqOut {
	case msg.BodyChunked:
		out := AppendLastChunk(c.wr.head(), trailers)
		c.wr.keep(out)
		err = c.fail(c.wr.write(out, nil, nil))
	case msg.BodyLength:
		if c.reqLeft != 0 {
			c.wbroken = true
		}
	}
	c.sent = err == nil && !c.wbroken
	c.wr.release()
	return err
}

// fail records a write error (writing side).
func (c *ClientConn) fail(err error) error {
	if err != nil {
		c.wbroken = true
	}
	return err
}

// ReadHead reads the next response head: an interim 1xx (call again for
// the final one) or the final head. Each read is bounded by timeout (0:
// none). It returns ErrEmptyResponse when the server closed before any
// byte, an *Error for a malformed response (answer 502), or the read
// error. The head's slices point into the stage's buffer until the first
// ReadBody.
func (c *ClientConn) ReadHead(timeout time.Duration) (*msg.Head, error) {
	method := methodGET
	switch {
	case c.head:
		method = methodHEAD
	case c.connect:
		method = methodCONNECT
	}
	for {
		if b := c.rd.buffered(); len(b) > 0 {
			n, err := ParseResponseHead(b, &c.resp, method, c.lim)
			if err == nil {
				c.rd.r += n
				if c.resp.Status >= 200 || c.resp.Status == 101 {
					c.final = true
					c.srvClose = c.resp.Close
					c.body.reset(&c.resp, c.lim)
				}
				return &c.resp, nil
			}
			if err != ErrIncomplete {
				c.broken = true
				return nil, err
			}
		}
		c.rd.setDeadline(timeout)
		n, err := c.rd.fill(!c.got)
		if n > 0 {
			c.got = true
			continue
		}
		if err == nil {
			continue
		}
		c.broken = true
		if errors.Is(err, errBufferFull) {
			return nil, errHeadTooLarge
		}
		if !c.got && (err == io.EOF || errors.Is(err, syscall.ECONNRESET)) {
			return nil, ErrEmptyResponse
		}
		if err == io.EOF {
			return nil, ErrTruncated
		}
		return nil, err
	}
}

var (
	methodGET     = []byte("GET")
	methodHEAD    = []byte("HEAD")
	methodCONNECT = []byte("CONNECT")
)

// Responded reports whether any byte of a response arrived for the request
// in flight.
func (c *ClientConn) Responded() bool { return c.got }

// ReadBody returns the next run of the response body (valid until the
// next call), or io.EOF at its end, with the trailers in Trailers.
func (c *ClientConn) ReadBody(timeout time.Duration) ([]byte, error) {
	p, err := c.rd.readBody(&c.body, timeout)
	if err != nil && err != io.EOF {
		c.broken = true
	}
	return p, err
}

// ReadBodyBuffered is ReadBody without reading from the connection: it
// returns (nil, nil) when no body data is buffered, and it leaves the
// head's slices valid.
func (c *ClientConn) ReadBodyBuffered() ([]byte, error) {
	p, err := c.rd.readBodyFill(&c.body, 0, false)
	if err != nil && err != io.EOF {
		c.broken = true
	}
	return p, err
}

// Trailers are the response's trailers once ReadBody returned io.EOF.
func (c *ClientConn) Trailers() msg.Fields { return c.body.dec.Trailers }

// Reusable reports whether the connection can carry another request: the
// final response was read to its end, neither side asked to close, the
// request body was sent whole, and nothing unexpected was received after
// the response. When it is, the buffers are given back.
func (c *ClientConn) Reusable() bool {
	ok := !c.broken && !c.wbroken && c.sent && c.final && c.body.done && !c.srvClose && !c.reqClose &&
		len(c.rd.buffered()) == 0 && c.resp.Status != 101 && !(c.connect && c.resp.Status < 300)
	c.wr.release()
	c.rd.release()
	return ok
}

// Alive reports, without blocking, whether an idle connection still looks
// usable: the server neither closed it nor sent anything unasked. A false
// answer means close it; true is no promise (the server may close it just
// now), which is why a reused connection only carries requests that can be
// replayed.
func (c *ClientConn) Alive() bool {
	if c.broken || c.wbroken {
		return false
	}
	if c.raw == nil {
		return true
	}
	c.probeOK = false
	if err := c.raw.Read(c.probeFn); err != nil {
		return false
	}
	return c.probeOK
}

// Tunnel hands the connection over after a 101 (or a 2xx to CONNECT):
// reads return first what the stage had buffered past the response.
func (c *ClientConn) Tunnel() net.Conn {
	c.broken = true
	c.wr.release()
	return c.rd.tunnel()
}

// IsTimeout reports whether err is a read or write deadline passing.
func IsTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
