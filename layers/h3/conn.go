package h3

import (
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/strata-proxy/strata/layers"
)

// conn is one QUIC connection: its Initiator, shared read-only by the
// connection's streams once serveConn has filled it in.
type conn struct {
	l  *Listener
	in *layers.Initiator
	qc *quic.Conn // set by serveConn before any stream is served
}

// serveHTTP serves one request stream: http3.Server calls it in the
// stream's own goroutine.
func (l *Listener) serveHTTP(w http.ResponseWriter, r *http.Request) {
	c, _ := r.Context().Value(connKey{}).(*conn)
	cur := l.handler.Load()
	if c == nil || cur == nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	l.inflight.Add(1)
	defer l.inflight.Add(-1)
	l.streams.Add(1)
	probeBody(r)
	fe := cur.h.Frontend
	if c.handshakeDone() {
		fe.ServeStream(c.in, w, r)
		return
	}
	c.serveEarly(fe, w, r)
}

// handshakeDone reports whether the QUIC handshake has completed: until
// then every request was sent in 0-RTT data and could be a replay (crypto/
// tls's HandshakeComplete turns true as soon as the server has sent its
// Finished, too early for this).
func (c *conn) handshakeDone() bool {
	select {
	case <-c.qc.HandshakeComplete():
		return true
	default:
		return false
	}
}

// serveEarly serves a request that arrived in 0-RTT data (RFC 8470). Only
// a safe method without a declared body length is served before the
// handshake completes, marked "Early-Data: 1" for the backend; if the
// backend answers 425 (Too Early), the stage waits for the handshake and
// sends the request again (or answers 425 itself when body bytes were
// already consumed and cannot be sent again).
// Anything else waits for the handshake first, which a server may always
// do (RFC 8470 §5.1): no request that could change state is ever acted on
// from replayable data.
func (c *conn) serveEarly(fe Frontend, w http.ResponseWriter, r *http.Request) {
	if !safeMethod(r.Method) || r.ContentLength > 0 {
		if !c.waitHandshake(r) {
			return
		}
		fe.ServeStream(c.in, w, r)
		return
	}
	r.Header.Set("Early-Data", "1")
	body := &countingBody{ReadCloser: r.Body}
	r.Body = body
	ew := &earlyWriter{w: w, header: make(http.Header)}
	fe.ServeStream(c.in, ew, r)
	if !ew.tooEarly {
		return
	}
	if body.n > 0 {
		// The body is gone; the client has to send it again itself.
		w.WriteHeader(http.StatusTooEarly)
		return
	}
	if !c.waitHandshake(r) {
		return
	}
	r2 := r.Clone(r.Context())
	r2.Header.Del("Early-Data")
	r2.Body = http.NoBody
	cs := c.qc.ConnectionState().TLS
	r2.TLS = &cs
	fe.ServeStream(c.in, w, r2)
}

// waitHandshake waits for the connection's handshake; false when the
// request or the connection ended first.
func (c *conn) waitHandshake(r *http.Request) bool {
	select {
	case <-c.qc.HandshakeComplete():
		return true
	case <-r.Context().Done():
		return false
	}
}

// bodyProbeWait is how long probeBody waits for the first body read.
const bodyProbeWait = 50 * time.Millisecond

// probeBody settles whether a request without a content-length has a
// body. HTTP/3 has no flag for "no body" on HEADERS (HTTP/2's END_STREAM),
// so quic-go hands every request a body, and a GET would reach an HTTP/1
// backend as a chunked message. As net/http's Transport does for its own
// outgoing requests, it reads once, for a moment: end of stream means no
// body (ContentLength 0); data is kept and read again first; no answer yet
// leaves the length unknown, the read still pending for the session.
func probeBody(r *http.Request) {
	if r.ContentLength >= 0 || r.Body == nil || r.Body == http.NoBody {
		return
	}
	ch := make(chan readResult, 1)
	body := r.Body
	go func() {
		var b [1]byte
		n, err := body.Read(b[:])
		ch <- readResult{b[:n], err}
	}()
	t := time.NewTimer(bodyProbeWait)
	defer t.Stop()
	select {
	case res := <-ch:
		if len(res.b) == 0 && res.err == io.EOF {
			r.ContentLength = 0
			return
		}
		r.Body = &probedBody{first: res.b, err: res.err, rest: body}
	case <-t.C:
		r.Body = &probedBody{pending: ch, rest: body}
	}
}

// readResult is one Read's outcome.
type readResult struct {
	b   []byte
	err error
}

// probedBody is a request body whose first read probeBody made: that
// read's result comes first (waited for when still pending), then the
// rest of the body.
type probedBody struct {
	pending <-chan readResult
	first   []byte
	err     error
	rest    io.ReadCloser
}

func (p *probedBody) Read(b []byte) (int, error) {
	if p.pending != nil {
		res := <-p.pending
		p.pending, p.first, p.err = nil, res.b, res.err
	}
	if len(p.first) > 0 {
		n := copy(b, p.first)
		p.first = p.first[n:]
		return n, nil
	}
	if p.err != nil {
		return 0, p.err
	}
	return p.rest.Read(b)
}

func (p *probedBody) Close() error { return p.rest.Close() }

// countingBody counts the request body bytes read.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

// safeMethod reports the methods RFC 9110 §9.2.1 defines as safe, the
// only ones served from early data.
func safeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	return false
}

// earlyWriter holds back the response to an early request until its status
// is known: a 425 from the backend is swallowed so the request can be sent
// again after the handshake; any other status goes through unchanged.
type earlyWriter struct {
	w         http.ResponseWriter
	header    http.Header // used until the status is known
	committed bool
	tooEarly  bool
}

func (e *earlyWriter) Header() http.Header {
	if e.committed {
		return e.w.Header()
	}
	return e.header
}

func (e *earlyWriter) WriteHeader(status int) {
	if e.committed || e.tooEarly {
		return
	}
	if status == http.StatusTooEarly {
		e.tooEarly = true
		return
	}
	if status >= 100 && status < 200 {
		h := e.w.Header()
		for k, v := range e.header {
			h[k] = v
		}
		e.w.WriteHeader(status)
		for k := range h {
			delete(h, k)
		}
		return
	}
	e.committed = true
	h := e.w.Header()
	for k, v := range e.header {
		h[k] = v
	}
	e.w.WriteHeader(status)
}

func (e *earlyWriter) Write(p []byte) (int, error) {
	if !e.committed && !e.tooEarly {
		e.WriteHeader(http.StatusOK)
	}
	if e.tooEarly {
		return len(p), nil // the 425's body is dropped with it
	}
	return e.w.Write(p)
}

// Flush sends what is buffered, once the status is known.
func (e *earlyWriter) Flush() {
	if e.committed {
		if f, ok := e.w.(http.Flusher); ok {
			f.Flush()
		}
	}
}

// Unwrap lets http.ResponseController reach the stream's own writer.
func (e *earlyWriter) Unwrap() http.ResponseWriter { return e.w }

// quicNetConn presents a QUIC connection where the Initiator wants a
// net.Conn. It carries no bytes itself (the streams do): Read and Write
// fail, Close closes the whole connection with H3_NO_ERROR, and a deadline
// in the past — the session's way to abort everything — closes it with
// H3_REQUEST_CANCELLED; later deadlines are left to QUIC's idle timeout.
type quicNetConn quic.Conn

var errNotByteStream = errors.New("h3: a QUIC connection is not a byte stream; use its request streams")

func (q *quicNetConn) qc() *quic.Conn                     { return (*quic.Conn)(q) }
func (q *quicNetConn) Read([]byte) (int, error)           { return 0, errNotByteStream }
func (q *quicNetConn) Write([]byte) (int, error)          { return 0, errNotByteStream }
func (q *quicNetConn) LocalAddr() net.Addr                { return q.qc().LocalAddr() }
func (q *quicNetConn) RemoteAddr() net.Addr               { return q.qc().RemoteAddr() }
func (q *quicNetConn) SetReadDeadline(t time.Time) error  { return q.SetDeadline(t) }
func (q *quicNetConn) SetWriteDeadline(t time.Time) error { return q.SetDeadline(t) }

func (q *quicNetConn) Close() error {
	return q.qc().CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeNoError), "")
}

func (q *quicNetConn) SetDeadline(t time.Time) error {
	if !t.IsZero() && !t.After(time.Now()) {
		return q.qc().CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeRequestCanceled), "aborted")
	}
	return nil
}
