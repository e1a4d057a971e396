package h1

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/strata-proxy/strata/layers"
	"github.com/strata-proxy/strata/layers/msg"
)

// ServerOptions configures the HTTP/1 mux stage of one client connection.
type ServerOptions struct {
	// Buffers hands out the read buffer and the head-writing scratch.
	Buffers *layers.BufferPool
	// Limits bounds what the parser accepts (zero fields: DefaultLimits).
	Limits Limits
	// Request bounds the arrival of a whole request head, from the
	// request's first byte (from Start for the first request): 408.
	Request time.Duration
	// KeepAlive bounds the wait for the first byte of a later request;
	// when it passes the connection closes silently. 0 means Request.
	KeepAlive time.Duration
	// Client bounds each read of a request body and each write to the
	// client (inactivity).
	Client time.Duration
	// Start is when the connection was accepted: the first request's head
	// timer starts there.
	Start time.Time
	// Grace bounds the wait for the first byte of a request on the calling
	// goroutine: when it passes, Next returns ErrIdle (0: never).
	Grace time.Duration
}

// Errors of the request-head wait, as *layers.StageError so that their
// text is the termination state.
var (
	// ErrRequestTimeout: the request head did not arrive in time (408).
	ErrRequestTimeout = &layers.StageError{Side: layers.SideClient, Stage: "http request", Err: layers.ErrTimeout}
	// ErrKeepAliveTimeout: no later request came; the connection closes
	// without an answer.
	ErrKeepAliveTimeout = &layers.StageError{Side: layers.SideClient, Stage: "http keep-alive", Err: layers.ErrTimeout}
	// ErrClientAborted: the client closed the connection inside a head.
	ErrClientAborted = &layers.StageError{Side: layers.SideClient, Stage: "http request", Err: errors.New("closed inside the request head")}
)

// ErrIdle is returned by Next when ServerOptions.Grace passed with no byte
// of a request: the connection is idle, and no timeout of its own passed.
// The goroutine that served the connection so far has a stack grown by the
// TLS handshake and the requests, which a parked goroutine keeps until a
// GC shrinks it; the caller can leave the rest of the wait to a goroutine
// with a small stack, which calls WaitIdle and hands the connection back
// for Next.
var ErrIdle = errors.New("h1: connection idle")

// ServerConn is the HTTP/1 mux stage of one client connection (DESIGN.md
// §1 step 3): it parses requests from the connection in order, pipelined
// ones included, and exposes each one as a stream (Next) that a session
// consumes and answers; it writes the response back in HTTP/1 framing.
//
// One request is live at a time: the next is parsed only after Finish.
// The goroutine serving the connection owns the ServerConn; Abort may be
// called from any goroutine.
type ServerConn struct {
	o   ServerOptions
	rd  reader
	wr  writer
	req *Request // nil while idle after WaitIdle (request makes it again)

	served    int       // requests finished
	headStart time.Time // the current head's first byte (zero: none yet)
	headDone  time.Time
	waitStart time.Time // when the wait for a later request began
	closing   bool      // no request after the current one
}

// NewServerConn makes the mux stage for conn.
func NewServerConn(conn net.Conn, o ServerOptions) *ServerConn {
	if o.Buffers == nil {
		o.Buffers = layers.NewBufferPool(0)
	}
	if o.KeepAlive <= 0 {
		o.KeepAlive = o.Request
	}
	c := &ServerConn{o: o}
	c.rd.conn, c.rd.pool = conn, o.Buffers
	if o.Grace > 0 && canPeek {
		if c.rd.raw = rawSocket(conn); c.rd.raw != nil {
			c.rd.waitInPool = true
		}
	}
	c.wr.conn, c.wr.pool, c.wr.idle = conn, o.Buffers, o.Client
	return c
}

// Next waits for the next request head. It returns the request once its
// head is complete; (nil, nil) when it read more but the head is not
// complete yet (call again: this is the "wait for more" of the session's
// first analyser); io.EOF when the client closed between requests;
// ErrKeepAliveTimeout; ErrRequestTimeout (answer 408); ErrClientAborted;
// an *Error for a malformed head (answer its Status, then close); or the
// connection's read error.
func (c *ServerConn) Next() (*Request, error) {
	if c.closing {
		return nil, io.EOF
	}
	if b := c.rd.buffered(); len(b) > 0 {
		if r, err := c.parse(); r != nil || err != nil {
			return r, err
		}
	}
	first := c.served == 0
	until := c.waitDeadline()
	// Waiting for a request's first byte, the grace may end the wait
	// here first (ErrIdle).
	var grace time.Time
	if c.o.Grace > 0 && c.headStart.IsZero() && len(c.rd.buffered()) == 0 && c.rd.err == nil {
		if g := time.Now().Add(c.o.Grace); until.IsZero() || g.Before(until) {
			grace, until = g, g
		}
	}
	c.rd.conn.SetReadDeadline(until)
	n, err := c.rd.fill(true)
	if n > 0 {
		c.gotBytes(first)
		if r, perr := c.parse(); r != nil || perr != nil {
			return r, perr
		}
	}
	switch {
	case err == nil:
		return nil, nil
	case errors.Is(err, errBufferFull):
		return nil, errHeadTooLarge
	case errors.Is(err, os.ErrDeadlineExceeded):
		if n == 0 && !grace.IsZero() && !time.Now().Before(grace) {
			return nil, ErrIdle
		}
		if c.headStart.IsZero() && !first {
			return nil, ErrKeepAliveTimeout
		}
		return nil, ErrRequestTimeout
	case err == io.EOF:
		if c.headStart.IsZero() && len(c.rd.buffered()) == 0 {
			return nil, io.EOF
		}
		return nil, ErrClientAborted
	}
	return nil, err
}

// waitDeadline is the deadline of the wait for the current head: the
// http_request timeout from its first byte (from the accept for the first
// request), or the keep-alive timeout from the end of the last response
// (zero: none).
func (c *ServerConn) waitDeadline() time.Time {
	switch {
	case !c.headStart.IsZero():
		return c.deadline(c.headStart)
	case c.served == 0:
		return c.deadline(c.o.Start)
	}
	if c.waitStart.IsZero() {
		c.waitStart = time.Now()
	}
	if c.o.KeepAlive > 0 {
		return c.waitStart.Add(c.o.KeepAlive)
	}
	return time.Time{}
}

// gotBytes starts the head timer when a request's first bytes arrived.
func (c *ServerConn) gotBytes(first bool) {
	if c.headStart.IsZero() {
		c.headStart = time.Now()
		if first && !c.o.Start.IsZero() {
			c.headStart = c.o.Start
		}
	}
}

// WaitIdle goes on with the wait that Next ended with ErrIdle, until the
// deadline Next had, holding no pooled buffer: on the TCP socket itself
// when nothing buffers above it (plain or TLS over TCP), else reading
// into the small probe. Next, which must be called next, reads (or finds)
// what came: bytes, the end of the connection, a timeout, an error. It
// first gives back the request stream's memory (its head and field list,
// its body decoders), made again for the next request. Meant for a
// goroutine with a small stack (see ErrIdle).
func (c *ServerConn) WaitIdle() {
	c.req = nil
	c.rd.conn.SetReadDeadline(c.waitDeadline())
	if c.rd.raw != nil {
		c.rd.waitReadable() // Next's read finds what it was
		return
	}
	n, err := c.rd.fill(true)
	if n > 0 {
		c.gotBytes(c.served == 0)
	}
	c.rd.err = err
}

func (c *ServerConn) deadline(from time.Time) time.Time {
	if c.o.Request <= 0 || from.IsZero() {
		return time.Time{}
	}
	return from.Add(c.o.Request)
}

// request is the connection's request stream, made again after WaitIdle
// gave it up.
func (c *ServerConn) request() *Request {
	if c.req == nil {
		c.req = &Request{c: c}
	}
	return c.req
}

// parse tries to parse a head from the buffered bytes.
func (c *ServerConn) parse() (*Request, error) {
	b := c.rd.buffered()
	r := c.request()
	n, err := ParseRequestHead(b, &r.head, c.o.Limits)
	if err == ErrIncomplete {
		if len(b) == len(*c.rd.buf) && c.rd.r == 0 {
			return nil, errHeadTooLarge
		}
		// Blank lines alone are not a request yet.
		if c.headStart.IsZero() && len(bytes.TrimLeft(b, "\r\n")) == 0 {
			return nil, nil
		}
		if c.headStart.IsZero() {
			c.headStart = time.Now()
		}
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if c.headStart.IsZero() {
		c.headStart = time.Now()
	}
	c.headDone = time.Now()
	c.rd.r += n
	r.start(c.o.Limits)
	return r, nil
}

// HeadTimes returns when the current request's first byte arrived (the
// accept time for the first request) and when its head was complete.
func (c *ServerConn) HeadTimes() (start, done time.Time) { return c.headStart, c.headDone }

// Finish ends the current request once its response was written, and
// reports whether the connection can carry another request: not when
// either side asked to close, a response was cut short, or the request
// body was not read to its end (its rest would be taken for the next
// request). It gives the buffers back when empty.
func (c *ServerConn) Finish() (keepAlive bool) {
	r := c.request()
	if !r.body.done || r.failed || r.bodyFailed || !r.wroteFinal || r.closeAfter || r.tunnel {
		c.closing = true
	}
	c.served++
	c.headStart, c.headDone, c.waitStart = time.Time{}, time.Time{}, time.Time{}
	r.head.Reset()
	c.wr.release()
	c.rd.release()
	if c.closing {
		c.rd.drop()
	}
	return !c.closing
}

// Close gives back the buffers; the caller closes the connection.
func (c *ServerConn) Close() {
	c.closing = true
	c.wr.release()
	c.rd.drop()
}

// WriteError answers a request whose head could not be parsed (or did not
// arrive) with h and body, then the connection is done (Finish reports
// false).
func (c *ServerConn) WriteError(h *msg.Head, body []byte) error {
	r := c.request()
	r.head.Reset()
	r.body.done = true
	r.bodyEnd.Store(true)
	r.isHEAD, r.isCONNECT, r.http10, r.reqClose, r.expect100 = false, false, false, true, false
	h.Close = true
	err := r.WriteHead(h, body, true)
	c.closing = true
	return err
}

// Request is one request stream of a ServerConn: its head, its body as
// framed data, and the writing of its response. It is valid until
// ServerConn.Finish.
//
// The body may be read (ReadBody, ReadBodyBuffered, Trailers) on one
// goroutine while the response is written (WriteHead, WriteBody, EndBody)
// on another — a full-duplex exchange; BodyDone and CancelBody may be
// called from any goroutine. Everything else belongs to the goroutine
// serving the connection.
type Request struct {
	c    *ServerConn
	head msg.Head
	body body // the reading side's

	// bodyEnd mirrors body.done for the writing side, which decides from
	// it whether the connection can stay open.
	bodyEnd    atomic.Bool
	bodyFailed bool // reading side: the body could not be read whole

	sent100    bool
	wroteFinal bool
	failed     bool // writing side: a write failed or a response was cut short
	closeAfter bool // close the connection after the response
	tunnel     bool
	out        msg.BodyKind // framing of the response body on the wire
	outLeft    int64
	noBody     bool // the response carries no body (HEAD, 1xx, 204, 304)

	// What the response writer needs of the request head, kept because
	// the head's bytes may be overwritten once the body is read.
	isHEAD, isCONNECT, http10, reqClose, expect100 bool

	// The body wait (WaitBody): a second decoder validating the buffered
	// body ahead of the reading one, from offset vpos of the buffer.
	vbody body
	vpos  int
}

func (r *Request) start(lim Limits) {
	h := &r.head
	r.body.reset(h, lim)
	r.bodyEnd.Store(r.body.done)
	r.c.rd.canceled.Store(false) // a cancel was for an earlier request
	r.bodyFailed = false
	r.vbody.reset(h, lim)
	r.vpos = r.c.rd.r
	r.sent100, r.wroteFinal, r.failed, r.closeAfter, r.tunnel = false, false, false, false, false
	r.out, r.outLeft, r.noBody = msg.BodyNone, 0, false
	r.isHEAD, r.isCONNECT = string(h.Method) == "HEAD", string(h.Method) == "CONNECT"
	r.http10, r.reqClose, r.expect100 = h.Minor == 0, h.Close, h.Expect100
}

// WaitBody is one step of waiting for the whole request body in the
// buffer before anything is forwarded, so that a body with invalid framing
// is refused before a server sees a byte of the request. It validates what
// is buffered and, when the body is not complete, reads once more (bounded
// by the Client timeout) without moving the buffer. It reports done when
// the body is complete or fills the buffer (the rest is streamed and
// checked as it flows), and returns the framing *Error of an invalid body
// or the read error. Call Continue first when the client expects it.
func (r *Request) WaitBody() (done bool, err error) {
	vb := &r.vbody
	rd := &r.c.rd
	for {
		if vb.done {
			return true, nil
		}
		if rd.buf != nil && r.vpos < rd.w {
			src := (*rd.buf)[r.vpos:rd.w]
			switch vb.kind {
			case msg.BodyLength:
				k := min(vb.left, int64(len(src)))
				vb.left -= k
				r.vpos += int(k)
				vb.done = vb.left == 0
			case msg.BodyChunked:
				_, n, err := vb.dec.Decode(src)
				r.vpos += n
				switch {
				case err == io.EOF:
					vb.done = true
				case err == ErrIncomplete:
				case err != nil:
					r.bodyFailed = true
					return false, err
				default:
					continue
				}
			}
			if vb.done {
				return true, nil
			}
		}
		rd.setDeadline(r.c.o.Client)
		n, err := rd.fillAfter()
		switch {
		case errors.Is(err, errBufferFull):
			return true, nil
		case n > 0:
			continue
		case err == io.EOF:
			r.bodyFailed = true
			return false, ErrTruncated
		case err != nil:
			r.bodyFailed = true
			return false, err
		}
	}
}

// ReadBodyBuffered is ReadBody without reading from the connection: it
// returns (nil, nil) when no body data is buffered, and it leaves the head's
// slices valid.
func (r *Request) ReadBodyBuffered() ([]byte, error) {
	p, err := r.c.rd.readBodyFill(&r.body, r.c.o.Client, false)
	r.bodyRead(err)
	return p, err
}

// bodyRead records the outcome of a body read.
func (r *Request) bodyRead(err error) {
	if r.body.done && !r.bodyEnd.Load() {
		r.bodyEnd.Store(true) // also with the last data, before io.EOF
	}
	if err != nil && err != io.EOF {
		r.bodyFailed = true
	}
}

// Head is the request head. Its slices point into the stage's buffer: they
// stay valid until the first ReadBody (which may move the buffer's
// contents) — copy what is needed later.
func (r *Request) Head() *msg.Head { return &r.head }

// Continue sends "100 Continue" when the client asked for it and it was not
// sent yet; the session calls it when it decides to read the body.
func (r *Request) Continue() error {
	if !r.expect100 || r.sent100 || r.wroteFinal || r.bodyEnd.Load() {
		return nil
	}
	r.sent100 = true
	return r.c.wr.write(continue100, nil, nil)
}

var continue100 = []byte("HTTP/1.1 100 Continue\r\n\r\n")

// ReadBody returns the next run of the request body (valid until the next
// call), or io.EOF at its end, with the trailers then in Trailers.
func (r *Request) ReadBody() ([]byte, error) {
	p, err := r.c.rd.readBody(&r.body, r.c.o.Client)
	r.bodyRead(err)
	return p, err
}

// BodyDone reports whether the request body was read to its end.
func (r *Request) BodyDone() bool { return r.bodyEnd.Load() }

// ErrBodyCanceled is returned by a body read after CancelBody.
var ErrBodyCanceled = errors.New("h1: request body read canceled")

// CancelBody makes a ReadBody blocked on another goroutine return
// ErrBodyCanceled, and every later body read of this request: the session
// gave up on the rest of the body (a server answered early). The
// connection then closes after the response, since the rest of the body
// is unread.
func (r *Request) CancelBody() {
	r.c.rd.canceled.Store(true)
	r.c.rd.conn.SetReadDeadline(aLongTimeAgo)
}

// aLongTimeAgo is a deadline in the past: it wakes a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

// Trailers are the request's trailers, once ReadBody returned io.EOF.
func (r *Request) Trailers() msg.Fields { return r.body.dec.Trailers }

// WriteHead writes a response head: an interim 1xx (any number, before
// the final one), or the final head, followed by the first body data and,
// when end is set, the end of the body (then no WriteBody or EndBody may
// follow). h.Body and h.ContentLength say how the body is delimited; the
// stage chooses the wire framing: Content-Length when known, chunked for
// an HTTP/1.1 client otherwise, or delimited by close for HTTP/1.0.
// h.Close asks to close the connection after the response. A 101 with
// h.Upgrade switches the connection to a tunnel (see Tunnel). WriteHead
// modifies no field of h the caller keeps: it restores what it changes.
func (r *Request) WriteHead(h *msg.Head, body []byte, end bool) error {
	if h.Status < 200 && h.Status != 101 {
		if r.http10 {
			return nil // no 1xx to an HTTP/1.0 client
		}
		out := AppendResponseHead(r.c.wr.head(), h)
		r.c.wr.keep(out)
		return r.fail(r.c.wr.write(out, nil, nil))
	}
	r.wroteFinal = true
	r.noBody = r.isHEAD || h.Status == 204 || h.Status == 304 || h.Status == 101 ||
		(r.isCONNECT && h.Status < 300)
	saveBody, saveCL, saveMajor, saveMinor := h.Body, h.ContentLength, h.Major, h.Minor
	switch {
	case r.noBody:
		if h.Body == msg.BodyLength && r.isHEAD {
			h.ContentLength = saveCL
		} else if h.Body != msg.BodyNone {
			h.ContentLength = -1
		}
		h.Body = msg.BodyNone
		r.out = msg.BodyNone
	case h.Body == msg.BodyLength:
		r.out, r.outLeft = msg.BodyLength, h.ContentLength
	case h.Body == msg.BodyNone:
		h.Body, h.ContentLength = msg.BodyLength, 0
		r.out, r.outLeft = msg.BodyLength, 0
	case !r.http10:
		h.Body = msg.BodyChunked
		r.out = msg.BodyChunked
	default:
		h.Body = msg.BodyUntilClose
		r.out = msg.BodyUntilClose
		r.closeAfter = true
	}
	if h.Close || r.reqClose || r.c.closing || !r.bodyEnd.Load() {
		// An unread body would be taken for the next request.
		r.closeAfter = true
	}
	h.Major, h.Minor = 1, 1
	out := AppendResponseHead(r.c.wr.head(), h)
	h.Body, h.ContentLength, h.Major, h.Minor = saveBody, saveCL, saveMajor, saveMinor
	out = out[:len(out)-2]
	switch {
	case h.Status == 101 && h.Upgrade != nil:
		out = append(out, "Connection: upgrade\r\nUpgrade: "...)
		out = append(out, h.Upgrade...)
		out = append(out, "\r\n"...)
		r.tunnel = true
	case r.closeAfter:
		out = append(out, "Connection: close\r\n"...)
	case r.http10:
		out = append(out, "Connection: keep-alive\r\n"...)
	}
	out = append(out, "\r\n"...)
	r.c.wr.keep(out)
	if r.noBody {
		body = nil
	}
	if len(body) == 0 {
		if !end {
			return r.fail(r.c.wr.write(out, nil, nil))
		}
		return r.fail(r.endAfter(out))
	}
	if end && r.out != msg.BodyChunked {
		if err := r.count(len(body)); err != nil {
			return err
		}
		return r.fail(r.c.wr.write(out, body, nil))
	}
	if err := r.writeData(out, body); err != nil {
		return err
	}
	if end {
		return r.EndBody(nil)
	}
	return nil
}

// endAfter writes prefix (a head) and the end of an empty body.
func (r *Request) endAfter(prefix []byte) error {
	if r.out == msg.BodyChunked {
		prefix = AppendLastChunk(prefix, nil)
		r.c.wr.keep(prefix)
	}
	if r.out == msg.BodyLength && r.outLeft != 0 {
		r.failed = true
	}
	return r.c.wr.write(prefix, nil, nil)
}

func (r *Request) count(n int) error {
	if r.out == msg.BodyLength {
		if int64(n) > r.outLeft {
			r.failed = true
			return errors.New("h1: response body longer than its Content-Length")
		}
		r.outLeft -= int64(n)
	}
	return nil
}

// writeData writes prefix (a head, or nil) then p in the response framing.
func (r *Request) writeData(prefix, p []byte) error {
	if r.noBody || len(p) == 0 {
		if len(prefix) > 0 {
			return r.fail(r.c.wr.write(prefix, nil, nil))
		}
		return nil
	}
	if err := r.count(len(p)); err != nil {
		return err
	}
	if r.out != msg.BodyChunked {
		return r.fail(r.c.wr.write(prefix, p, nil))
	}
	if prefix == nil {
		prefix = r.c.wr.head()
	}
	prefix = AppendChunkHeader(prefix, len(p))
	r.c.wr.keep(prefix)
	return r.fail(r.c.wr.write(prefix, p, crlf))
}

// WriteBody writes a run of the response body.
func (r *Request) WriteBody(p []byte) error { return r.writeData(nil, p) }

// EndBody ends the response body, with trailers for a chunked one (they
// are dropped otherwise). A length-delimited body that got fewer bytes
// than announced marks the connection for closing.
func (r *Request) EndBody(trailers msg.Fields) error {
	switch r.out {
	case msg.BodyChunked:
		if r.noBody {
			return nil
		}
		out := AppendLastChunk(r.c.wr.head(), trailers)
		r.c.wr.keep(out)
		return r.fail(r.c.wr.write(out, nil, nil))
	case msg.BodyLength:
		if r.outLeft != 0 {
			r.failed = true
		}
	}
	return nil
}

func (r *Request) fail(err error) error {
	if err != nil {
		r.failed = true
	}
	return err
}

// Tunnel hands the client connection over after a 101 was written: reads
// return first what the stage had buffered past the request. The stage is
// done; Finish reports false.
func (r *Request) Tunnel() net.Conn {
	r.tunnel = true
	r.c.wr.release()
	return r.c.rd.tunnel()
}
