package h2

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"github.com/strata-proxy/strata/layers"
	"github.com/strata-proxy/strata/layers/msg"
)

// StreamOptions are a session's settings for one stream.
type StreamOptions struct {
	// Buffers hands out the response body buffer (a default pool when
	// nil).
	Buffers *layers.BufferPool
	// WriteTimeout bounds each write of request body data, which waits
	// for the server's flow-control window (0: none). When it passes the
	// stream is reset.
	WriteTimeout time.Duration
}

var defaultBuffers = layers.NewBufferPool(0)

// Stream is one request and its response on a connection shared with other
// streams: the session's outbound stage for an HTTP/2 server. It writes the
// request head and body (the head's fields as HTTP/2 fields, "te: trailers"
// always, since strata forwards trailers; the body through a pipe the
// connection's writer drains under the server's flow control; trailers
// after it), and reads the response head and body in the session's form.
//
// The session's goroutine owns a Stream; WriteBody and EndBody may run on
// another goroutine (a request body sent while the response is read), and
// Conn().Close from any. A read that times out leaves the stream as it was:
// reading again waits for the same data. Close ends the stream (a reset if
// it is not complete) and gives its place on the connection back; it never
// closes the shared connection.
type Stream struct {
	c    *Client
	sc   *sharedConn
	o    StreamOptions
	view streamConn

	ctx    context.Context
	cancel context.CancelFunc // aborts the stream; safe from any goroutine

	// The request body side: written by the goroutine sending the body
	// (pr is closed by aborts, from any goroutine).
	pr      atomic.Pointer[io.PipeReader]
	pw      *io.PipeWriter
	trailer http.Header // the request's Trailer map: x/net's to read and write once sent
	ended   [][2]string // the trailers EndBody received (copies), for the body's reader
	wtimer  *time.Timer
	sentAll atomic.Bool // EndBody closed the body

	// The response side: the session's goroutine.
	isHead    bool
	interim   chan interim   // 1xx responses, from the connection's reader
	final     *roundTrip     // RoundTrip's result, held while interim ones go first
	ihead     msg.Head       // the last interim head
	rt        chan roundTrip // RoundTrip's result; nil once taken
	resp      *http.Response
	head      msg.Head
	responded atomic.Bool
	buf       *[]byte
	rd        chan readResult
	reading   bool // a read of the response body is under way
	eof       bool
	trailers  msg.Fields
	broken    bool
	closed    bool
}

// interim is a 1xx response other than 100 (which the session answers
// itself), as x/net's reader reports it.
type interim struct {
	status int
	header textproto.MIMEHeader
}

// maxInterim bounds the interim responses waiting for the session; more
// are dropped (they are advisory).
const maxInterim = 4

// got1xx receives an interim response on the connection's reader, before
// the final one.
func (s *Stream) got1xx(status int, header textproto.MIMEHeader) error {
	if status == 100 {
		return nil
	}
	select {
	case s.interim <- interim{status, header}:
	default:
	}
	return nil
}

type roundTrip struct {
	resp *http.Response
	err  error
}

type readResult struct {
	n   int
	err error
}

func newStream(c *Client, sc *sharedConn, o StreamOptions) *Stream {
	if o.Buffers == nil {
		o.Buffers = defaultBuffers
	}
	s := &Stream{c: c, sc: sc, o: o}
	s.view.s = s
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// Errors of the stream.
var (
	errNoTunnel      = errors.New("h2: CONNECT cannot be forwarded to an HTTP/2 server")
	errNoRequest     = errors.New("h2: no request was sent on the stream")
	errNoBody        = errors.New("h2: body data for a request without a body")
	errStreamClosed  = errors.New("h2: stream closed")
	errNotByteStream = errors.New("h2: a stream is not a byte stream")
	errReadTimeout   = fmt.Errorf("h2: waiting for the server: %w", os.ErrDeadlineExceeded)
	errWriteTimeout  = fmt.Errorf("h2: sending the request body: %w", os.ErrDeadlineExceeded)
)

// WriteRequest sends the request head h with the first body data and, when
// end is set, the end of the body. An offer to switch protocols (Upgrade)
// is not passed on: HTTP/2 has no such switch, and the offer is the
// server's to ignore (RFC 9110 §7.8), so the request goes as a plain one.
// CONNECT is refused (errNoTunnel): a stream is not a byte stream here.
func (s *Stream) WriteRequest(h *msg.Head, body []byte, end bool) error {
	if s.rt != nil || s.resp != nil {
		return errors.New("h2: a stream carries one request")
	}
	if string(h.Method) == http.MethodConnect {
		s.broken = true
		return errNoTunnel
	}
	hasBody := h.Body == msg.BodyChunked || (h.Body == msg.BodyLength && h.ContentLength > 0)
	if hasBody && (h.Body == msg.BodyChunked || h.HasTrailers) {
		s.trailer = make(http.Header)
	}
	req := s.request(h)
	s.isHead = req.Method == http.MethodHead
	if hasBody {
		pr, pw := io.Pipe()
		s.pr.Store(pr)
		s.pw = pw
		req.Body = &bodyReader{pr: pr, s: s}
		req.ContentLength = -1
		if h.Body == msg.BodyLength {
			req.ContentLength = h.ContentLength
		}
		// The names announced in the head's Trailer field are the keys
		// x/net announces in its own; EndBody fills in the values.
		req.Trailer = s.trailer
	} else {
		s.sentAll.Store(true)
	}
	s.rt = make(chan roundTrip, 1)
	cc, rt := s.sc.cc, s.rt
	go func() {
		resp, err := cc.RoundTrip(req)
		rt <- roundTrip{resp, err}
	}()
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

// request converts h into the request x/net sends: pseudo-header fields
// from the head, the fields (framing and connection-specific ones are the
// stage's own business), no default User-Agent, no Accept-Encoding.
func (s *Stream) request(h *msg.Head) *http.Request {
	path, query, hasQuery := strings.Cut(string(h.Path), "?")
	if path == "" {
		path = "/"
	}
	authority := string(h.Authority)
	if authority == "" {
		// An HTTP/1.0 request may name no host; HTTP/2 wants one.
		authority = s.sc.conn.RemoteAddr().String()
	}
	req := &http.Request{
		Method:     string(h.Method),
		URL:        &url.URL{Scheme: s.sc.scheme(), Host: authority, Opaque: path, RawQuery: query, ForceQuery: hasQuery && query == ""},
		Host:       authority,
		Proto:      "HTTP/2.0",
		ProtoMajor: 2,
		Header:     make(http.Header, len(h.Fields)+2),
	}
	s.interim = make(chan interim, maxInterim)
	req = req.WithContext(httptrace.WithClientTrace(s.ctx, &httptrace.ClientTrace{Got1xxResponse: s.got1xx}))
	hdr := req.Header
	ua := false
	for _, f := range h.Fields {
		if skipField(f.Name) {
			continue
		}
		name := lowerString(f.Name)
		switch name {
		case "user-agent":
			ua = true
		case "trailer":
			if s.trailer != nil {
				for _, n := range strings.Split(string(f.Value), ",") {
					if n = strings.TrimSpace(n); n != "" {
						s.trailer[http.CanonicalHeaderKey(n)] = nil
					}
				}
			}
			continue
		}
		hdr[name] = append(hdr[name], string(f.Value))
	}
	if !ua {
		hdr["User-Agent"] = nil // x/net would add its own
	}
	hdr["Te"] = []string{"trailers"}
	return req
}

// skipField reports the fields HTTP/2 does not carry (RFC 9113 §8.2.2)
// or that the stage writes itself (framing, :authority).
func skipField(name []byte) bool {
	for _, n := range [...]string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding",
		"Upgrade", "Host", "Content-Length", "TE"} {
		if msg.EqualFold(name, n) {
			return true
		}
	}
	return false
}

func lowerString(b []byte) string {
	out := make([]byte, len(b))
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return string(out)
}

func (sc *sharedConn) scheme() string {
	if _, ok := sc.conn.(interface{ ConnectionState() tls.ConnectionState }); ok {
		return "https"
	}
	return "http"
}

// WriteBody sends request body data. It returns once the connection's
// writer has taken all of p. When the writer no longer wants the body —
// the server answered with an error status before reading it all, or the
// stream ended — the data is dropped without an error: ReadHead tells
// which, and the server's answer is forwarded (an early 413).
func (s *Stream) WriteBody(p []byte) error {
	if s.pw == nil {
		return errNoBody
	}
	if d := s.o.WriteTimeout; d > 0 {
		if s.wtimer == nil {
			pr := s.pr.Load()
			s.wtimer = time.AfterFunc(d, func() { pr.CloseWithError(errWriteTimeout) })
		} else {
			s.wtimer.Reset(d)
		}
		defer s.wtimer.Stop()
	}
	if _, err := s.pw.Write(p); err != nil {
		if err == io.ErrClosedPipe {
			return nil // x/net closed the body: it wants no more (see above)
		}
		return layers.Wrap(layers.SideServer, "h2", layers.PhaseData, err)
	}
	return nil
}

// EndBody ends the request body, with trailers.
func (s *Stream) EndBody(trailers msg.Fields) error {
	if s.pw == nil {
		return nil
	}
	if s.trailer != nil {
		// The body's reader puts them in the request's trailer map: that
		// map is x/net's while it writes the head.
		for _, f := range trailers {
			if !skipField(f.Name) {
				s.ended = append(s.ended, [2]string{http.CanonicalHeaderKey(string(f.Name)), string(f.Value)})
			}
		}
	}
	s.pw.Close()
	s.sentAll.Store(true)
	return nil
}

// bodyReader is the request body as x/net reads it, on its writer's
// goroutine: at the end of the body it fills the request's trailer map
// with the trailers EndBody received (the pipe orders EndBody's write of
// them before this read).
type bodyReader struct {
	pr *io.PipeReader
	s  *Stream
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.pr.Read(p)
	if err == io.EOF {
		s := b.s
		for _, f := range s.ended {
			s.trailer[f[0]] = append(s.trailer[f[0]], f[1])
		}
		s.ended = nil
	}
	return n, err
}

func (b *bodyReader) Close() error { return b.pr.Close() }

// ReadHead returns the next response head, waiting at most timeout (0:
// no limit): an interim one (1xx other than 100; call again), or the
// final one. A timeout leaves the stream waiting: call again. The errors
// wrap layers.ErrUnprocessed when the server refused the stream before
// processing it (REFUSED_STREAM, a GOAWAY below it), which allows sending
// it again.
func (s *Stream) ReadHead(timeout time.Duration) (*msg.Head, error) {
	if s.resp != nil {
		return &s.head, nil
	}
	if s.rt == nil {
		return nil, errNoRequest
	}
	select {
	case im := <-s.interim:
		return s.interimHead(im), nil
	default:
	}
	var r roundTrip
	switch {
	case s.final != nil:
		r = *s.final
	case timeout > 0:
		t := time.NewTimer(timeout)
		select {
		case r = <-s.rt:
			t.Stop()
		case im := <-s.interim:
			t.Stop()
			return s.interimHead(im), nil
		case <-t.C:
			return nil, errReadTimeout
		}
	default:
		select {
		case r = <-s.rt:
		case im := <-s.interim:
			return s.interimHead(im), nil
		}
	}
	// The reader reports interim responses before the final one: those
	// still waiting go first.
	select {
	case im := <-s.interim:
		s.final = &r
		return s.interimHead(im), nil
	default:
	}
	s.rt, s.final = nil, nil
	if r.err != nil {
		s.broken = true
		return nil, roundTripError(r.err)
	}
	s.resp = r.resp
	s.responded.Store(true)
	s.convertHead()
	return &s.head, nil
}

// interimHead is im in the session's form, valid until the next read.
func (s *Stream) interimHead(im interim) *msg.Head {
	h := &s.ihead
	h.Reset()
	h.Status = im.status
	h.Major, h.Minor = 2, 0
	h.Body = msg.BodyNone
	appendFields(h, http.Header(im.header))
	return h
}

// appendFields adds hdr's fields to h, names sorted (a map has no order; a
// stable one keeps logs and tests repeatable), leaving out those with no
// meaning in HTTP/2 and framing.
func appendFields(h *msg.Head, hdr http.Header) {
	names := make([]string, 0, len(hdr))
	for name := range hdr {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if slices.Contains(connectionFields[:], name) {
			continue
		}
		for _, v := range hdr[name] {
			h.Fields = append(h.Fields, msg.Field{Name: []byte(name), Value: []byte(v)})
		}
	}
}

// roundTripError names x/net's failure, marking those that leave the
// request unprocessed.
func roundTripError(err error) error {
	var se http2.StreamError
	isReset := errors.As(err, &se)
	unprocessed := isReset && se.Code == http2.ErrCodeRefusedStream
	// x/net's sentinels for these are unexported: its own retry logic
	// (canRetryError) tests the same ones, and nothing else.
	switch err.Error() {
	case "http2: Transport received Server's graceful shutdown GOAWAY", "http2: client conn not usable":
		unprocessed = true
	}
	switch {
	case unprocessed:
		err = fmt.Errorf("%w: %w", layers.ErrUnprocessed, err)
	case isReset:
		err = fmt.Errorf("%w by the server: %w", layers.ErrStreamReset, err)
	}
	return layers.Wrap(layers.SideServer, "h2", layers.PhaseNone, err)
}

// connectionFields are those that have no meaning in HTTP/2 and that the
// session must not see as the response's.
var connectionFields = [...]string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Content-Length"}

// convertHead fills s.head from the response.
func (s *Stream) convertHead() {
	resp, h := s.resp, &s.head
	h.Reset()
	h.Status = resp.StatusCode
	h.Major, h.Minor = 2, 0
	appendFields(h, resp.Header)
	if len(resp.Trailer) > 0 {
		h.HasTrailers = true
		announced := make([]string, 0, len(resp.Trailer))
		for name := range resp.Trailer {
			announced = append(announced, name)
		}
		slices.Sort(announced)
		h.Fields = append(h.Fields, msg.Field{Name: []byte("Trailer"), Value: []byte(strings.Join(announced, ", "))})
	}
	switch {
	case s.isHead || resp.StatusCode == 204 || resp.StatusCode == 304:
		h.Body, h.ContentLength = msg.BodyNone, -1
		if s.isHead || resp.StatusCode == 304 {
			h.ContentLength = resp.ContentLength
		}
		s.eof = true
	case resp.ContentLength == 0 && resp.Header["Content-Length"] == nil:
		// x/net's sign of a HEADERS frame that ended the stream: the
		// response is whole (a gRPC "trailers-only" answer), and its end
		// goes out with its head.
		h.Body, h.ContentLength = msg.BodyLength, 0
		s.eof = true
	case resp.ContentLength >= 0 && !h.HasTrailers:
		// With trailers announced the body goes on as chunked: an HTTP/1
		// client can only receive trailers in a chunked message.
		h.Body, h.ContentLength = msg.BodyLength, resp.ContentLength
	default:
		h.Body, h.ContentLength = msg.BodyChunked, -1
	}
}

// Responded reports whether the response head arrived.
func (s *Stream) Responded() bool { return s.responded.Load() }

// ReadBodyBuffered returns io.EOF for a response without a body; the
// stream holds no data of its own between reads, so it is otherwise
// (nil, nil).
func (s *Stream) ReadBodyBuffered() ([]byte, error) {
	if s.resp == nil {
		return nil, errNoRequest
	}
	if s.eof {
		return nil, io.EOF
	}
	return nil, nil
}

// ReadBody returns the next response body data (valid until the next
// call), or io.EOF with the last of it, waiting at most timeout (0: no
// limit). A timeout leaves the read under way: call again.
func (s *Stream) ReadBody(timeout time.Duration) ([]byte, error) {
	if s.resp == nil {
		return nil, errNoRequest
	}
	if s.eof {
		return nil, io.EOF
	}
	if s.closed {
		return nil, errStreamClosed
	}
	if !s.reading {
		if s.buf == nil {
			s.buf = s.o.Buffers.Get()
			s.rd = make(chan readResult, 1)
		}
		s.reading = true
		go s.fill(*s.buf)
	}
	var r readResult
	if timeout > 0 {
		t := time.NewTimer(timeout)
		select {
		case r = <-s.rd:
			t.Stop()
		case <-t.C:
			return nil, errReadTimeout
		}
	} else {
		r = <-s.rd
	}
	s.reading = false
	p := (*s.buf)[:r.n]
	switch {
	case r.err == io.EOF:
		s.eof = true
		s.takeTrailers()
		return p, io.EOF
	case r.err != nil:
		s.broken = true
		return p, layers.Wrap(layers.SideServer, "h2", layers.PhaseData, r.err)
	}
	return p, nil
}

// fill reads the response body once into buf, on a goroutine of its own
// so that the session's wait can time out without losing data.
func (s *Stream) fill(buf []byte) {
	body := s.resp.Body
	for {
		n, err := body.Read(buf)
		if n > 0 || err != nil {
			s.rd <- readResult{n, err}
			return
		}
	}
}

func (s *Stream) takeTrailers() {
	if len(s.resp.Trailer) == 0 {
		return
	}
	names := make([]string, 0, len(s.resp.Trailer))
	for name := range s.resp.Trailer {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		for _, v := range s.resp.Trailer[name] {
			s.trailers = append(s.trailers, msg.Field{Name: []byte(name), Value: []byte(v)})
		}
	}
}

// Trailers are the response's trailers once ReadBody returned io.EOF.
func (s *Stream) Trailers() msg.Fields { return s.trailers }

// Reusable reports whether the exchange completed cleanly both ways. The
// stream itself is never reused: the session closes it, which gives its
// place on the shared connection back.
func (s *Stream) Reusable() bool { return !s.broken && s.eof && s.sentAll.Load() }

// Alive reports whether the stream has not failed.
func (s *Stream) Alive() bool { return !s.broken && !s.closed }

// Tunnel is never called: an HTTP/2 server never switches protocols and
// WriteRequest refuses CONNECT. It returns the stream's handle.
func (s *Stream) Tunnel() net.Conn { return &s.view }

// Conn is the stream's handle for the session: closing it, or setting a
// deadline in the past, aborts the stream (RST_STREAM) from any goroutine,
// leaving the shared connection and its other streams alone.
func (s *Stream) Conn() net.Conn { return &s.view }

// abort resets the stream and wakes its waits: the body writer, the
// RoundTrip and a body read.
func (s *Stream) abort() {
	s.cancel()
	if pr := s.pr.Load(); pr != nil {
		pr.CloseWithError(errStreamClosed)
	}
}

// Close ends the stream: one that did not complete is reset. Its buffer
// and its place on the connection are given back. It is idempotent.
func (s *Stream) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	s.abort()
	if s.rt != nil {
		// The RoundTrip returns at once on the canceled context.
		r := s.final
		if r == nil {
			rr := <-s.rt
			r = &rr
		}
		if r.resp != nil {
			r.resp.Body.Close()
		}
		s.rt, s.final = nil, nil
	}
	if s.resp != nil {
		s.resp.Body.Close()
	}
	if s.reading {
		<-s.rd // the canceled stream ends the read
		s.reading = false
	}
	if s.buf != nil {
		s.o.Buffers.Put(s.buf)
		s.buf = nil
	}
	s.c.release(s.sc)
	return nil
}

// streamConn is a Stream's handle as the session holds its server
// connection: it aborts the stream and carries the shared connection's
// addresses. It is not a byte stream (Read and Write fail).
type streamConn struct{ s *Stream }

func (c *streamConn) Read([]byte) (int, error)  { return 0, errNotByteStream }
func (c *streamConn) Write([]byte) (int, error) { return 0, errNotByteStream }

// Close aborts the stream.
func (c *streamConn) Close() error {
	c.s.abort()
	return nil
}

func (c *streamConn) LocalAddr() net.Addr  { return c.s.sc.conn.LocalAddr() }
func (c *streamConn) RemoteAddr() net.Addr { return c.s.sc.conn.RemoteAddr() }

// SetDeadline aborts the stream when t is in the past; the stage's reads
// and writes take their own timeouts, so other deadlines change nothing.
func (c *streamConn) SetDeadline(t time.Time) error {
	if !t.IsZero() && !t.After(time.Now()) {
		c.s.abort()
	}
	return nil
}

func (c *streamConn) SetReadDeadline(t time.Time) error  { return c.SetDeadline(t) }
func (c *streamConn) SetWriteDeadline(t time.Time) error { return c.SetDeadline(t) }
