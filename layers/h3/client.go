package h3

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/strata-proxy/strata/layers"
	"github.com/strata-proxy/strata/layers/msg"
)

// ClientOptions configure the HTTP/3 outbound stage to one server.
type ClientOptions struct {
	// Address is the server's host:port (UDP).
	Address string
	// TLS verifies the server (ServerName, RootCAs) and may present a
	// client certificate; NextProtos is replaced by "h3".
	TLS *tls.Config
	// Backoff is how long the server counts as unreachable over QUIC after
	// a failed dial, so that sessions fall back at once instead of each
	// waiting for a dial to fail (30 s when 0).
	Backoff time.Duration
	// Buffers hands out the response body buffers (a default pool when
	// nil).
	Buffers *layers.BufferPool
}

// ErrUnreachable is returned by Client.Stream while the server cannot be
// reached over QUIC: the caller falls back to HTTP/2 or HTTP/1 over TCP.
var ErrUnreachable = errors.New("h3: server unreachable over QUIC")

const defaultBackoff = 30 * time.Second

var defaultBuffers = layers.NewBufferPool(0)

// Client keeps one QUIC connection to a server and opens a request stream
// on it for each session that asks (quic-go's http3 ClientConn). It is
// safe for concurrent use.
type Client struct {
	o  ClientOptions
	tr *http3.Transport

	mu   sync.Mutex // guards the fields below
	qc   *quic.Conn
	cc   *http3.ClientConn
	down time.Time // until then the server counts as unreachable
	dial chan struct{}
}

// NewClient returns the stage for the server o.Address; it dials on the
// first Stream.
func NewClient(o ClientOptions) *Client {
	if o.Backoff <= 0 {
		o.Backoff = defaultBackoff
	}
	if o.Buffers == nil {
		o.Buffers = defaultBuffers
	}
	tc := o.TLS.Clone()
	if tc == nil {
		tc = &tls.Config{}
	}
	tc.NextProtos = []string{http3.NextProtoH3}
	o.TLS = tc
	return &Client{o: o, tr: &http3.Transport{}}
}

// Stream returns a new request stream on the shared connection, dialing it
// within ctx when there is none (or it died). While the server is
// unreachable it returns an error wrapping ErrUnreachable at once.
func (c *Client) Stream(ctx context.Context) (*ClientStream, error) {
	cc, err := c.conn(ctx)
	if err != nil {
		return nil, err
	}
	return newClientStream(c, cc), nil
}

// conn returns the live ClientConn, dialing one at a time.
func (c *Client) conn(ctx context.Context) (*http3.ClientConn, error) {
	for {
		c.mu.Lock()
		if c.qc != nil && c.qc.Context().Err() == nil {
			cc := c.cc
			c.mu.Unlock()
			return cc, nil
		}
		if until := c.down; time.Now().Before(until) {
			c.mu.Unlock()
			return nil, fmt.Errorf("%w: %s (retried after %s)", ErrUnreachable, c.o.Address, until.Format(time.TimeOnly))
		}
		if wait := c.dial; wait != nil {
			c.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		done := make(chan struct{})
		c.dial = done
		c.mu.Unlock()

		qc, err := quic.DialAddr(ctx, c.o.Address, c.o.TLS, nil)
		c.mu.Lock()
		c.dial = nil
		close(done)
		if err != nil {
			// No handshake within the connect timeout counts as
			// unreachable too: UDP may be filtered on the way.
			c.down = time.Now().Add(c.o.Backoff)
			c.mu.Unlock()
			return nil, fmt.Errorf("%w: %s: %v", ErrUnreachable, c.o.Address, err)
		}
		c.qc, c.cc, c.down = qc, c.tr.NewClientConn(qc), time.Time{}
		cc := c.cc
		c.mu.Unlock()
		return cc, nil
	}
}

// detach forgets cc when it is still the shared connection, so that the
// next Stream dials a new one; streams on cc run on, and quic-go closes it
// once they are done (after a GOAWAY) or it is closed already.
func (c *Client) detach(cc *http3.ClientConn) {
	c.mu.Lock()
	if c.cc == cc {
		c.qc, c.cc = nil, nil
	}
	c.mu.Unlock()
}

// connUnusable reports quic-go's refusal to open a stream on a connection
// (after the server's GOAWAY, or once it is closing): the request was not
// sent. quic-go does not export the error type, only its text.
func connUnusable(err error) bool {
	return strings.HasPrefix(err.Error(), "http3: conn unusable")
}

// Conns is 1 while a QUIC connection to the server is open, else 0.
func (c *Client) Conns() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.qc != nil && c.qc.Context().Err() == nil {
		return 1
	}
	return 0
}

// Close closes the shared connection; streams on it fail.
func (c *Client) Close() error {
	c.mu.Lock()
	qc := c.qc
	c.qc, c.cc = nil, nil
	c.mu.Unlock()
	if qc != nil {
		return qc.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeNoError), "")
	}
	return nil
}

// ClientStream is one request and its response on the shared connection:
// the session's outbound stage for an HTTP/3 server. The session's
// goroutine owns it; WriteBody and EndBody may run on another goroutine,
// and Conn().Close or a past deadline from any. Close ends the stream (a
// reset when it is not complete); it never closes the shared connection.
type ClientStream struct {
	c    *Client
	cc   *http3.ClientConn
	view streamConn

	ctx    context.Context
	cancel context.CancelFunc

	pw      *io.PipeWriter
	trailer http.Header // the request's Trailer map, filled by EndBody

	isHead    bool
	sent      bool           // WriteRequest started the exchange
	rt        chan roundTrip // RoundTrip's result; nil once taken
	resp      *http.Response
	head      msg.Head
	responded bool
	buf       *[]byte
	rd        chan bodyRead
	reading   bool
	eof       bool
	trailers  msg.Fields
	closed    bool
}

// bodyRead is one read of the response body.
type bodyRead struct {
	n   int
	err error
}

type roundTrip struct {
	resp *http.Response
	err  error
}

func newClientStream(c *Client, cc *http3.ClientConn) *ClientStream {
	s := &ClientStream{c: c, cc: cc, rd: make(chan bodyRead, 1)}
	s.view.s = s
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// Errors of a client stream.
var (
	errNoTunnel     = errors.New("h3: a protocol upgrade or CONNECT cannot be forwarded to an HTTP/3 server")
	errOneRequest   = errors.New("h3: a stream carries one request")
	errNoBody       = errors.New("h3: body data for a request without a body")
	errStreamClosed = errors.New("h3: stream closed")
	errReadTimeout  = fmt.Errorf("h3: waiting for the server: %w", os.ErrDeadlineExceeded)
)

// connectionSpecific are the fields HTTP/3 forbids (RFC 9114 §4.2); the
// session drops them already, the stage makes sure.
var connectionSpecific = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Host", "Content-Length"}

// WriteRequest sends the request head h with the first body data and, when
// end is set, the end of the body.
func (s *ClientStream) WriteRequest(h *msg.Head, body []byte, end bool) error {
	if s.sent {
		return errOneRequest
	}
	if h.Upgrade != nil || string(h.Method) == http.MethodConnect {
		return errNoTunnel
	}
	authority := string(h.Authority)
	if authority == "" {
		authority = s.c.o.Address
	}
	path := string(h.Path)
	if path == "" {
		path = "/"
	}
	req, err := http.NewRequestWithContext(s.ctx, string(h.Method), "https://"+authority+path, nil)
	if err != nil {
		return fmt.Errorf("h3: request %s %s: %w", h.Method, path, err)
	}
	req.Host = authority
	req.RequestURI = ""
	for _, f := range h.Fields {
		name := http.CanonicalHeaderKey(string(f.Name))
		if slices.Contains(connectionSpecific, name) || (name == "Te" && string(f.Value) != "trailers") {
			continue
		}
		req.Header[name] = append(req.Header[name], string(f.Value))
	}
	s.isHead = req.Method == http.MethodHead
	hasBody := h.Body == msg.BodyChunked || (h.Body == msg.BodyLength && h.ContentLength > 0)
	if hasBody {
		pr, pw := io.Pipe()
		s.pw = pw
		req.Body = pr
		req.ContentLength = -1
		if h.Body == msg.BodyLength {
			req.ContentLength = h.ContentLength
		}
		if h.Body == msg.BodyChunked || h.HasTrailers {
			s.trailer = make(http.Header)
			req.Trailer = s.trailer
		}
	} else if h.Body == msg.BodyLength {
		req.ContentLength = 0
		req.Body = http.NoBody
	}
	s.sent = true
	s.rt = make(chan roundTrip, 1)
	go func() {
		resp, err := s.cc.RoundTrip(req)
		s.rt <- roundTrip{resp, err}
	}()
	if !hasBody {
		if len(body) > 0 {
			return errNoBody
		}
		return nil
	}
	if len(body) > 0 {
		if err := s.WriteBody(body); err != nil {
			return err
		}
	}
	if end {
		return s.EndBody(nil)
	}
	return nil
}

// WriteBody sends request body data; it returns once the stream has taken
// all of p (p may be reused after).
func (s *ClientStream) WriteBody(p []byte) error {
	if s.pw == nil {
		return errNoBody
	}
	_, err := s.pw.Write(p)
	return err
}

// EndBody ends the request body, with its trailers.
func (s *ClientStream) EndBody(trailers msg.Fields) error {
	if s.pw == nil {
		return nil
	}
	for _, f := range trailers {
		if s.trailer != nil {
			name := http.CanonicalHeaderKey(string(f.Name))
			s.trailer[name] = append(s.trailer[name], string(f.Value))
		}
	}
	return s.pw.Close()
}

// ReadHead waits (at most timeout, none when 0) for the final response
// head. A timeout leaves the stream as it was.
func (s *ClientStream) ReadHead(timeout time.Duration) (*msg.Head, error) {
	if s.resp != nil {
		return &s.head, nil
	}
	if !s.sent {
		return nil, errors.New("h3: no request was sent on the stream")
	}
	if s.rt == nil {
		return nil, errStreamClosed // the exchange failed before a response
	}
	var tc <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		tc = t.C
	}
	var r roundTrip
	select {
	case r = <-s.rt:
		s.rt = nil // taken
	case <-tc:
		return nil, errReadTimeout
	}
	if r.err != nil {
		if connUnusable(r.err) {
			s.c.detach(s.cc)
		}
		return nil, fmt.Errorf("h3: %s: %w", s.c.o.Address, r.err)
	}
	s.resp, s.responded = r.resp, true
	s.buildHead()
	return &s.head, nil
}

// buildHead turns the response into the session's form.
func (s *ClientStream) buildHead() {
	resp, h := s.resp, &s.head
	h.Reset()
	h.Status = resp.StatusCode
	h.Major, h.Minor = 3, 0
	names := make([]string, 0, len(resp.Header))
	for name := range resp.Header {
		names = append(names, name)
	}
	slices.Sort(names) // a map has no order; a stable one keeps logs and tests repeatable
	declared := int64(-1)
	for _, name := range names {
		switch name {
		case "Content-Length":
			if v := resp.Header.Get(name); v != "" {
				declared, _ = strconv.ParseInt(v, 10, 64)
			}
			continue
		case "Trailer":
			h.HasTrailers = true
		}
		for _, v := range resp.Header[name] {
			h.Fields = append(h.Fields, msg.Field{Name: []byte(name), Value: []byte(v)})
		}
	}
	if len(resp.Trailer) > 0 {
		h.HasTrailers = true
	}
	switch {
	case s.isHead || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified || resp.StatusCode < 200:
		h.Body, h.ContentLength = msg.BodyNone, declared
	case resp.ContentLength >= 0 && !h.HasTrailers:
		// With trailers announced the body goes on as chunked: an HTTP/1
		// client can only receive trailers in a chunked message.
		h.Body, h.ContentLength = msg.BodyLength, resp.ContentLength
	default:
		h.Body, h.ContentLength = msg.BodyChunked, -1
	}
}

// ReadBodyBuffered returns nil: what quic-go has buffered is only reached
// by a read, which may wait.
func (s *ClientStream) ReadBodyBuffered() ([]byte, error) { return nil, nil }

// ReadBody returns the next response body data, io.EOF at the end; it
// waits at most timeout (none when 0). The data is valid until the next
// call; a timeout leaves the read pending for the next call.
func (s *ClientStream) ReadBody(timeout time.Duration) ([]byte, error) {
	if s.resp == nil || s.eof || s.head.Body == msg.BodyNone {
		return nil, io.EOF
	}
	if s.buf == nil {
		s.buf = s.c.o.Buffers.Get()
	}
	buf := *s.buf
	if !s.reading {
		s.reading = true
		body := s.resp.Body
		go func() {
			n, err := body.Read(buf)
			s.rd <- bodyRead{n, err}
		}()
	}
	var tc <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		tc = t.C
	}
	var r bodyRead
	select {
	case r = <-s.rd:
		s.reading = false
	case <-tc:
		return nil, errReadTimeout
	}
	if r.err == io.EOF {
		s.eof = true
		s.collectTrailers()
		if r.n > 0 {
			return buf[:r.n], nil
		}
		return nil, io.EOF
	}
	if r.err != nil {
		return nil, fmt.Errorf("h3: %s: response body: %w", s.c.o.Address, r.err)
	}
	return buf[:r.n], nil
}

func (s *ClientStream) collectTrailers() {
	for name, vv := range s.resp.Trailer {
		for _, v := range vv {
			s.trailers = append(s.trailers, msg.Field{Name: []byte(name), Value: []byte(v)})
		}
	}
}

// Trailers are the response's trailers once ReadBody returned io.EOF.
func (s *ClientStream) Trailers() msg.Fields { return s.trailers }

// Responded reports whether the response head arrived.
func (s *ClientStream) Responded() bool { return s.responded }

// Reusable is false: the stream carries one exchange; the connection it
// rides is shared by the Client, not pooled by the session.
func (s *ClientStream) Reusable() bool { return false }

// Alive is false: a stream is never idle.
func (s *ClientStream) Alive() bool { return false }

// Tunnel is nil: HTTP/3 has no protocol switch to forward.
func (s *ClientStream) Tunnel() net.Conn { return nil }

// Conn is the handle the session aborts the stream through: Close, or a
// deadline in the past, cancels it.
func (s *ClientStream) Conn() net.Conn { return &s.view }

// Close ends the stream, resetting it when the exchange is not complete,
// and gives back its buffer. It is idempotent.
func (s *ClientStream) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	s.cancel()
	if s.pw != nil {
		s.pw.CloseWithError(errStreamClosed)
	}
	if s.rt != nil { // RoundTrip ends with the cancelled stream
		if r := <-s.rt; r.resp != nil {
			r.resp.Body.Close()
		}
		s.rt = nil
	}
	if s.resp != nil {
		s.resp.Body.Close()
	}
	if s.reading {
		<-s.rd // the read ends with the cancelled stream
		s.reading = false
	}
	if s.buf != nil {
		s.c.o.Buffers.Put(s.buf)
		s.buf = nil
	}
	return nil
}

// streamConn is a ClientStream as a net.Conn for the session's aborts.
type streamConn struct{ s *ClientStream }

func (v *streamConn) Read([]byte) (int, error)           { return 0, errNotByteStream }
func (v *streamConn) Write([]byte) (int, error)          { return 0, errNotByteStream }
func (v *streamConn) Close() error                       { v.s.cancel(); return nil }
func (v *streamConn) LocalAddr() net.Addr                { return nil }
func (v *streamConn) RemoteAddr() net.Addr               { return nil }
func (v *streamConn) SetReadDeadline(t time.Time) error  { return v.SetDeadline(t) }
func (v *streamConn) SetWriteDeadline(t time.Time) error { return v.SetDeadline(t) }

func (v *streamConn) SetDeadline(t time.Time) error {
	if !t.IsZero() && !t.After(time.Now()) {
		v.s.cancel()
	}
	return nil
}
