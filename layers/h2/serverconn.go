package h2

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/strata-proxy/strata/layers/hstream"
	"github.com/strata-proxy/strata/layers/msg"
)

// The mux of strata's own (Impl "strata"): one goroutine per connection
// reads its frames and keeps its state (RFC 9113 stream states, flow
// control, SETTINGS, PING, GOAWAY); each request stream is handed to a
// StreamHandler on a goroutine of its own as a *ServerStream, without
// net/http in between. The stream's goroutine writes its response frames
// itself, under the connection's lock, through the guard, whose writer
// sends the frames of many streams in one write.

// StreamHandler serves one request stream; the stream is done when it
// returns.
type StreamHandler func(st *ServerStream)

// The receive windows strata offers: per stream, and for the connection.
const (
	streamRecvWindow = 1 << 20
	connRecvWindow   = 1 << 20
	maxWindow        = 1<<31 - 1
)

// serverConn is one HTTP/2 client connection of the mux.
type serverConn struct {
	srv     *Server
	conn    net.Conn // the guard
	fr      *http2.Framer
	handler StreamHandler
	log     *slog.Logger
	block   *headerBlock // the header block being read: the reader's

	mu           sync.Mutex
	streams      map[uint32]*ServerStream
	maxClientID  uint32 // the highest stream the client opened
	lastAccepted uint32 // the highest stream handed to a handler
	sendWindow   int64  // the connection's send window
	recvWindow   int64  // the connection's receive window
	recvCredit   int64  // received bytes consumed and not yet credited
	peerInitial  int64  // the client's SETTINGS_INITIAL_WINDOW_SIZE
	peerMaxFrame uint32
	henc         *hpack.Encoder
	hbuf         bytes.Buffer
	goingAway    bool  // a GOAWAY was sent: no new stream
	closed       bool  // the connection ended
	werr         error // a write failed
	idle         *time.Timer
	done         chan struct{} // closed when the connection ended
}

var (
	errConnClosed  = errors.New("h2: connection closed")
	errStreamReset = errors.New("h2: stream reset by the client")
)

// serveStreams runs the connection; see Server.ServeConn.
func (s *Server) serveStreams(conn net.Conn, sawPreface bool, handler StreamHandler) {
	sc := &serverConn{
		srv:          s,
		conn:         conn,
		handler:      handler,
		log:          s.log,
		streams:      make(map[uint32]*ServerStream),
		sendWindow:   65535,
		recvWindow:   connRecvWindow,
		peerInitial:  65535,
		peerMaxFrame: 16 << 10,
		done:         make(chan struct{}),
	}
	sc.henc = hpack.NewEncoder(&sc.hbuf)
	sc.fr = http2.NewFramer(conn, conn)
	sc.block = newHeaderBlock(s.o.MaxHeaderBytes)
	sc.fr.SetMaxReadFrameSize(maxFrameSize)
	sc.fr.SetReuseFrames()
	down := s.track(sc)
	defer s.untrack(sc)
	sc.serve(sawPreface, down)
}

func (sc *serverConn) serve(sawPreface, down bool) {
	defer sc.end()
	if !sawPreface {
		var buf [len(Preface)]byte
		if _, err := io.ReadFull(sc.conn, buf[:]); err != nil || string(buf[:]) != Preface {
			sc.mu.Lock()
			sc.goAway(http2.ErrCodeProtocol)
			sc.mu.Unlock()
			return
		}
	}
	sc.mu.Lock()
	err := sc.fr.WriteSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: sc.srv.o.MaxConcurrentStreams},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: streamRecvWindow},
		http2.Setting{ID: http2.SettingMaxFrameSize, Val: maxFrameSize},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: uint32(sc.srv.o.MaxHeaderBytes)},
	)
	if err == nil {
		err = sc.fr.WriteWindowUpdate(0, connRecvWindow-65535)
	}
	if sc.srv.o.IdleTimeout > 0 {
		sc.idle = time.AfterFunc(sc.srv.o.IdleTimeout, sc.onIdle)
	}
	sc.mu.Unlock()
	if err != nil {
		return
	}
	if down {
		sc.shutdown()
	}
	first := true
	for {
		f, err := sc.fr.ReadFrame()
		if err != nil {
			if !sc.readError(err) {
				return
			}
			continue
		}
		if first {
			if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
				sc.connError(http2.ErrCodeProtocol)
				return
			}
			first = false
		}
		if err := sc.process(f); err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				sc.mu.Lock()
				sc.resetStream(se.StreamID, se.Code)
				sc.mu.Unlock()
				continue
			}
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				sc.connError(http2.ErrCode(ce))
			}
			return
		}
	}
}

// readError handles what ReadFrame failed with; it reports whether the
// connection goes on.
func (sc *serverConn) readError(err error) bool {
	var se http2.StreamError
	switch {
	case errors.As(err, &se):
		sc.mu.Lock()
		defer sc.mu.Unlock()
		if id := se.StreamID; id&1 == 1 && id > sc.maxClientID {
			sc.maxClientID = id // the stream was opened, malformed
		}
		sc.resetStream(se.StreamID, se.Code)
		return true
	case errors.Is(err, http2.ErrFrameTooLarge):
		sc.connError(http2.ErrCodeFrameSize)
	default:
		var ce http2.ConnectionError
		if errors.As(err, &ce) {
			sc.connError(http2.ErrCode(ce))
		}
	}
	return false
}

// connError ends the connection with a GOAWAY carrying code.
func (sc *serverConn) connError(code http2.ErrCode) {
	sc.mu.Lock()
	sc.goAway(code)
	sc.mu.Unlock()
}

// goAway writes a GOAWAY. mu is held.
func (sc *serverConn) goAway(code http2.ErrCode) {
	sc.goingAway = true
	if sc.werr == nil {
		sc.werr = sc.fr.WriteGoAway(sc.maxClientID, code, nil)
	}
}

// end closes the connection and fails its streams.
func (sc *serverConn) end() {
	sc.mu.Lock()
	sc.closed = true
	if sc.idle != nil {
		sc.idle.Stop()
	}
	// Under the lock: a stream's handler may end and give the stream
	// back for reuse as soon as the lock is free.
	for _, st := range sc.streams {
		st.resetLocked(errConnClosed)
	}
	close(sc.done)
	sc.mu.Unlock()
	sc.conn.Close()
}

// onIdle ends a connection that has had no stream for the idle timeout.
func (sc *serverConn) onIdle() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.closed || len(sc.streams) > 0 {
		return
	}
	sc.goAway(http2.ErrCodeNo)
	sc.conn.SetReadDeadline(time.Unix(1, 0)) // the reader ends
}

// shutdown sends a graceful GOAWAY: streams in flight finish, the
// connection ends when none is left.
func (sc *serverConn) shutdown() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.closed || sc.goingAway {
		return
	}
	sc.goAway(http2.ErrCodeNo)
	if len(sc.streams) == 0 {
		sc.conn.SetReadDeadline(time.Unix(1, 0))
	}
}

// resetStream sends RST_STREAM and forgets the stream. mu is held.
func (sc *serverConn) resetStream(id uint32, code http2.ErrCode) {
	if sc.werr == nil {
		sc.werr = sc.fr.WriteRSTStream(id, code)
	}
	if st := sc.streams[id]; st != nil {
		st.resetLocked(errStreamReset)
		sc.forget(st)
	}
}

// forget removes st from the open streams. mu is held.
func (sc *serverConn) forget(st *ServerStream) {
	if sc.streams[st.id] != st {
		return
	}
	delete(sc.streams, st.id)
	// Data received and not consumed yet goes back to the connection
	// now; the handler may still read it.
	sc.creditConn(int64(len(st.in)))
	st.gone, st.credit = true, 0
	if len(sc.streams) == 0 {
		if sc.goingAway {
			sc.conn.SetReadDeadline(time.Unix(1, 0)) // the reader ends the connection
		} else if sc.idle != nil {
			sc.idle.Reset(sc.srv.o.IdleTimeout)
		}
	}
}

// creditConn returns n received bytes to the client's connection window.
// mu is held.
func (sc *serverConn) creditConn(n int64) {
	sc.recvCredit += n
	if sc.recvCredit >= connRecvWindow/4 && sc.werr == nil && !sc.closed {
		sc.werr = sc.fr.WriteWindowUpdate(0, uint32(sc.recvCredit))
		sc.recvWindow += sc.recvCredit
		sc.recvCredit = 0
	}
}

// process handles one frame from the client.
func (sc *serverConn) process(f http2.Frame) error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.werr != nil {
		return sc.werr
	}
	switch f := f.(type) {
	case *http2.HeadersFrame:
		done, err := sc.block.start(f)
		if err != nil || !done {
			return err
		}
		return sc.endBlock()
	case *http2.ContinuationFrame:
		done, err := sc.block.write(f.HeaderBlockFragment(), f.HeadersEnded())
		if err != nil || !done {
			return err
		}
		return sc.endBlock()
	case *http2.DataFrame:
		return sc.processData(f)
	case *http2.SettingsFrame:
		return sc.processSettings(f)
	case *http2.WindowUpdateFrame:
		return sc.processWindowUpdate(f)
	case *http2.PingFrame:
		if f.StreamID != 0 {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		if !f.IsAck() {
			sc.werr = sc.fr.WritePing(true, f.Data)
		}
		return sc.werr
	case *http2.RSTStreamFrame:
		id := f.StreamID
		if sc.idleID(id) {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		if st := sc.streams[id]; st != nil {
			st.resetLocked(errStreamReset)
			sc.forget(st)
		}
		return nil
	case *http2.PriorityFrame:
		if f.StreamID == f.StreamDep {
			return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeProtocol}
		}
		return nil
	case *http2.GoAwayFrame:
		if f.StreamID != 0 {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		sc.goingAway = true // the client opens no more streams
		return nil
	case *http2.PushPromiseFrame:
		return http2.ConnectionError(http2.ErrCodeProtocol)
	default:
		return nil // unknown extension frames are ignored
	}
}

// idleID reports whether id names a stream the client never opened.
func (sc *serverConn) idleID(id uint32) bool {
	return id > sc.maxClientID || id&1 == 0 && id != 0
}

func (sc *serverConn) processSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	if err := f.ForeachSetting(func(s http2.Setting) error { return s.Valid() }); err != nil {
		return err
	}
	err := f.ForeachSetting(func(s http2.Setting) error {
		switch s.ID {
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - sc.peerInitial
			sc.peerInitial = int64(s.Val)
			for _, st := range sc.streams {
				st.sendWindow += delta
				if st.sendWindow > maxWindow {
					return http2.ConnectionError(http2.ErrCodeFlowControl)
				}
				st.wakeWriter()
			}
		case http2.SettingMaxFrameSize:
			sc.peerMaxFrame = s.Val
		case http2.SettingHeaderTableSize:
			sc.henc.SetMaxDynamicTableSizeLimit(s.Val)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sc.werr = sc.fr.WriteSettingsAck()
	return sc.werr
}

func (sc *serverConn) processWindowUpdate(f *http2.WindowUpdateFrame) error {
	inc := int64(f.Increment)
	if f.StreamID == 0 {
		sc.sendWindow += inc
		if sc.sendWindow > maxWindow {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		for _, st := range sc.streams {
			st.wakeWriter()
		}
		return nil
	}
	if sc.idleID(f.StreamID) {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	st := sc.streams[f.StreamID]
	if st == nil {
		return nil // closed: it may still come
	}
	st.sendWindow += inc
	if st.sendWindow > maxWindow {
		return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeFlowControl}
	}
	st.wakeWriter()
	return nil
}

func (sc *serverConn) processData(f *http2.DataFrame) error {
	id := f.StreamID
	if sc.idleID(id) {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	n := int64(f.Length)
	sc.recvWindow -= n
	if sc.recvWindow < 0 {
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	st := sc.streams[id]
	if st == nil || st.remoteClosed {
		sc.creditConn(n) // not going to be consumed
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
	}
	st.recvWindow -= n
	if st.recvWindow < 0 {
		sc.creditConn(n)
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeFlowControl}
	}
	data := f.Data()
	// Padding is flow-controlled but never consumed: credit it now.
	if pad := n - int64(len(data)); pad > 0 {
		st.consumed(pad)
	}
	st.got += int64(len(data))
	if h := &st.head; st.err == nil && h.Body == msg.BodyLength && st.got > h.ContentLength {
		sc.creditConn(n)
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	if st.cancelled {
		st.consumed(int64(len(data)))
	} else {
		st.in = append(st.in, data...)
	}
	if f.StreamEnded() {
		if h := &st.head; st.err == nil && h.Body == msg.BodyLength && st.got != h.ContentLength {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
		st.remoteClosed = true
		st.eof = true
		if st.localClosed {
			sc.forget(st)
		}
	}
	st.wakeReader()
	return nil
}

// endBlock handles a header block decoded whole. mu is held.
func (sc *serverConn) endBlock() error {
	f := &sc.block.meta
	if sc.block.invalid {
		if id := f.StreamID; id&1 == 1 && id > sc.maxClientID {
			sc.maxClientID = id // the stream was opened, malformed
		}
		return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeProtocol}
	}
	return sc.processHeaders(f)
}

func (sc *serverConn) processHeaders(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	if id&1 == 0 {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if f.HasPriority() && f.Priority.StreamDep == id {
		if id > sc.maxClientID {
			sc.maxClientID = id
		}
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	if st := sc.streams[id]; st != nil {
		if st.remoteClosed {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
		}
		return sc.processTrailers(st, f)
	}
	if id <= sc.maxClientID {
		return http2.ConnectionError(http2.ErrCodeStreamClosed)
	}
	sc.maxClientID = id
	if sc.goingAway {
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeRefusedStream}
	}
	if uint32(len(sc.streams)) >= sc.srv.o.MaxConcurrentStreams {
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeRefusedStream}
	}
	st := newServerStream(sc, id)
	st.sendWindow = sc.peerInitial
	st.recvWindow = streamRecvWindow
	st.fields = append(st.fields[:0], f.Fields...)
	if f.Truncated {
		st.err = errHeaderListTooLarge
		st.head.Reset()
	} else {
		malformed, err := hstream.BuildHead(&st.head, st.fields, f.StreamEnded(), sc.srv.sopts)
		if malformed {
			st.release()
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
		st.err = err
		for i := range st.fields {
			if f := &st.fields[i]; f.Name == "expect" && strings.EqualFold(f.Value, "100-continue") {
				st.expect = true
			}
		}
	}
	st.remoteClosed = f.StreamEnded()
	st.eof = st.remoteClosed
	sc.streams[id] = st
	sc.lastAccepted = id
	if sc.idle != nil {
		sc.idle.Stop()
	}
	sc.srv.dispatch(st)
	return nil
}

// errHeaderListTooLarge refuses a request whose header list is past
// SETTINGS_MAX_HEADER_LIST_SIZE.
var errHeaderListTooLarge = &hstream.Error{Status: 431, Reason: "header list too large"}

func (sc *serverConn) processTrailers(st *ServerStream, f *http2.MetaHeadersFrame) error {
	if !f.StreamEnded() {
		return http2.StreamError{StreamID: st.id, Code: http2.ErrCodeProtocol}
	}
	for _, hf := range f.Fields {
		// Pseudo-header fields, and fields a trailer section must not
		// hold (RFC 9110 §6.5.1), make it malformed.
		if hf.IsPseudo() || !httpguts.ValidTrailerHeader(http.CanonicalHeaderKey(hf.Name)) {
			return http2.StreamError{StreamID: st.id, Code: http2.ErrCodeProtocol}
		}
	}
	if h := &st.head; st.err == nil && h.Body == msg.BodyLength && st.got != h.ContentLength {
		return http2.StreamError{StreamID: st.id, Code: http2.ErrCodeProtocol}
	}
	st.trailerFields = append(st.trailerFields[:0], f.Fields...)
	st.remoteClosed = true
	st.eof = true
	if st.localClosed {
		sc.forget(st)
	}
	st.wakeReader()
	return nil
}

// runStream runs the handler for st and closes the stream after it.
func (sc *serverConn) runStream(st *ServerStream) {
	sc.callHandler(st)
	sc.mu.Lock()
	if sc.streams[st.id] == st {
		switch {
		case !st.localClosed:
			sc.resetStream(st.id, http2.ErrCodeInternal) // a response cut off
		case !st.remoteClosed:
			// The response is whole; the rest of the request is not
			// wanted.
			sc.resetStream(st.id, http2.ErrCodeNo)
		default:
			sc.forget(st)
		}
	}
	sc.mu.Unlock()
	st.release()
}

// callHandler runs the handler for st; a panic in it is logged and its
// stream reset (below, as a response cut off), as net/http servers do.
func (sc *serverConn) callHandler(st *ServerStream) {
	defer func() {
		if p := recover(); p != nil {
			sc.log.Error("http2 stream handler panicked", slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
		}
	}()
	sc.handler(st)
}

// writeHeaders writes the header block in sc.hbuf for stream id, split
// into CONTINUATION frames as the client's frame size needs. mu is held.
func (sc *serverConn) writeHeaders(id uint32, end bool) error {
	block := sc.hbuf.Bytes()
	max := int(sc.peerMaxFrame)
	first := true
	for first || len(block) > 0 {
		frag := block
		if len(frag) > max {
			frag = frag[:max]
		}
		block = block[len(frag):]
		var err error
		if first {
			err = sc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: frag, EndStream: end, EndHeaders: len(block) == 0})
		} else {
			err = sc.fr.WriteContinuation(id, len(block) == 0, frag)
		}
		if err != nil {
			sc.werr = err
			return err
		}
		first = false
	}
	return nil
}
