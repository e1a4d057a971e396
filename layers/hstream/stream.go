package hstream

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/strata-proxy/strata/layers"
	"github.com/strata-proxy/strata/layers/h1"
	"github.com/strata-proxy/strata/layers/msg"
)

// Options bound what a Stream accepts. The zero value of a limit means
// none (MaxFields: 100).
type Options struct {
	// Buffers hands out the body buffer (a default pool when nil).
	Buffers *layers.BufferPool
	// MaxHeadBytes bounds the request head as HTTP/1 would carry it
	// (method, :path, :authority and each field's name and value, with
	// their separators): 431 past it. The mux stage bounds the header
	// list it decodes too; this keeps a head that fits in it from
	// outgrowing the HTTP/1 limit.
	MaxHeadBytes int
	// MaxFields bounds the number of header fields: 431 past it.
	MaxFields int
	// MaxURI bounds the length of :path: 414 past it.
	MaxURI int
	// MaxBody bounds the request body: 413 past it.
	MaxBody int64
	// Client bounds each wait for request body data and each response
	// write.
	Client time.Duration
}

// Error is a request the stream refuses, with the status to answer it
// with; nothing of it may be forwarded.
type Error struct {
	Status int
	Reason string
}

func (e *Error) Error() string { return strconv.Itoa(e.Status) + " " + e.Reason }

// StatusCode is the status the request is answered with.
func (e *Error) StatusCode() int { return e.Status }

// The refusals, one per rule, so that a log line says which rule refused a
// request.
var (
	errConnHeader   = &Error{400, "connection-specific header field"}
	errTE           = &Error{400, `te other than "trailers"`}
	errFieldValue   = &Error{400, "control character in field value"}
	errFieldSpace   = &Error{400, "leading or trailing whitespace in field value"}
	errFieldName    = &Error{400, "invalid field name"}
	errHost         = &Error{400, ":authority and host differ"}
	errCL           = &Error{400, "invalid content-length"}
	errBodyLength   = &Error{400, "body length differs from content-length"}
	errNoPath       = &Error{400, "missing :path"}
	errTarget       = &Error{400, "invalid character in :path"}
	errAuthority    = &Error{400, "invalid :authority"}
	errNoAuthority  = &Error{400, "missing :authority and host"}
	errConnect      = &Error{501, "CONNECT on a multiplexed stream"}
	errTooManyField = &Error{431, "too many header fields"}
	errHeadTooLarge = &Error{431, "request head too large"}
	errURITooLong   = &Error{414, "request target too long"}
	errBodyTooLarge = &Error{413, "body too large"}
	errUpgrade      = errors.New("hstream: protocol switch on a multiplexed stream")
)

// Stream is one request stream and its response, in the session's terms
// (session.HTTPStream). The goroutine serving the stream owns it.
type Stream struct {
	w http.ResponseWriter
	r *http.Request
	o Options

	head  msg.Head
	err   error // why the request is refused, if it is
	start time.Time

	// The request body: unread data is (*buf)[off:n].
	buf      *[]byte
	off, n   int
	got      int64 // body bytes received
	eof      bool
	bodyErr  error
	trailers msg.Fields

	wroteFinal bool
	ended      bool // the response is whole
}

// New wraps the stream w, r. Whether the request is acceptable is Err's
// answer; a refused request must still be answered through the Stream.
func New(w http.ResponseWriter, r *http.Request, o Options) *Stream {
	if o.Buffers == nil {
		o.Buffers = defaultBuffers
	}
	if o.MaxFields == 0 {
		o.MaxFields = 100
	}
	s := streams.Get().(*Stream)
	fields, trailers := s.head.Fields[:0], s.trailers[:0]
	*s = Stream{w: w, r: r, o: o, start: time.Now(), trailers: trailers}
	s.head.Fields = fields
	s.err = s.build()
	return s
}

// streams keeps released Streams, with their field slices, for reuse.
var streams = sync.Pool{New: func() any { return new(Stream) }}

// Release gives the stream back for reuse by a later New, with its body
// buffer. Nothing of it — the head, body data, trailers — may be used
// after; the caller makes sure nothing does.
func (s *Stream) Release() {
	s.release()
	clear(s.head.Fields) // they point into the request: let it go
	clear(s.trailers)
	s.head.Fields, s.trailers = s.head.Fields[:0], s.trailers[:0]
	s.w, s.r = nil, nil
	streams.Put(s)
}

var defaultBuffers = layers.NewBufferPool(0)

// Err is why the request is refused (an *Error), or nil.
func (s *Stream) Err() error { return s.err }

// Start is when the stream's request head arrived.
func (s *Stream) Start() time.Time { return s.start }

// Ended reports whether the response was written whole; a stream that
// ends otherwise must be reset, not closed cleanly.
func (s *Stream) Ended() bool { return s.ended }

// Close gives back the body buffer.
func (s *Stream) Close() { s.release() }

// bytesOf views s as bytes without copying; msg.Head slices are read-only.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// build fills the head from the request, refusing what RFC 9113 §8.2.2 and
// §8.3 (RFC 9114 §4.2) forbid and what could be read differently once the
// request is downgraded to HTTP/1.
func (s *Stream) build() error {
	r, h := s.r, &s.head
	h.Reset()
	h.Method = bytesOf(r.Method)
	h.Authority = bytesOf(r.Host)
	h.Major, h.Minor = uint8(r.ProtoMajor), uint8(r.ProtoMinor)
	if r.Method == http.MethodConnect {
		// A stream cannot become the byte tunnel an HTTP/1 CONNECT
		// opens to the server.
		return errConnect
	}
	if r.RequestURI == "" {
		return errNoPath
	}
	if !validTarget(r.RequestURI, r.Method) {
		return errTarget
	}
	if r.Host == "" {
		return errNoAuthority // HTTP/1.1 requires the Host it would become
	}
	if !validAuthority(r.Host) {
		return errAuthority
	}
	h.Path = bytesOf(r.RequestURI)
	if s.o.MaxURI > 0 && len(r.RequestURI) > s.o.MaxURI {
		return errURITooLong
	}
	var small [16]string
	names := small[:0]
	nfields := 0
	size := len(r.Method) + len(r.RequestURI) + len(r.Host) + len(" HTTP/1.1\r\nHost: \r\n\r\n")
	for name, vv := range r.Header {
		names = append(names, name)
		nfields += len(vv)
		for _, v := range vv {
			size += len(name) + len(v) + len(": \r\n")
		}
	}
	if nfields > s.o.MaxFields {
		return errTooManyField
	}
	if s.o.MaxHeadBytes > 0 && size > s.o.MaxHeadBytes {
		return errHeadTooLarge
	}
	slices.Sort(names) // a map has no order; a stable one keeps logs and tests repeatable
	cl := int64(-1)
	for _, name := range names {
		vv := r.Header[name]
		if !validName(name) {
			return errFieldName
		}
		for _, v := range vv {
			if err := checkValue(v); err != nil {
				return err
			}
		}
		switch http.CanonicalHeaderKey(name) {
		case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade":
			return errConnHeader
		case "Te":
			for _, v := range vv {
				if v != "trailers" {
					return errTE
				}
			}
		case "Host":
			for _, v := range vv {
				if !msg.EqualFold(bytesOf(v), r.Host) {
					return errHost
				}
			}
			continue // :authority carries it
		case "Content-Length":
			for _, v := range vv {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil || n < 0 || (cl >= 0 && n != cl) {
					return errCL
				}
				cl = n
			}
			continue // framing is Body
		case "Expect":
			continue // the mux stage answers 100-continue itself
		case "Trailer":
			h.HasTrailers = true
		}
		for _, v := range vv {
			h.Fields = append(h.Fields, msg.Field{Name: bytesOf(name), Value: bytesOf(v)})
		}
	}
	if len(r.Trailer) > 0 && !h.HasTrailers {
		// The mux stage took the Trailer field apart: announce the names
		// again, for servers that keep only announced trailers.
		h.HasTrailers = true
		announced := make([]string, 0, len(r.Trailer))
		for name := range r.Trailer {
			announced = append(announced, name)
		}
		slices.Sort(announced)
		h.Fields = append(h.Fields, msg.Field{Name: []byte("Trailer"), Value: bytesOf(strings.Join(announced, ", "))})
	}
	switch {
	case (r.Body == nil || r.Body == http.NoBody) && cl > 0:
		return errBodyLength // the stream ended with its head
	case r.Body == nil || r.Body == http.NoBody:
		h.Body = msg.BodyNone
	case cl > 0 || r.ContentLength > 0:
		if cl < 0 {
			cl = r.ContentLength
		}
		h.Body, h.ContentLength = msg.BodyLength, cl
	case cl == 0 || r.ContentLength == 0:
		// HTTP/2 gives no sign of a body that is empty; a method that
		// carries one says so with a zero length.
		switch r.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch:
			h.Body, h.ContentLength = msg.BodyLength, 0
		default:
			h.Body = msg.BodyNone
		}
	default:
		h.Body = msg.BodyChunked
	}
	if s.o.MaxBody > 0 && h.Body == msg.BodyLength && h.ContentLength > s.o.MaxBody {
		return errBodyTooLarge
	}
	return nil
}

// The byte classes of the checks below (RFC 9110 §5.6.2, RFC 3986 §2),
// the same as the HTTP/1 stage's (layers/h1/chars.go): what passes here
// reads the same once written as HTTP/1.
const (
	cTchar  = 1 << iota // token character: field names
	cTarget             // visible ASCII except '#': the request target
)

var class = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		switch {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
			t[c] |= cTchar
		}
		switch b {
		case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
			t[c] |= cTchar
		}
		if 0x21 <= b && b <= 0x7e && b != '#' {
			t[c] |= cTarget
		}
	}
	return t
}()

func validName(name string) bool { return name != "" && all(name, cTchar) }

// validTarget accepts an origin-form :path, or "*" for OPTIONS.
func validTarget(p, method string) bool {
	if p == "*" {
		return method == http.MethodOptions
	}
	return p[0] == '/' && all(p, cTarget)
}

// validAuthority accepts host[:port] as the HTTP/1 stage does.
func validAuthority(a string) bool { return h1.ValidAuthority(bytesOf(a)) }

func all(s string, cls uint8) bool {
	for i := 0; i < len(s); i++ {
		if class[s[i]]&cls == 0 {
			return false
		}
	}
	return true
}

func checkValue(v string) error {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return errFieldValue
		}
	}
	if v != "" && (isSpace(v[0]) || isSpace(v[len(v)-1])) {
		return errFieldSpace
	}
	return nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

// Head is the request head.
func (s *Stream) Head() *msg.Head { return &s.head }

// Continue is a no-op: the mux stages send 100 Continue themselves when
// the body is first read.
func (s *Stream) Continue() error { return nil }

// WaitBody is one step of waiting for the whole body in the buffer before
// anything is forwarded: done when the body is complete or fills the
// buffer.
func (s *Stream) WaitBody() (done bool, err error) {
	if s.eof {
		return true, nil
	}
	if s.bodyErr != nil {
		return false, s.bodyErr
	}
	if s.buf == nil {
		s.buf = s.o.Buffers.Get()
	}
	if s.n == len(*s.buf) {
		return true, nil
	}
	if err := s.read(); err != nil {
		return false, err
	}
	return s.eof || s.n == len(*s.buf), nil
}

// read reads once into the free end of the buffer.
func (s *Stream) read() error {
	if d := s.o.Client; d > 0 {
		http.NewResponseController(s.w).SetReadDeadline(time.Now().Add(d))
	}
	for {
		k, err := s.r.Body.Read((*s.buf)[s.n:])
		s.n += k
		s.got += int64(k)
		if h := &s.head; h.Body == msg.BodyLength && s.got > h.ContentLength {
			err = errBodyLength
		} else if s.o.MaxBody > 0 && s.got > s.o.MaxBody {
			err = errBodyTooLarge
		}
		switch {
		case err == io.EOF:
			if h := &s.head; h.Body == msg.BodyLength && s.got != h.ContentLength {
				s.bodyErr = errBodyLength
				return s.bodyErr
			}
			s.eof = true
			s.takeTrailers()
			return nil
		case err != nil:
			s.bodyErr = bodyError(err)
			return s.bodyErr
		case k > 0:
			return nil
		}
	}
}

// bodyError keeps a deadline recognisable as a timeout and the stage's own
// refusals as they are.
func bodyError(err error) error {
	var e *Error
	if errors.As(err, &e) || errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return err
	}
	return &layers.StageError{Side: layers.SideClient, Stage: "http request", Phase: layers.PhaseData, Err: err}
}

func (s *Stream) takeTrailers() {
	for name, vv := range s.r.Trailer {
		for _, v := range vv {
			if checkValue(v) != nil {
				continue
			}
			s.trailers = append(s.trailers, msg.Field{Name: bytesOf(name), Value: bytesOf(v)})
		}
	}
}

// ReadBodyBuffered returns body data already received, never waiting:
// (nil, nil) when there is none, io.EOF with the last of it.
func (s *Stream) ReadBodyBuffered() ([]byte, error) {
	if s.bodyErr != nil {
		return nil, s.bodyErr
	}
	if s.buf == nil || s.off == s.n {
		if s.eof {
			s.release()
			return nil, io.EOF
		}
		return nil, nil
	}
	p := (*s.buf)[s.off:s.n]
	s.off = s.n
	if s.eof {
		return p, io.EOF
	}
	return p, nil
}

// ReadBody returns the next body data (valid until the next call), or
// io.EOF at the end.
func (s *Stream) ReadBody() ([]byte, error) {
	if p, err := s.ReadBodyBuffered(); len(p) > 0 || err != nil {
		return p, err
	}
	if s.head.Body == msg.BodyNone {
		s.eof = true
		return nil, io.EOF
	}
	if s.buf == nil {
		s.buf = s.o.Buffers.Get()
	}
	s.off, s.n = 0, 0
	if err := s.read(); err != nil {
		return nil, err
	}
	return s.ReadBodyBuffered()
}

func (s *Stream) release() {
	if s.buf != nil {
		s.o.Buffers.Put(s.buf)
		s.buf, s.off, s.n = nil, 0, 0
	}
}

// CancelBody makes a body read blocked on another goroutine, and every
// later one, fail: the session gave up on the rest of the body (the server
// answered early). Closing the request body is the way both mux stages
// take to stop a stream's upload.
func (s *Stream) CancelBody() {
	if s.r.Body != nil {
		s.r.Body.Close()
	}
}

// BodyDone reports whether the request body was read to its end.
func (s *Stream) BodyDone() bool {
	return s.head.Body == msg.BodyNone || (s.eof && s.off == s.n)
}

// Trailers are the request's trailers once the body ended.
func (s *Stream) Trailers() msg.Fields { return s.trailers }

// WriteHead writes an interim (1xx) or the final response head, with the
// first body data and, when end is set, the end of the body.
func (s *Stream) WriteHead(h *msg.Head, body []byte, end bool) error {
	hdr := s.w.Header()
	if h.Status < 200 {
		if h.Status == 101 {
			return errUpgrade
		}
		addFields(hdr, h.Fields)
		s.w.WriteHeader(h.Status)
		clear(hdr)
		return nil
	}
	addFields(hdr, h.Fields)
	// The response is the server's, not ours: no sniffed type, no date
	// the server did not send.
	if _, ok := hdr["Content-Type"]; !ok {
		hdr["Content-Type"] = nil
	}
	if _, ok := hdr["Date"]; !ok {
		hdr["Date"] = nil
	}
	if h.ContentLength >= 0 && h.Status != 204 && h.Status != 304 &&
		(h.Body == msg.BodyLength || (h.Body == msg.BodyNone && s.r.Method == http.MethodHead)) {
		hdr["Content-Length"] = []string{strconv.FormatInt(h.ContentLength, 10)}
	}
	s.writeDeadline()
	s.w.WriteHeader(h.Status)
	s.wroteFinal = true
	if len(body) > 0 {
		if _, err := s.w.Write(body); err != nil {
			return err
		}
	}
	if end {
		s.ended = true
		return nil
	}
	return s.flush()
}

// addFields copies fields into hdr under their names as sent; the mux
// stage writes them in lower case.
func addFields(hdr http.Header, fields msg.Fields) {
	// One backing array for the values of the common case, a field once.
	vals := make([]string, len(fields))
	for i, f := range fields {
		if isConnectionSpecific(f.Name) {
			continue
		}
		name := string(f.Name)
		if vv, ok := hdr[name]; ok {
			hdr[name] = append(vv, string(f.Value))
			continue
		}
		vals[i] = string(f.Value)
		hdr[name] = vals[i : i+1 : i+1]
	}
}

func isConnectionSpecific(name []byte) bool {
	for _, n := range [...]string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Content-Length"} {
		if msg.EqualFold(name, n) {
			return true
		}
	}
	return false
}

func (s *Stream) writeDeadline() {
	if d := s.o.Client; d > 0 {
		http.NewResponseController(s.w).SetWriteDeadline(time.Now().Add(d))
	}
}

// WriteBody writes response body data and sends it at once (streams such
// as gRPC and server-sent events depend on it).
func (s *Stream) WriteBody(p []byte) error {
	s.writeDeadline()
	if _, err := s.w.Write(p); err != nil {
		return err
	}
	return s.flush()
}

// EndBody ends the response body with its trailers.
func (s *Stream) EndBody(trailers msg.Fields) error {
	hdr := s.w.Header()
	for _, f := range trailers {
		if isConnectionSpecific(f.Name) {
			continue
		}
		name := http.TrailerPrefix + string(f.Name)
		hdr[name] = append(hdr[name], string(f.Value))
	}
	s.ended = true
	return nil
}

// flush sends what was written at once. Both mux stages' writers have
// FlushError; a ResponseController is made only for a writer that has not.
func (s *Stream) flush() error {
	if f, ok := s.w.(interface{ FlushError() error }); ok {
		return f.FlushError()
	}
	return http.NewResponseController(s.w).Flush()
}

// Tunnel is nil: a multiplexed stream does not switch protocols.
func (s *Stream) Tunnel() net.Conn { return nil }
