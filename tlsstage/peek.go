package tlsstage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"github.com/strata-proxy/strata/layers"
)

// MaxHelloSize bounds the ClientHello handshake message (its body, without
// the 4-byte handshake header) that ParseClientHello accepts. Real hellos,
// post-quantum key shares included, are under 2 KiB.
const MaxHelloSize = 16 << 10

// DefaultPeekSize is how many bytes Peek reads at most before giving up:
// a MaxHelloSize hello plus its handshake header plus the headers of the
// records it may be split into.
const DefaultPeekSize = MaxHelloSize + 4 + 16*recordHeaderLen

const (
	recordHeaderLen      = 5
	recordTypeHandshake  = 22
	maxPlaintext         = 1 << 14
	handshakeClientHello = 1

	extServerName        = 0
	extALPN              = 16
	extSupportedVersions = 43
)

// Errors returned by ParseClientHello, besides a wrapped layers.ErrNotTLS.
var (
	// ErrIncomplete means the bytes are a valid beginning of a ClientHello:
	// read more and parse again.
	ErrIncomplete = errors.New("incomplete ClientHello")
	// ErrMalformed means the bytes are a TLS handshake whose ClientHello
	// does not parse.
	ErrMalformed = errors.New("malformed ClientHello")
)

// ClientHelloInfo is what ParseClientHello extracts from a ClientHello.
type ClientHelloInfo struct {
	// SNI is the host_name of the server_name extension, lowercased; empty
	// when the client sent none. It is always a valid DNS host name.
	SNI string
	// ALPN lists the protocols the client offered, in its order.
	ALPN []string
	// Version is the legacy_version field (0x0303 for TLS 1.2 and 1.3).
	Version uint16
	// SupportedVersions is the supported_versions extension (TLS 1.3
	// clients), in the client's order; GREASE values included.
	SupportedVersions []uint16
	// Len is the number of bytes of b, record headers included, up to the
	// end of the record that completed the ClientHello.
	Len int
}

// ParseClientHello parses the TLS records at the start of b that carry a
// ClientHello, which may span several records. It returns ErrIncomplete
// when b is a proper prefix of such records, an error wrapping
// layers.ErrNotTLS when b does not start with a TLS handshake record holding
// a ClientHello, layers.ErrTooLarge when the hello is longer than
// MaxHelloSize, and an error wrapping ErrMalformed when the hello or one of
// its extensions does not parse. Strings in info do not alias b.
func ParseClientHello(b []byte) (info ClientHelloInfo, err error) {
	// The common case is a hello in one record: parse it in place. Only a
	// hello split across records is copied together.
	var (
		msg   []byte // the handshake message collected so far
		owned bool   // msg is our copy, not a slice of b
		off   int
	)
	for {
		if err := checkRecordHeader(b[off:], off == 0); err != nil {
			return ClientHelloInfo{}, err
		}
		n := int(b[off+3])<<8 | int(b[off+4])
		end := off + recordHeaderLen + n
		if end > len(b) {
			return ClientHelloInfo{}, ErrIncomplete
		}
		frag := b[off+recordHeaderLen : end]
		switch {
		case msg == nil:
			msg = frag
		case !owned:
			msg = append(append(make([]byte, 0, len(msg)+len(frag)), msg...), frag...)
			owned = true
		default:
			msg = append(msg, frag...)
		}
		off = end
		if len(msg) < 4 {
			continue
		}
		if msg[0] != handshakeClientHello {
			return ClientHelloInfo{}, fmt.Errorf("%w (handshake type %d)", layers.ErrNotTLS, msg[0])
		}
		bodyLen := int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3])
		if bodyLen > MaxHelloSize {
			return ClientHelloInfo{}, fmt.Errorf("ClientHello of %d bytes: %w", bodyLen, layers.ErrTooLarge)
		}
		if len(msg) < 4+bodyLen {
			continue
		}
		if len(msg) > 4+bodyLen {
			// A ClientHello is alone in its flight; anything after it in the
			// same records is not something a client sends.
			return ClientHelloInfo{}, fmt.Errorf("%w: %d bytes after the ClientHello", ErrMalformed, len(msg)-4-bodyLen)
		}
		info, err := parseHelloBody(msg[4:])
		if err != nil {
			return ClientHelloInfo{}, err
		}
		info.Len = off
		return info, nil
	}
}

// checkRecordHeader checks the record header at the start of b (as much of
// it as there is) and returns ErrIncomplete when b ends inside it.
func checkRecordHeader(b []byte, first bool) error {
	if len(b) == 0 {
		return ErrIncomplete
	}
	if b[0] != recordTypeHandshake {
		if first {
			return fmt.Errorf("%w (first byte 0x%02x)", layers.ErrNotTLS, b[0])
		}
		return fmt.Errorf("%w: record type %d inside the ClientHello", ErrMalformed, b[0])
	}
	if len(b) >= 2 && b[1] != 3 {
		return fmt.Errorf("%w (record version %d.x)", layers.ErrNotTLS, b[1])
	}
	if len(b) >= 3 && b[2] > 4 {
		return fmt.Errorf("%w (record version 3.%d)", layers.ErrNotTLS, b[2])
	}
	if len(b) < recordHeaderLen {
		return ErrIncomplete
	}
	n := int(b[3])<<8 | int(b[4])
	if n == 0 || n > maxPlaintext {
		return fmt.Errorf("%w: record length %d", ErrMalformed, n)
	}
	return nil
}

// parseHelloBody parses a ClientHello message body (RFC 8446 §4.1.2).
func parseHelloBody(body []byte) (ClientHelloInfo, error) {
	var info ClientHelloInfo
	s := cryptobyte.String(body)
	var sessionID, suites, compression, exts cryptobyte.String
	if !s.ReadUint16(&info.Version) ||
		!s.Skip(32) || // random
		!s.ReadUint8LengthPrefixed(&sessionID) ||
		!s.ReadUint16LengthPrefixed(&suites) ||
		!s.ReadUint8LengthPrefixed(&compression) {
		return info, fmt.Errorf("%w: truncated", ErrMalformed)
	}
	if info.Version>>8 != 3 {
		return info, fmt.Errorf("%w (client version 0x%04x)", layers.ErrNotTLS, info.Version)
	}
	if len(sessionID) > 32 {
		return info, fmt.Errorf("%w: session id of %d bytes", ErrMalformed, len(sessionID))
	}
	if len(suites) == 0 || len(suites)%2 != 0 {
		return info, fmt.Errorf("%w: cipher suites list of %d bytes", ErrMalformed, len(suites))
	}
	if len(compression) == 0 {
		return info, fmt.Errorf("%w: no compression methods", ErrMalformed)
	}
	if s.Empty() {
		return info, nil // an old client with no extensions at all
	}
	if !s.ReadUint16LengthPrefixed(&exts) || !s.Empty() {
		return info, fmt.Errorf("%w: extensions block", ErrMalformed)
	}
	seen := make(map[uint16]bool, 16)
	for !exts.Empty() {
		var typ uint16
		var data cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&data) {
			return info, fmt.Errorf("%w: extensions block", ErrMalformed)
		}
		if seen[typ] {
			return info, fmt.Errorf("%w: duplicate extension %d", ErrMalformed, typ)
		}
		seen[typ] = true
		var err error
		switch typ {
		case extServerName:
			info.SNI, err = parseServerName(data)
		case extALPN:
			info.ALPN, err = parseALPN(data)
		case extSupportedVersions:
			info.SupportedVersions, err = parseSupportedVersions(data)
		}
		if err != nil {
			return ClientHelloInfo{}, err
		}
	}
	return info, nil
}

// parseServerName parses the server_name extension (RFC 6066 §3) and
// returns its host_name, lowercased.
func parseServerName(data cryptobyte.String) (string, error) {
	var list cryptobyte.String
	if !data.ReadUint16LengthPrefixed(&list) || !data.Empty() || list.Empty() {
		return "", fmt.Errorf("%w: server_name extension", ErrMalformed)
	}
	var sni string
	for !list.Empty() {
		var typ uint8
		var name cryptobyte.String
		if !list.ReadUint8(&typ) || !list.ReadUint16LengthPrefixed(&name) {
			return "", fmt.Errorf("%w: server_name extension", ErrMalformed)
		}
		if typ != 0 { // only host_name is defined
			continue
		}
		if sni != "" {
			return "", fmt.Errorf("%w: server_name extension with two host names", ErrMalformed)
		}
		h, ok := hostName(name)
		if !ok {
			return "", fmt.Errorf("%w: server name %q is not a host name", ErrMalformed, truncate(name, 64))
		}
		sni = h
	}
	return sni, nil
}

// hostName validates b as a DNS host name (letters, digits, '-' and '_'
// in labels of 1 to 63 bytes, no leading or trailing hyphen, at most 253
// bytes, no trailing dot as RFC 6066 says) and returns it lowercased.
func hostName(b []byte) (string, bool) {
	if len(b) == 0 || len(b) > 253 {
		return "", false
	}
	out := make([]byte, len(b))
	label := 0
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_':
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case c == '-':
			if label == 0 || i+1 == len(b) || b[i+1] == '.' {
				return "", false
			}
		case c == '.':
			if label == 0 {
				return "", false
			}
			label = -1
		default:
			return "", false
		}
		label++
		if label > 63 {
			return "", false
		}
		out[i] = c
	}
	if label == 0 { // trailing dot
		return "", false
	}
	return string(out), true
}

// parseALPN parses the application_layer_protocol_negotiation extension
// (RFC 7301 §3.1).
func parseALPN(data cryptobyte.String) ([]string, error) {
	var list cryptobyte.String
	if !data.ReadUint16LengthPrefixed(&list) || !data.Empty() || list.Empty() {
		return nil, fmt.Errorf("%w: alpn extension", ErrMalformed)
	}
	var protos []string
	for !list.Empty() {
		var p cryptobyte.String
		if !list.ReadUint8LengthPrefixed(&p) || p.Empty() {
			return nil, fmt.Errorf("%w: alpn extension", ErrMalformed)
		}
		protos = append(protos, string(p))
	}
	return protos, nil
}

// parseSupportedVersions parses the supported_versions extension of a
// ClientHello (RFC 8446 §4.2.1).
func parseSupportedVersions(data cryptobyte.String) ([]uint16, error) {
	var list cryptobyte.String
	if !data.ReadUint8LengthPrefixed(&list) || !data.Empty() || list.Empty() || len(list)%2 != 0 {
		return nil, fmt.Errorf("%w: supported_versions extension", ErrMalformed)
	}
	vs := make([]uint16, 0, len(list)/2)
	for !list.Empty() {
		var v uint16
		list.ReadUint16(&v)
		vs = append(vs, v)
	}
	return vs, nil
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// Peek is the ClientHello peek stage (Name "peek"): it reads the
// connection until it holds a whole ClientHello, records the SNI and the
// offered ALPN protocols on the Initiator, and returns a connection that
// replays every byte it read before reading the socket again, so the TLS
// stream passes on unchanged (SNI passthrough, or routing before TLS
// decode). A Peek holds no per-connection state and is safe for concurrent
// use.
type Peek struct {
	// MaxSize bounds the bytes read while peeking (DefaultPeekSize when 0).
	MaxSize int
}

// Name returns "peek".
func (p *Peek) Name() string { return "peek" }

var aLongTimeAgo = time.Unix(1, 0)

// Accept peeks at the ClientHello on conn. The ctx deadline bounds the
// peek; the read deadline is cleared again on success.
func (p *Peek) Accept(ctx context.Context, in *layers.Initiator, conn net.Conn) (net.Conn, error) {
	limit := p.MaxSize
	if limit <= 0 {
		limit = DefaultPeekSize
	}
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetReadDeadline(dl); err != nil {
			return nil, peekError(err)
		}
	}
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(aLongTimeAgo) })
	buf, info, err := readHello(conn, limit)
	if !stop() && err == nil {
		// ctx ended just as the hello completed; the deadline may already
		// be in the past, so give up as if it had fired during the read.
		err = layers.ErrTimeout
	}
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
			err = cause("timeout", layers.ErrTimeout, err)
		}
		return nil, peekError(err)
	}
	if err := conn.SetReadDeadline(time.Time{}); err != nil {
		return nil, peekError(err)
	}
	in.SNI = info.SNI
	in.ALPN = info.ALPN
	return &PeekedConn{Conn: conn, replay: buf}, nil
}

// readHello reads conn until buf holds a whole ClientHello.
func readHello(conn net.Conn, limit int) ([]byte, ClientHelloInfo, error) {
	buf := make([]byte, 0, min(limit, 2048))
	for {
		if len(buf) >= limit {
			return nil, ClientHelloInfo{}, fmt.Errorf("ClientHello over %d bytes: %w", limit, layers.ErrTooLarge)
		}
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(limit, 2*cap(buf))-len(buf))
		}
		n, err := conn.Read(buf[len(buf):min(cap(buf), limit)])
		buf = buf[:len(buf)+n]
		if n > 0 {
			info, perr := ParseClientHello(buf)
			if perr == nil {
				return buf, info, nil
			}
			if !errors.Is(perr, ErrIncomplete) {
				return nil, ClientHelloInfo{}, perr
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if len(buf) == 0 {
					return nil, ClientHelloInfo{}, cause("closed before ClientHello", err)
				}
				return nil, ClientHelloInfo{}, cause("closed during ClientHello", io.ErrUnexpectedEOF)
			}
			return nil, ClientHelloInfo{}, err
		}
	}
}

func peekError(err error) error {
	return &layers.StageError{Side: layers.SideClient, Stage: "peek", Phase: layers.PhasePeek, Err: err}
}

// PeekedConn is the connection Peek returns: reads return the peeked bytes
// first, then read the inner connection. Reads (Read, WriteTo) belong to
// one goroutine and writes (Write, ReadFrom) to one other, as for any
// net.Conn carrying one stream each way.
type PeekedConn struct {
	net.Conn
	replay []byte // peeked bytes not yet read; owned by the reading goroutine
}

// Read returns the peeked bytes first, then reads the inner connection.
func (c *PeekedConn) Read(p []byte) (int, error) {
	if len(c.replay) > 0 {
		n := copy(p, c.replay)
		c.replay = c.replay[n:]
		if len(c.replay) == 0 {
			c.replay = nil // let the peek buffer go
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

// WriteTo writes the peeked bytes to w, then copies the inner connection
// to w with io.Copy, so that a *net.TCPConn on both ends splices.
func (c *PeekedConn) WriteTo(w io.Writer) (int64, error) {
	var n int64
	if len(c.replay) > 0 {
		m, err := w.Write(c.replay)
		n += int64(m)
		c.replay = c.replay[m:]
		if err != nil {
			return n, err
		}
		c.replay = nil
	}
	m, err := io.Copy(w, c.Conn)
	return n + m, err
}

// ReadFrom copies r to the inner connection, using its ReadFrom (splice,
// sendfile) when it has one.
func (c *PeekedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// CloseWrite shuts the sending direction of the inner connection, when it
// can (*net.TCPConn, *tls.Conn).
func (c *PeekedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return fmt.Errorf("close write on %T: %w", c.Conn, errors.ErrUnsupported)
}

// NetConn returns the inner connection.
func (c *PeekedConn) NetConn() net.Conn { return c.Conn }
