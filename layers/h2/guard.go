package h2

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// A guard sits between a client connection and x/net's server and reads
// the frame headers going both ways, for what the server does not bound
// itself (DESIGN.md: the stage reports, the session decides; here the
// stage decides, since no session exists for a connection's frames):
//
//   - rapid reset (CVE-2023-44487): RST_STREAM frames from the client,
//     past a burst, at more than a sustained rate;
//   - control-frame floods (CVE-2019-9512, -9515, -9516, -9518): SETTINGS,
//     PING, PRIORITY and empty DATA frames, past a burst, at more than a
//     sustained rate, whether or not the client reads the answers;
//   - CONTINUATION floods (CVE-2024-27316 and kin): more CONTINUATION
//     frames in one header block than a header list of the allowed size
//     needs, even empty ones;
//   - "glitches": streams the server had to reset for a protocol error
//     (streams past SETTINGS_MAX_CONCURRENT_STREAMS, malformed requests),
//     past a burst, at more than a sustained rate.
//
// Any of them ends the connection: a GOAWAY with ENHANCE_YOUR_CALM is
// written at the next frame boundary of the server's output, and the
// server's next read fails, so that it stops and cancels every stream.
//
// It also mends two things x/net's server gets wrong (see readBlock for
// the second): a SETTINGS frame that
// names a setting twice is valid (RFC 9113 §6.5: processed in order), but
// the server hangs up on it; the guard passes on each setting once, with
// the value processing in order would leave (for the header table size,
// the smallest, which the encoder must honour — RFC 7541 §4.2).
type guard struct {
	net.Conn
	lim   abuseLimits
	onEnd func(reason string)
	ended atomic.Bool // the connection is being ended: the server reads no more

	// Read side: owned by the goroutine reading the connection (x/net's
	// frame reader).
	pend     []byte  // bytes to hand over before reading more
	hdr      [9]byte // the frame header being passed on
	settings []byte  // a SETTINGS frame being mended
	block    []byte  // a HEADERS or CONTINUATION frame being checked
	dec      *hpack.Decoder
	bad      bool // the header block holds a field RFC 9113 §8.2.2 forbids
	// hpackBroken: the guard could not follow the header blocks (the
	// server ends the connection for it): it checks no more.
	hpackBroken               bool
	left                      int  // payload bytes of the current frame to pass through
	inBlock                   bool // inside a header block (HEADERS without END_HEADERS)
	conts                     int  // CONTINUATION frames in the current block
	resets, control, glitches bucket
	lastStream                atomic.Uint32 // the highest stream the client opened

	// Write side: guarded by wmu. It tracks the server's frame
	// boundaries so that a GOAWAY can go in between two frames, and
	// queues the bytes for the writer goroutine (writeLoop).
	wmu     sync.Mutex
	wcond   sync.Cond // on wmu: the queue or the writer's state changed
	wq      []byte    // bytes queued for the writer
	wspare  []byte    // the writer's last buffer, for reuse
	writing bool      // the writer is in a write
	werr    error     // the writer's write failed
	closing bool      // Close was called: the writer ends once the queue is empty
	wdone   bool      // the writer ended
	closed  bool      // the connection was closed
	whdr    [9]byte
	whn     int // header bytes seen of the current outbound frame
	wleft   int // payload bytes left of it
	wrst    bool
	wcode   [4]byte // an outbound RST_STREAM's error code, as it passes
	wcoden  int
	ending  bool          // the connection is being ended
	goaway  []byte        // a GOAWAY waiting for the next frame boundary
	wclosed bool          // the GOAWAY went out: the server writes no more
	sent    chan struct{} // closed when the GOAWAY went out
	reason  string
}

// abuseLimits are a guard's thresholds: bursts, and sustained rates per
// second.
type abuseLimits struct {
	resetBurst, resetRate     float64
	controlBurst, controlRate float64
	glitchBurst, glitchRate   float64
	maxContinuations          int
	maxHeaderBytes            int
	// ownMux: the guard is in front of the mux of strata's own, which
	// refuses connection-specific fields itself; header blocks pass
	// undecoded.
	ownMux bool
	// writeTimeout bounds each write of the connection's writer (0:
	// none): a client that stops reading fails the connection.
	writeTimeout time.Duration
}

// newAbuseLimits derives the thresholds from the stream limit and the
// header list size: a client may reset twice as many streams as it may
// have open at once, then 10 per second more; send 1,000 control frames,
// then 100 per second; have 100 streams refused, then 10 per second; and
// split a header block into as many CONTINUATION frames as a header list
// of the allowed size needs in 1 KiB pieces (at least 16).
func newAbuseLimits(maxStreams uint32, maxHeaderBytes int) abuseLimits {
	return abuseLimits{
		resetBurst: max(100, 2*float64(maxStreams)), resetRate: max(10, float64(maxStreams)/10),
		controlBurst: 1000, controlRate: 100,
		glitchBurst: 100, glitchRate: 10,
		maxContinuations: max(16, maxHeaderBytes/1024+1),
		maxHeaderBytes:   maxHeaderBytes,
	}
}

// bucket counts events leaking at a rate; it overflows past its burst.
type bucket struct {
	level float64
	last  time.Time
}

// add counts one event and reports whether the bucket still holds.
func (b *bucket) add(now time.Time, burst, rate float64) bool {
	if !b.last.IsZero() {
		b.level -= now.Sub(b.last).Seconds() * rate
		if b.level < 0 {
			b.level = 0
		}
	}
	b.last = now
	b.level++
	return b.level <= burst
}

// errGuard is what the server's read returns once the guard ended the
// connection.
var errGuard = errors.New("h2: connection ended for abuse")

// Frame types and flags (RFC 9113 §6).
const (
	frameData         = 0x0
	frameHeaders      = 0x1
	framePriority     = 0x2
	frameRSTStream    = 0x3
	frameSettings     = 0x4
	framePing         = 0x6
	frameContinuation = 0x9

	flagEndStream  = 0x1
	flagAck        = 0x1
	flagEndHeaders = 0x4
	flagPadded     = 0x8
	flagPriority   = 0x20

	// maxFrameSize is the largest frame the server accepts (its
	// SETTINGS_MAX_FRAME_SIZE), headerTableSize its HPACK decoder's
	// dynamic table size (SETTINGS_HEADER_TABLE_SIZE).
	maxFrameSize    = 16 << 10
	headerTableSize = 4096

	// maxMendedSettings bounds the SETTINGS frames the guard rewrites;
	// larger ones pass as they are (x/net refuses more than 100).
	maxMendedSettings = 100
)

// newGuard wraps conn; sawPreface says the client preface was read
// already (else its 24 bytes pass through first).
func newGuard(conn net.Conn, sawPreface bool, lim abuseLimits, onEnd func(string)) net.Conn {
	g := &guard{Conn: conn, lim: lim, onEnd: onEnd}
	g.wcond.L = &g.wmu
	if !sawPreface {
		g.left = len(http2.ClientPreface)
	}
	go g.writeLoop()
	if cs, ok := conn.(connectionStater); ok {
		return &tlsGuard{g, cs}
	}
	return g
}

// connectionStater is what x/net's server looks for to see TLS.
type connectionStater interface {
	ConnectionState() tls.ConnectionState
}

// tlsGuard keeps the TLS state of the connection visible to the server.
type tlsGuard struct {
	*guard
	cs connectionStater
}

func (g *tlsGuard) ConnectionState() tls.ConnectionState { return g.cs.ConnectionState() }

// Read hands the server the client's bytes, frame by frame, checking each
// frame header on the way.
func (g *guard) Read(p []byte) (int, error) {
	if len(g.pend) > 0 {
		n := copy(p, g.pend)
		g.pend = g.pend[n:]
		return n, nil
	}
	if g.ended.Load() {
		return 0, errGuard
	}
	if g.left > 0 {
		if len(p) > g.left {
			p = p[:g.left]
		}
		n, err := g.Conn.Read(p)
		g.left -= n
		if err != nil && g.ended.Load() {
			err = errGuard
		}
		return n, err
	}
	if _, err := io.ReadFull(g.Conn, g.hdr[:]); err != nil {
		if g.ended.Load() {
			err = errGuard
		} else if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		return 0, err
	}
	if reason := g.inspect(); reason != "" {
		// Let the server finish the frame it is writing and the GOAWAY
		// go out before its read fails and it closes the connection.
		sent := g.end(reason)
		select {
		case <-sent:
		case <-time.After(time.Second):
		}
		return 0, errGuard
	}
	if g.pend == nil {
		g.pend = g.hdr[:]
	}
	n := copy(p, g.pend)
	g.pend = g.pend[n:]
	return n, nil
}

// inspect counts the frame whose header is in g.hdr and says why the
// connection must end, if it must. It may read a SETTINGS frame's payload
// to mend it (then g.pend is the mended frame).
func (g *guard) inspect() string {
	h := g.hdr[:]
	length := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
	typ, flags := h[3], h[4]
	id := binary.BigEndian.Uint32(h[5:]) & (1<<31 - 1)
	g.left = length
	g.pend = nil
	if g.inBlock && typ != frameContinuation {
		g.inBlock = false // a protocol error the server answers itself
	}
	lim := &g.lim
	switch typ {
	case frameHeaders:
		if id > g.lastStream.Load() && id&1 == 1 {
			g.lastStream.Store(id)
		}
		g.inBlock, g.conts = flags&flagEndHeaders == 0, 0
		g.bad = false
		if !lim.ownMux {
			g.readBlock(flags, length, true)
		}
	case frameContinuation:
		g.conts++
		if g.conts > lim.maxContinuations {
			return "CONTINUATION flood"
		}
		if flags&flagEndHeaders != 0 {
			g.inBlock = false
		}
		if !lim.ownMux {
			g.readBlock(flags, length, false)
		}
	case frameRSTStream:
		if !g.resets.add(time.Now(), lim.resetBurst, lim.resetRate) {
			return "rapid reset"
		}
	case frameSettings:
		if flags&flagAck != 0 {
			break
		}
		if !g.control.add(time.Now(), lim.controlBurst, lim.controlRate) {
			return "SETTINGS flood"
		}
		if id == 0 && length > 6 && length%6 == 0 && length <= 6*maxMendedSettings {
			return g.mendSettings(length)
		}
	case framePing:
		if flags&flagAck == 0 && !g.control.add(time.Now(), lim.controlBurst, lim.controlRate) {
			return "PING flood"
		}
	case framePriority:
		if !g.control.add(time.Now(), lim.controlBurst, lim.controlRate) {
			return "PRIORITY flood"
		}
	case frameData:
		if length == 0 && flags&flagEndStream == 0 && !g.control.add(time.Now(), lim.controlBurst, lim.controlRate) {
			return "empty DATA flood"
		}
	}
	return ""
}

// readBlock reads a HEADERS or CONTINUATION payload and decodes its part
// of the header block with an HPACK decoder of the guard's own, which
// follows the server's dynamic table. x/net's server answers a request
// with a connection-specific field or a te other than "trailers" with a
// 400 response; RFC 9113 §8.2.2 makes it malformed, a stream error. So
// when the block ends and holds one, the guard adds to it a field the
// server itself resets the stream for (a pseudo-header field after the
// regular ones, with no effect on the dynamic table): the stream is reset
// with PROTOCOL_ERROR, as it should be.
func (g *guard) readBlock(flags byte, length int, headers bool) {
	if g.hpackBroken {
		return
	}
	if length > maxFrameSize {
		g.hpackBroken = true // the server ends the connection for it
		return
	}
	if need := 9 + length + len(resetField); cap(g.block) < need {
		// Sized to what came, not to the largest frame: most header
		// blocks are small, and the buffer lives as long as the
		// connection.
		g.block = make([]byte, max(need, 512))
	}
	b := g.block[:9+length]
	copy(b, g.hdr[:])
	if _, err := io.ReadFull(g.Conn, b[9:]); err != nil {
		g.pend = b[:9] // the server reads the rest as the error it is
		g.hpackBroken = true
		return
	}
	g.left, g.pend = 0, b
	payload := b[9:]
	off, pad := 0, 0
	if headers {
		if flags&flagPadded != 0 {
			if len(payload) == 0 {
				g.hpackBroken = true
				return
			}
			off, pad = 1, int(payload[0])
		}
		if flags&flagPriority != 0 {
			off += 5
		}
	}
	if off+pad > len(payload) {
		g.hpackBroken = true // a protocol error the server answers itself
		return
	}
	end := len(payload) - pad
	if g.dec == nil {
		g.dec = hpack.NewDecoder(headerTableSize, g.emit)
		g.dec.SetMaxStringLength(g.lim.maxHeaderBytes)
	}
	if _, err := g.dec.Write(payload[off:end]); err != nil {
		g.hpackBroken = true
		return
	}
	if flags&flagEndHeaders == 0 {
		return
	}
	if err := g.dec.Close(); err != nil {
		g.hpackBroken = true
		return
	}
	if !g.bad || length+len(resetField) > maxFrameSize {
		return // no room for the field: the server answers 400 itself
	}
	g.bad = false
	b = g.block[:9+length+len(resetField)]
	copy(b[9+end+len(resetField):], b[9+end:9+length]) // the padding, moved
	copy(b[9+end:], resetField)
	l := length + len(resetField)
	b[0], b[1], b[2] = byte(l>>16), byte(l>>8), byte(l)
	g.pend = b
}

// resetField is an HPACK literal field without indexing, ":x" with an
// empty value: a pseudo-header field after regular ones, which the
// server resets the stream for.
var resetField = []byte{0x00, 0x02, ':', 'x', 0x00}

// emit checks each decoded field of a header block.
func (g *guard) emit(f hpack.HeaderField) {
	switch f.Name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		g.bad = true
	case "te":
		if f.Value != "trailers" {
			g.bad = true
		}
	}
}

// mendSettings reads a SETTINGS payload and, when it names a setting
// twice and every value is valid, passes on each setting once.
func (g *guard) mendSettings(length int) string {
	if cap(g.settings) < 9+length {
		g.settings = make([]byte, 9+6*maxMendedSettings)
	}
	b := g.settings[:9+length]
	copy(b, g.hdr[:])
	if _, err := io.ReadFull(g.Conn, b[9:]); err != nil {
		g.pend = b[:9] // the server reads the rest as the error it is
		g.left = length
		return ""
	}
	g.left = 0
	g.pend = b
	entries := b[9:]
	n := length / 6
	dup := false
	for i := 0; i < n && !dup; i++ {
		s := setting(entries, i)
		if s.Valid() != nil {
			return "" // the server refuses it with the right error
		}
		for j := 0; j < i; j++ {
			if setting(entries, j).ID == s.ID {
				dup = true
			}
		}
	}
	if !dup {
		return ""
	}
	for i := 0; i < n; i++ {
		if setting(entries, i).Valid() != nil {
			return ""
		}
	}
	// Keep the last entry of each setting, with the smallest header
	// table size for SETTINGS_HEADER_TABLE_SIZE.
	kept := make([]http2.Setting, 0, n)
	for i := n - 1; i >= 0; i-- {
		s := setting(entries, i)
		seen := false
		for k, o := range kept {
			if o.ID == s.ID {
				seen = true
				if s.ID == http2.SettingHeaderTableSize && s.Val < o.Val {
					kept[k].Val = s.Val
				}
			}
		}
		if !seen {
			kept = append(kept, s)
		}
	}
	out := b[9:9]
	for i := len(kept) - 1; i >= 0; i-- {
		out = binary.BigEndian.AppendUint16(out, uint16(kept[i].ID))
		out = binary.BigEndian.AppendUint32(out, kept[i].Val)
	}
	b[0], b[1], b[2] = byte(len(out)>>16), byte(len(out)>>8), byte(len(out))
	g.pend = b[:9+len(out)]
	return ""
}

func setting(entries []byte, i int) http2.Setting {
	e := entries[6*i:]
	return http2.Setting{ID: http2.SettingID(binary.BigEndian.Uint16(e)), Val: binary.BigEndian.Uint32(e[2:])}
}

// Write passes the server's bytes on, tracking its frame boundaries and
// the streams it refuses. The bytes are queued for the connection's
// writer, which sends everything queued in one write: x/net's server
// flushes after nearly every frame, and under load the frames of many
// streams then share a TLS record and a system call. A full queue makes
// Write wait (the server's writes are bounded as before); a failed write
// fails the next Write.
func (g *guard) Write(p []byte) (int, error) {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	for len(g.wq) >= maxQueued && g.werr == nil && !g.wclosed {
		g.wcond.Wait()
	}
	if g.werr != nil {
		return 0, g.werr
	}
	if g.wclosed {
		return 0, errGuard
	}
	if g.goaway != nil {
		// Finish the frame under way, then the GOAWAY; nothing after.
		k := g.frameRest(p)
		g.queue(p[:k])
		g.writeGoAway()
		return k, errGuard
	}
	reason := g.track(p)
	g.queue(p)
	if reason != "" {
		g.startEnd(reason)
		if g.atBoundary() {
			g.writeGoAway()
		}
	}
	return len(p), nil
}

// maxQueued bounds the bytes queued for the connection's writer.
const maxQueued = 64 << 10

// queue hands p to the writer. wmu is held.
func (g *guard) queue(p []byte) {
	if len(p) == 0 {
		return
	}
	g.wq = append(g.wq, p...)
	g.wcond.Broadcast()
}

// writeLoop is the connection's writer: it sends what is queued until the
// guard is closed and the queue empty, or a write fails.
func (g *guard) writeLoop() {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	for {
		for len(g.wq) == 0 && !g.closing {
			g.wcond.Wait()
		}
		if len(g.wq) == 0 {
			break
		}
		if len(g.wq) < maxQueued/2 && !g.closing {
			// Let the goroutines that are ready run first: under load,
			// other streams' frames join this write.
			g.wmu.Unlock()
			runtime.Gosched()
			g.wmu.Lock()
		}
		buf := g.wq
		g.wq, g.wspare = g.wspare[:0], nil
		g.writing = true
		closing := g.closing
		g.wmu.Unlock()
		if d := g.lim.writeTimeout; d > 0 && !closing {
			g.Conn.SetWriteDeadline(time.Now().Add(d))
		}
		_, err := g.Conn.Write(buf)
		g.wmu.Lock()
		g.writing = false
		g.wspare = buf[:0]
		if len(g.wspare) == 0 && cap(g.wspare) > 4*maxQueued {
			g.wspare = nil // a burst made it large: let it go
		}
		g.wcond.Broadcast()
		if err != nil {
			g.werr = err
			g.wq = nil
			break
		}
	}
	g.wdone = true
	g.wcond.Broadcast()
}

// Close sends what is queued (for at most a second), then closes the
// connection.
// It is safe to call more than once, from any goroutine.
func (g *guard) Close() error {
	g.wmu.Lock()
	if !g.closing {
		g.closing = true
		g.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		g.wcond.Broadcast()
	}
	for !g.wdone {
		g.wcond.Wait()
	}
	first := !g.closed
	g.closed = true
	g.wmu.Unlock()
	if !first {
		return nil
	}
	return g.Conn.Close()
}

// frameRest is how many bytes of p finish the outbound frame under way.
func (g *guard) frameRest(p []byte) int {
	if g.atBoundary() {
		return 0
	}
	k := 0
	for k < len(p) && !g.atBoundary() {
		if g.wleft > 0 {
			m := min(len(p)-k, g.wleft)
			g.wleft -= m
			k += m
			continue
		}
		m := copy(g.whdr[g.whn:], p[k:])
		g.whn += m
		k += m
		if g.whn == len(g.whdr) {
			g.whn, g.wleft = 0, int(g.whdr[0])<<16|int(g.whdr[1])<<8|int(g.whdr[2])
		}
	}
	return k
}

func (g *guard) atBoundary() bool { return g.whn == 0 && g.wleft == 0 }

// track follows the outbound frames in p and counts the streams the server
// resets for a protocol error; it returns why the connection must end.
func (g *guard) track(p []byte) string {
	reason := ""
	for len(p) > 0 {
		if g.wleft > 0 {
			m := min(len(p), g.wleft)
			if g.wrst {
				c := copy(g.wcode[g.wcoden:], p[:m])
				g.wcoden += c
				if g.wcoden == len(g.wcode) {
					g.wrst = false
					if r := g.refused(http2.ErrCode(binary.BigEndian.Uint32(g.wcode[:]))); r != "" {
						reason = r
					}
				}
			}
			g.wleft -= m
			p = p[m:]
			continue
		}
		m := copy(g.whdr[g.whn:], p)
		g.whn += m
		p = p[m:]
		if g.whn == len(g.whdr) {
			h := g.whdr[:]
			g.whn, g.wleft = 0, int(h[0])<<16|int(h[1])<<8|int(h[2])
			g.wrst = h[3] == frameRSTStream && g.wleft == 4
			g.wcoden = 0
		}
	}
	return reason
}

// refused counts a stream the server reset with code.
func (g *guard) refused(code http2.ErrCode) string {
	switch code {
	case http2.ErrCodeProtocol, http2.ErrCodeFlowControl, http2.ErrCodeStreamClosed,
		http2.ErrCodeFrameSize, http2.ErrCodeRefusedStream:
		if !g.glitches.add(time.Now(), g.lim.glitchBurst, g.lim.glitchRate) {
			return "too many refused streams"
		}
	}
	return ""
}

// end ends the connection for reason, from the reading side; the channel
// is closed once the GOAWAY went out.
func (g *guard) end(reason string) chan struct{} {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	g.startEnd(reason)
	if g.atBoundary() {
		g.writeGoAway()
	}
	return g.sent
}

// startEnd records the end and prepares the GOAWAY. wmu is held.
func (g *guard) startEnd(reason string) {
	if g.ending {
		return
	}
	g.ending, g.reason = true, reason
	g.ended.Store(true)
	g.sent = make(chan struct{})
	f := make([]byte, 9+8)
	f[2], f[3] = 8, 0x7 // length 8, GOAWAY
	binary.BigEndian.PutUint32(f[9:], g.lastStream.Load())
	binary.BigEndian.PutUint32(f[13:], uint32(http2.ErrCodeEnhanceYourCalm))
	g.goaway = f
	if g.onEnd != nil {
		go g.onEnd(reason)
	}
}

// writeGoAway writes the pending GOAWAY at a frame boundary, then wakes
// the server's reader, which fails from then on. wmu is held.
func (g *guard) writeGoAway() {
	if g.goaway != nil && !g.wclosed {
		g.queue(g.goaway)
		g.goaway, g.wclosed = nil, true
		close(g.sent)
		g.wcond.Broadcast()
		g.Conn.SetReadDeadline(time.Unix(1, 0))
	}
}
