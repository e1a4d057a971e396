package h1

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/strata-proxy/strata/layers"
	"github.com/strata-proxy/strata/layers/msg"
)

// probeSize is the small read buffer a connection waits in while it holds
// no pooled buffer (between messages), so that an idle keep-alive
// connection holds none (DESIGN.md §5). A whole typical request head fits.
// It is allocated on first use: a client connection that can wait on its
// socket (waitInPool) never needs one.
const probeSize = 1024

// errBufferFull is returned when a message part (a head, a trailer section,
// a chunk-size line) does not fit the connection's buffer.
var errBufferFull = &Error{Status: 431, Reason: "message part larger than the buffer"}

// ErrTruncated is returned by the body readers when the connection ends
// before the body does.
var ErrTruncated = errors.New("h1: connection closed inside a message body")

// reader is the read side of an HTTP/1 connection: a pooled buffer, taken
// when data arrives and given back when empty. buf[r:w] is what was read
// and not consumed yet. The goroutine serving the connection owns it.
type reader struct {
	conn  net.Conn
	pool  *layers.BufferPool
	buf   *[]byte // nil when empty
	r, w  int
	err   error // a read error kept for the next fill (ServerConn.WaitIdle)
	probe *[probeSize]byte
	raw   syscall.RawConn // the TCP socket under conn, when nothing buffers in between
	// canceled makes body reads fail (Request.CancelBody, from another
	// goroutine); checked after each read deadline is armed, so that a
	// cancel racing with the arming still wakes the read.
	canceled atomic.Bool
	// waitInPool: the wait for a message's first bytes reads straight into
	// a pooled buffer, given back when nothing came; set when that wait is
	// short (ServerOptions.Grace) and the rest of it is done on the socket
	// (raw) without a buffer.
	waitInPool bool
}

func (rd *reader) buffered() []byte {
	if rd.buf == nil {
		return nil
	}
	return (*rd.buf)[rd.r:rd.w]
}

// release gives the buffer back when nothing unconsumed is left in it. The
// caller must hold no slice into it.
func (rd *reader) release() {
	if rd.buf != nil && rd.r == rd.w {
		rd.pool.Put(rd.buf)
		rd.buf, rd.r, rd.w = nil, 0, 0
	}
}

// drop gives the buffer back whatever it holds.
func (rd *reader) drop() {
	if rd.buf != nil {
		rd.pool.Put(rd.buf)
		rd.buf, rd.r, rd.w = nil, 0, 0
	}
}

// rawSocket is the TCP socket under conn when nothing between them keeps
// bytes of its own that the socket would not show (a *net.TCPConn, or TLS
// straight over one), or nil.
func rawSocket(conn net.Conn) syscall.RawConn {
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	tcp, ok := conn.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tcp.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// waitReadable waits, holding no buffer, until the socket has bytes to
// read, is closed by the peer or fails, or the read deadline passes. The
// caller must know that nothing is buffered above the socket: for TLS, a
// read that returned nothing since the last record was consumed.
func (rd *reader) waitReadable() error {
	return rd.raw.Read(readable)
}

// setDeadline arms the read deadline d from now (0: none).
func (rd *reader) setDeadline(d time.Duration) {
	if d > 0 {
		rd.conn.SetReadDeadline(time.Now().Add(d))
	} else {
		rd.conn.SetReadDeadline(time.Time{})
	}
}

// fill reads once more. With nothing buffered it waits in the probe and
// takes a pooled buffer only when bytes arrived; otherwise it reads into
// the pooled buffer after what is there, moving the unconsumed bytes to its
// start when the end is reached (slices into the buffer then go stale). It
// returns errBufferFull when the unconsumed bytes fill the whole buffer.
func (rd *reader) fill(useProbe bool) (int, error) {
	if err := rd.err; err != nil {
		rd.err = nil
		return 0, err
	}
	if rd.buf != nil && rd.r == rd.w {
		rd.r, rd.w = 0, 0
		if useProbe {
			rd.drop()
		}
	}
	if rd.buf == nil && useProbe && rd.waitInPool {
		rd.buf = rd.pool.Get()
		n, err := rd.conn.Read(*rd.buf)
		rd.r, rd.w = 0, n
		if n == 0 {
			rd.drop()
		}
		return n, err
	}
	if rd.buf == nil && useProbe {
		if rd.probe == nil {
			rd.probe = new([probeSize]byte)
		}
		n, err := rd.conn.Read(rd.probe[:])
		if n > 0 {
			rd.buf = rd.pool.Get()
			rd.r, rd.w = 0, copy(*rd.buf, rd.probe[:n])
		}
		return n, err
	}
	if rd.buf == nil {
		rd.buf = rd.pool.Get()
		rd.r, rd.w = 0, 0
	}
	b := *rd.buf
	if rd.w == len(b) {
		if rd.r == 0 {
			return 0, errBufferFull
		}
		rd.w = copy(b, b[rd.r:rd.w])
		rd.r = 0
	}
	n, err := rd.conn.Read(b[rd.w:])
	rd.w += n
	return n, err
}

// fillAfter reads once into the room after the buffered bytes, never
// moving them (slices into the buffer stay valid). It returns
// errBufferFull when there is no room left.
func (rd *reader) fillAfter() (int, error) {
	if rd.buf == nil {
		rd.buf = rd.pool.Get()
		rd.r, rd.w = 0, 0
	}
	b := *rd.buf
	if rd.w == len(b) {
		return 0, errBufferFull
	}
	n, err := rd.conn.Read(b[rd.w:])
	rd.w += n
	return n, err
}

// body is the framing state of one message body being read.
type body struct {
	left int64 // BodyLength: bytes still to come
	dec  ChunkedDecoder
	kind msg.BodyKind
	done bool
}

func (b *body) reset(h *msg.Head, lim Limits) {
	b.kind, b.left, b.done = h.Body, h.ContentLength, false
	if b.kind == msg.BodyChunked {
		b.dec.Limits = lim
		b.dec.Reset()
	}
	if b.kind == msg.BodyNone || (b.kind == msg.BodyLength && b.left <= 0) {
		b.done = true
	}
}

// readBody returns the next run of body data, a sub-slice of the buffer
// valid until the next call on rd, or io.EOF once the body (and its
// trailers, in b.dec.Trailers) is complete. Each blocking read is bounded
// by idle (0: none).
func (rd *reader) readBody(b *body, idle time.Duration) ([]byte, error) {
	return rd.readBodyFill(b, idle, true)
}

// readBodyFill is readBody; without fill it never reads from the
// connection (so slices into the buffer stay valid) and returns (nil, nil)
// when nothing decodable is buffered.
func (rd *reader) readBodyFill(b *body, idle time.Duration, fill bool) ([]byte, error) {
	if b.done {
		return nil, io.EOF
	}
	for {
		switch b.kind {
		case msg.BodyLength:
			if rd.r < rd.w {
				k := int(min(b.left, int64(rd.w-rd.r)))
				p := (*rd.buf)[rd.r : rd.r+k]
				rd.r += k
				b.left -= int64(k)
				if b.left == 0 {
					b.done = true
				}
				return p, nil
			}
		case msg.BodyChunked:
			if rd.buf != nil {
				data, n, err := b.dec.Decode((*rd.buf)[rd.r:rd.w])
				rd.r += n
				switch {
				case err == io.EOF:
					b.done = true
					return data, io.EOF
				case err == nil:
					return data, nil
				case err != ErrIncomplete:
					return nil, err
				}
			}
		case msg.BodyUntilClose:
			if rd.r < rd.w {
				p := (*rd.buf)[rd.r:rd.w]
				rd.r = rd.w
				return p, nil
			}
		default:
			b.done = true
			return nil, io.EOF
		}
		if !fill {
			return nil, nil
		}
		rd.setDeadline(idle)
		if rd.canceled.Load() {
			return nil, ErrBodyCanceled
		}
		n, err := rd.fill(false)
		if n > 0 {
			continue
		}
		if err == io.EOF && b.kind == msg.BodyUntilClose {
			b.done = true
			return nil, io.EOF
		}
		if err == io.EOF {
			return nil, ErrTruncated
		}
		if err == nil {
			continue
		}
		return nil, err
	}
}

// writer is the write side of an HTTP/1 connection: a pooled scratch
// buffer for heads and chunk-size lines, held only while a message is
// being written, and a reused vector for writev.
type writer struct {
	conn    net.Conn
	pool    *layers.BufferPool
	scratch *[]byte
	vec     [3][]byte
	bufs    net.Buffers
	idle    time.Duration // write deadline per write (0: none)
}

// head returns the scratch buffer, emptied, taking it from the pool.
func (wr *writer) head() []byte {
	if wr.scratch == nil {
		wr.scratch = wr.pool.Get()
	}
	return (*wr.scratch)[:0]
}

// keep stores b, grown from head(), back as the scratch buffer when it
// still is the pool's (a head larger than a buffer was reallocated).
func (wr *writer) keep(b []byte) {
	if cap(b) == cap(*wr.scratch) {
		*wr.scratch = b[:cap(b)]
	}
}

func (wr *writer) release() {
	if wr.scratch != nil {
		wr.pool.Put(wr.scratch)
		wr.scratch = nil
	}
}

// smallWrite is the size under which a head and its body data are copied
// into one buffer and written with one Write rather than a writev: cheaper
// for small bodies, and one TLS record instead of several.
const smallWrite = 2048

// write sends a, b and c (any may be empty) as one write: a copy for small
// payloads, a writev otherwise. a must be the scratch buffer or a static
// slice.
func (wr *writer) write(a, b, c []byte) error {
	if wr.idle > 0 {
		wr.conn.SetWriteDeadline(time.Now().Add(wr.idle))
	}
	if len(b)+len(c) <= smallWrite && wr.scratch != nil && len(a)+len(b)+len(c) <= cap(*wr.scratch) &&
		len(a) > 0 && &a[0] == &(*wr.scratch)[0] {
		out := append(a, b...)
		out = append(out, c...)
		_, err := wr.conn.Write(out)
		return err
	}
	wr.bufs = wr.vec[:0]
	for _, p := range [3][]byte{a, b, c} {
		if len(p) > 0 {
			wr.bufs = append(wr.bufs, p)
		}
	}
	_, err := wr.bufs.WriteTo(wr.conn)
	wr.bufs = nil
	wr.vec = [3][]byte{}
	return err
}

// bufferedConn is a connection handed over as a tunnel: its first reads
// return what the HTTP/1 reader had buffered past the last message.
type bufferedConn struct {
	net.Conn
	pending []byte
}

func (c *bufferedConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite shuts the sending side when the connection can.
func (c *bufferedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// tunnel hands the connection over: a copy of the buffered bytes, the
// buffer given back, deadlines cleared.
func (rd *reader) tunnel() net.Conn {
	var pending []byte
	if b := rd.buffered(); len(b) > 0 {
		pending = append([]byte(nil), b...)
	}
	rd.drop()
	rd.conn.SetDeadline(time.Time{})
	return &bufferedConn{Conn: rd.conn, pending: pending}
}

// StatusCode is the status a server answers the error with; it lets a
// consumer that does not know this package (the session) find it with
// errors.As.
func (e *Error) StatusCode() int { return e.Status }
