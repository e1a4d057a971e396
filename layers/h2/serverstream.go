package h2

import (
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/net/http2/hpack"

	"github.com/strata-proxy/strata/layers"
	"github.com/strata-proxy/strata/layers/hstream"
	"github.com/strata-proxy/strata/layers/msg"
)

// ServerStream is one request stream of a client connection served by the
// mux of strata's own, in the session's terms (session.HTTPStream): the
// request head built straight from the decoded header list, the body
// as the connection receives it, the response written as frames. The
// goroutine the StreamHandler runs on owns it; its body may be read on
// another while the response is written (full duplex).
type ServerStream struct {
	sc    *serverConn
	id    uint32
	head  msg.Head
	err   error
	start time.Time

	fields        []hpack.HeaderField // the head points into their strings
	trailerFields []hpack.HeaderField
	trailers      msg.Fields

	// Guarded by sc.mu.
	in           []byte // received body data not yet taken
	credit       int64  // body bytes taken and not yet credited to the stream
	gone         bool   // the connection forgot the stream (credited what it held)
	got          int64  // body bytes received
	recvWindow   int64
	sendWindow   int64
	remoteClosed bool  // the client ended its side (END_STREAM)
	eof          bool  // the body ended
	localClosed  bool  // strata ended its side
	rerr         error // the stream was reset or its connection ended
	cancelled    bool  // the session wants no more body
	cancel       func()

	readWake  chan struct{}
	writeWake chan struct{}

	// Owned by the reading goroutine.
	out      []byte // the data handed out last
	bodyErr  error
	bodyDone bool

	// Owned by the writing goroutine.
	expect     bool // the request expects 100-continue
	wroteFinal bool
	ended      bool
}

var serverStreams = sync.Pool{New: func() any {
	return &ServerStream{readWake: make(chan struct{}, 1), writeWake: make(chan struct{}, 1)}
}}

func newServerStream(sc *serverConn, id uint32) *ServerStream {
	st := serverStreams.Get().(*ServerStream)
	st.sc, st.id, st.start = sc, id, time.Now()
	return st
}

// release gives st back for reuse once nothing refers to it.
func (st *ServerStream) release() {
	clear(st.fields)
	clear(st.trailerFields)
	clear(st.trailers)
	*st = ServerStream{
		fields:        st.fields[:0],
		trailerFields: st.trailerFields[:0],
		trailers:      st.trailers[:0],
		in:            st.in[:0],
		out:           st.out[:0],
		head:          msg.Head{Fields: st.head.Fields[:0]},
		readWake:      st.readWake,
		writeWake:     st.writeWake,
	}
	if cap(st.in) > 64<<10 {
		st.in = nil
	}
	if cap(st.out) > 64<<10 {
		st.out = nil
	}
	select {
	case <-st.readWake:
	default:
	}
	select {
	case <-st.writeWake:
	default:
	}
	serverStreams.Put(st)
}

func (st *ServerStream) wakeReader() {
	select {
	case st.readWake <- struct{}{}:
	default:
	}
}

func (st *ServerStream) wakeWriter() {
	select {
	case st.writeWake <- struct{}{}:
	default:
	}
}

// resetLocked records that the stream ended abnormally. sc.mu is held.
func (st *ServerStream) resetLocked(err error) {
	if st.rerr == nil {
		st.rerr = err
		if st.cancel != nil {
			go st.cancel()
		}
	}
	st.wakeReader()
	st.wakeWriter()
}

// OnReset arranges for f to run (once, on a goroutine of its own) when
// the client resets the stream or its connection ends; it reports whether
// that already happened, in which case f runs too.
func (st *ServerStream) OnReset(f func()) {
	st.sc.mu.Lock()
	defer st.sc.mu.Unlock()
	st.cancel = f
	if st.rerr != nil {
		go f()
	}
}

// Err is why the request is refused (an *hstream.Error), or nil.
func (st *ServerStream) Err() error { return st.err }

// Start is when the stream's request head arrived.
func (st *ServerStream) Start() time.Time { return st.start }

// Ended reports whether the response was written whole.
func (st *ServerStream) Ended() bool { return st.ended }

// Close is a no-op: the stream's buffers go back when its handler returns.
func (st *ServerStream) Close() {}

// Head is the request head.
func (st *ServerStream) Head() *msg.Head { return &st.head }

// Continue answers 100 (Continue) to a request that expects it and whose
// body has not started yet: the session is about to read the body.
func (st *ServerStream) Continue() error {
	if !st.expect {
		return nil
	}
	st.expect = false
	sc := st.sc
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if st.remoteClosed || st.got > 0 {
		return nil // the client did not wait
	}
	if err := st.writable(); err != nil {
		return err
	}
	sc.hbuf.Reset()
	sc.henc.WriteField(hpack.HeaderField{Name: nameStatus, Value: "100"})
	return sc.writeHeaders(st.id, false)
}

// bufSize is how much body WaitBody waits for before forwarding starts.
func (st *ServerStream) bufSize() int {
	if b := st.sc.srv.sopts.Buffers; b != nil {
		return b.Size()
	}
	return 16 << 10
}

// WaitBody is one step of waiting for the whole body before anything is
// forwarded: done when the body is complete or fills a buffer.
func (st *ServerStream) WaitBody() (done bool, err error) {
	sc := st.sc
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if st.bodyErr != nil {
		return false, st.bodyErr
	}
	if st.eof || len(st.in) >= st.bufSize() {
		return true, nil
	}
	if err := st.waitData(); err != nil {
		return false, err
	}
	return st.eof || len(st.in) >= st.bufSize(), nil
}

// waitData waits once for body data, the end of the body or an error.
// sc.mu is held; it is released while waiting.
func (st *ServerStream) waitData() error {
	sc := st.sc
	var timer *time.Timer
	var timeout <-chan time.Time
	if d := sc.srv.sopts.Client; d > 0 {
		timer = time.NewTimer(d)
		defer timer.Stop()
		timeout = timer.C
	}
	for len(st.in) == 0 && !st.eof && st.rerr == nil {
		sc.mu.Unlock()
		select {
		case <-st.readWake:
		case <-timeout:
			sc.mu.Lock()
			st.bodyErr = os.ErrDeadlineExceeded
			return st.bodyErr
		}
		sc.mu.Lock()
	}
	if st.rerr != nil && !st.eof {
		// Reset before its end: what was received is not a body.
		st.bodyErr = st.readErr()
		return st.bodyErr
	}
	return st.checkLimits()
}

func (st *ServerStream) readErr() error {
	if st.cancelled {
		return errBodyCancelled
	}
	return &layers.StageError{Side: layers.SideClient, Stage: "http request", Phase: layers.PhaseData,
		Err: st.rerr}
}

var errBodyCancelled = errors.New("h2: request body cancelled")

// checkLimits applies MaxBody. sc.mu is held.
func (st *ServerStream) checkLimits() error {
	if m := st.sc.srv.sopts.MaxBody; m > 0 && st.got > m {
		st.bodyErr = hstream.ErrBodyTooLarge
		return st.bodyErr
	}
	return nil
}

// take hands out the data received so far. sc.mu is held.
func (st *ServerStream) take() ([]byte, error) {
	if st.bodyErr != nil {
		return nil, st.bodyErr
	}
	if len(st.in) == 0 {
		if st.eof {
			st.finishBody()
			return nil, io.EOF
		}
		return nil, nil
	}
	if err := st.checkLimits(); err != nil {
		return nil, err
	}
	p := st.in
	st.in, st.out = st.out[:0], p
	st.consumed(int64(len(p)))
	if st.eof {
		st.finishBody()
		return p, io.EOF
	}
	return p, nil
}

// consumed returns n bytes of the stream's body, taken or dropped, to the
// flow-control windows: at once to the connection's (its credit is sent
// in batches), and to the stream's when enough of it gathered. sc.mu is
// held.
func (st *ServerStream) consumed(n int64) {
	if n == 0 || st.gone {
		return
	}
	sc := st.sc
	sc.creditConn(n)
	st.credit += n
	if st.remoteClosed || st.rerr != nil {
		st.credit = 0 // the client sends no more on it
		return
	}
	if st.credit >= streamCreditBatch && sc.werr == nil && !sc.closed {
		sc.werr = sc.fr.WriteWindowUpdate(st.id, uint32(st.credit))
		st.recvWindow += st.credit
		st.credit = 0
	}
}

// streamCreditBatch is how much consumed body a stream gathers before its
// WINDOW_UPDATE.
const streamCreditBatch = streamRecvWindow / 8

// finishBody makes the trailers available. sc.mu is held.
func (st *ServerStream) finishBody() {
	if st.bodyDone {
		return
	}
	st.bodyDone = true
	for _, f := range st.trailerFields {
		if hstream.CheckTrailer(f.Name, f.Value) {
			st.trailers = append(st.trailers, msg.Field{Name: bytesOf(f.Name), Value: bytesOf(f.Value)})
		}
	}
}

// ReadBodyBuffered returns body data already received, never waiting:
// (nil, nil) when there is none, io.EOF with the last of it.
func (st *ServerStream) ReadBodyBuffered() ([]byte, error) {
	if st.head.Body == msg.BodyNone {
		return nil, io.EOF
	}
	st.sc.mu.Lock()
	defer st.sc.mu.Unlock()
	return st.take()
}

// ReadBody returns the next body data (valid until the next call), or
// io.EOF at the end.
func (st *ServerStream) ReadBody() ([]byte, error) {
	if st.head.Body == msg.BodyNone {
		return nil, io.EOF
	}
	st.sc.mu.Lock()
	defer st.sc.mu.Unlock()
	if p, err := st.take(); len(p) > 0 || err != nil {
		return p, err
	}
	if err := st.waitData(); err != nil {
		return nil, err
	}
	return st.take()
}

// BodyDone reports whether the request body was read to its end.
func (st *ServerStream) BodyDone() bool {
	if st.head.Body == msg.BodyNone {
		return true
	}
	st.sc.mu.Lock()
	defer st.sc.mu.Unlock()
	return st.bodyDone
}

// Trailers are the request's trailers once the body ended.
func (st *ServerStream) Trailers() msg.Fields {
	st.sc.mu.Lock()
	defer st.sc.mu.Unlock()
	return st.trailers
}

// CancelBody makes a body read blocked on another goroutine, and every
// later one, fail: the session wants no more of the body. Data the
// client still sends is dropped and credited back.
func (st *ServerStream) CancelBody() {
	sc := st.sc
	sc.mu.Lock()
	defer sc.mu.Unlock()
	st.cancelled = true
	n := int64(len(st.in))
	st.in = st.in[:0]
	if st.rerr == nil {
		st.rerr = errBodyCancelled
	}
	st.consumed(n)
	st.wakeReader()
}

var (
	errUpgrade = errors.New("h2: protocol switch on a multiplexed stream")
	nameStatus = ":status"
)

// WriteHead writes an interim (1xx) or the final response head, with the
// first body data and, when end is set, the end of the body.
func (st *ServerStream) WriteHead(h *msg.Head, body []byte, end bool) error {
	if h.Status == 101 {
		return errUpgrade
	}
	sc := st.sc
	sc.mu.Lock()
	if err := st.writable(); err != nil {
		sc.mu.Unlock()
		return err
	}
	sc.hbuf.Reset()
	var num [20]byte
	enc := sc.henc
	enc.WriteField(hpack.HeaderField{Name: nameStatus, Value: string(strconv.AppendInt(num[:0], int64(h.Status), 10))})
	for _, f := range h.Fields {
		if isConnectionSpecific(f.Name) {
			continue
		}
		enc.WriteField(hpack.HeaderField{Name: lowerName(f.Name), Value: string(f.Value)})
	}
	final := h.Status >= 200
	if final && h.ContentLength >= 0 && h.Status != 204 && h.Status != 304 &&
		(h.Body == msg.BodyLength || (h.Body == msg.BodyNone && string(st.head.Method) == "HEAD")) {
		enc.WriteField(hpack.HeaderField{Name: "content-length", Value: string(strconv.AppendInt(num[:0], h.ContentLength, 10))})
	}
	endNow := final && end && len(body) == 0
	err := sc.writeHeaders(st.id, endNow)
	if err == nil && endNow {
		st.closeLocal()
	}
	sc.mu.Unlock()
	if err != nil || !final {
		return err
	}
	st.wroteFinal = true
	if endNow {
		st.ended = true
		return nil
	}
	if len(body) > 0 || end {
		if err := st.writeData(body, end); err != nil {
			return err
		}
	}
	if end {
		st.ended = true
	}
	return nil
}

// writable says why nothing more may be written. sc.mu is held.
func (st *ServerStream) writable() error {
	switch {
	case st.sc.werr != nil:
		return st.sc.werr
	case st.sc.closed:
		return errConnClosed
	case st.rerr != nil && st.rerr != errBodyCancelled:
		return st.rerr
	case st.localClosed:
		return errors.New("h2: response already ended")
	}
	return nil
}

// closeLocal records that strata ended its side; a stream that the
// client ended too is closed from then on (RFC 9113 §5.1), whatever its
// handler still does. sc.mu is held.
func (st *ServerStream) closeLocal() {
	st.localClosed = true
	if st.remoteClosed {
		st.sc.forget(st)
	}
}

// writeData writes p as DATA frames within the flow-control windows,
// ending the stream after it when end is set.
func (st *ServerStream) writeData(p []byte, end bool) error {
	sc := st.sc
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for {
		if err := st.writable(); err != nil {
			return err
		}
		n := len(p)
		if n > 0 {
			allowed := min(st.sendWindow, sc.sendWindow, int64(sc.peerMaxFrame))
			if allowed <= 0 {
				if err := st.waitWindow(); err != nil {
					return err
				}
				continue
			}
			n = int(min(int64(n), allowed))
		}
		last := end && n == len(p)
		if err := sc.fr.WriteData(st.id, last, p[:n]); err != nil {
			sc.werr = err
			return err
		}
		st.sendWindow -= int64(n)
		sc.sendWindow -= int64(n)
		p = p[n:]
		if last {
			st.closeLocal()
		}
		if len(p) == 0 {
			return nil
		}
	}
}

// waitWindow waits for the client to open a window. sc.mu is held; it is
// released while waiting.
func (st *ServerStream) waitWindow() error {
	sc := st.sc
	var timeout <-chan time.Time
	if d := sc.srv.sopts.Client; d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	sc.mu.Unlock()
	defer sc.mu.Lock()
	select {
	case <-st.writeWake:
		return nil
	case <-sc.done:
		return errConnClosed
	case <-timeout:
		return os.ErrDeadlineExceeded
	}
}

// WriteBody writes response body data.
func (st *ServerStream) WriteBody(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	return st.writeData(p, false)
}

// EndBody ends the response body with its trailers.
func (st *ServerStream) EndBody(trailers msg.Fields) error {
	sc := st.sc
	n := 0
	for _, f := range trailers {
		if !isConnectionSpecific(f.Name) {
			n++
		}
	}
	if n == 0 {
		if err := st.writeData(nil, true); err != nil {
			return err
		}
		st.ended = true
		return nil
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if err := st.writable(); err != nil {
		return err
	}
	sc.hbuf.Reset()
	for _, f := range trailers {
		if isConnectionSpecific(f.Name) {
			continue
		}
		sc.henc.WriteField(hpack.HeaderField{Name: lowerName(f.Name), Value: string(f.Value)})
	}
	if err := sc.writeHeaders(st.id, true); err != nil {
		return err
	}
	st.closeLocal()
	st.ended = true
	return nil
}

// Tunnel is nil: a multiplexed stream does not switch protocols.
func (st *ServerStream) Tunnel() net.Conn { return nil }

// isConnectionSpecific reports fields that HTTP/2 does not carry (and
// content-length, which the stream writes itself).
func isConnectionSpecific(name []byte) bool {
	for _, n := range [...]string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Content-Length"} {
		if msg.EqualFold(name, n) {
			return true
		}
	}
	return false
}

// lowerName is name in lower case, as HTTP/2 carries field names; the
// common names cost no allocation.
func lowerName(name []byte) string {
	var buf [32]byte
	if len(name) > len(buf) {
		return strings.ToLower(string(name))
	}
	b := buf[:len(name)]
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	if s, ok := commonNames[string(b)]; ok {
		return s
	}
	return string(b)
}

// commonNames are response field names that need no allocation.
var commonNames = func() map[string]string {
	m := make(map[string]string)
	for _, n := range []string{"accept-ranges", "access-control-allow-origin", "age", "alt-svc", "cache-control",
		"content-disposition", "content-encoding", "content-language", "content-length", "content-location",
		"content-range", "content-security-policy", "content-type", "date", "etag", "expires", "grpc-message",
		"grpc-status", "last-modified", "link", "location", "server", "set-cookie", "strict-transport-security",
		"trailer", "vary", "via", "www-authenticate", "x-content-type-options", "x-frame-options", "x-request-id"} {
		m[n] = n
	}
	return m
}()

// bytesOf views s as bytes without copying; msg.Head slices are read-only.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
