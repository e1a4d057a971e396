package layers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/pires/go-proxyproto"
)

// PROXY protocol header bounds. A v1 line is at most 107 bytes with its
// CRLF (the spec's worst case); a v2 header is 16 bytes and a length, and
// we accept MaxProxyHeaderLen in all, room for the usual TLVs including a
// client certificate.
const (
	maxProxyV1Len     = 107
	proxyV2FixedLen   = 16
	MaxProxyHeaderLen = 4096
	// proxyFirstRead is the first read's size: the largest v1 line and a
	// v2 TCP6 header fit, and over-reading a little is cheaper than more
	// system calls.
	proxyFirstRead = 256
)

var proxyV1Sig = []byte("PROXY ")

// ProxyHeader is a decoded PROXY protocol header.
type ProxyHeader struct {
	Version int // 1 or 2
	// Local is true for a v2 LOCAL command or a v1 UNKNOWN line: the
	// sender speaks for itself (a health check) and the socket's addresses
	// stand.
	Local bool
	// Source and Dest are the client's and the original destination's
	// addresses for a PROXY command over TCP4 or TCP6 (4-in-6 addresses
	// unmapped); zero otherwise, including UDP and unix families, which a
	// stream listener does not take from the header.
	Source, Dest netip.AddrPort
	// TLVs is the raw v2 TLV vector, a sub-slice of the parsed bytes
	// (split it with proxyproto.SplitTLVs); nil for v1 and when empty.
	TLVs []byte
}

// Proxied reports whether the header carries addresses to use instead of
// the socket's.
func (h *ProxyHeader) Proxied() bool { return !h.Local && h.Source.IsValid() && h.Dest.IsValid() }

// ParseProxyHeader decodes the PROXY header (v1 or v2) at the start of b
// and returns it with its length n in bytes; the connection's data starts
// at b[n:]. When b is a correct but incomplete start of a header it
// returns io.ErrUnexpectedEOF: read more and call again. Any other error
// wraps ErrBadHeader.
func ParseProxyHeader(b []byte) (hdr ProxyHeader, n int, err error) {
	n, err = proxyHeaderLen(b)
	if err != nil {
		return ProxyHeader{}, 0, err
	}
	if n > len(b) {
		return ProxyHeader{}, 0, io.ErrUnexpectedEOF
	}
	// proxyproto parses from a bufio.Reader; give it exactly the header,
	// buffered at once (its v1 parser refuses a line split across reads).
	src := bytes.NewReader(b[:n])
	br := bufio.NewReaderSize(src, max(n, 16))
	h, err := proxyproto.Read(br)
	if err != nil {
		return ProxyHeader{}, 0, badHeader(err)
	}
	if br.Buffered() != 0 || src.Len() != 0 {
		return ProxyHeader{}, 0, fmt.Errorf("%w: %d of %d header bytes left unparsed", ErrBadHeader, br.Buffered()+src.Len(), n)
	}
	hdr = ProxyHeader{Version: int(h.Version), Local: h.Command.IsLocal()}
	if h.Version == 2 {
		hdr.TLVs = rawTLVs(b[:n], h)
	}
	if !hdr.Local {
		if s, d, ok := h.TCPAddrs(); ok {
			hdr.Source = tcpAddrPort(s)
			hdr.Dest = tcpAddrPort(d)
		}
	}
	return hdr, n, nil
}

// rawTLVs returns the TLV vector of the v2 header b, a sub-slice of b.
func rawTLVs(b []byte, h *proxyproto.Header) []byte {
	var addrLen int
	switch {
	case h.TransportProtocol.IsIPv4():
		addrLen = 12
	case h.TransportProtocol.IsIPv6():
		addrLen = 36
	case h.TransportProtocol.IsUnix():
		addrLen = 216
	}
	if proxyV2FixedLen+addrLen >= len(b) {
		return nil
	}
	return b[proxyV2FixedLen+addrLen:]
}

func tcpAddrPort(a *net.TCPAddr) netip.AddrPort {
	ip, ok := netip.AddrFromSlice(a.IP)
	if !ok {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(a.Port))
}

func badHeader(err error) error {
	return fmt.Errorf("%w: %s", ErrBadHeader, strings.TrimPrefix(err.Error(), "proxyproto: "))
}

// proxyHeaderLen returns the length of the header at the start of b when
// it can tell, or a lower bound larger than len(b) when b is too short to
// tell; an error when b cannot start a PROXY header.
func proxyHeaderLen(b []byte) (int, error) {
	if len(b) == 0 {
		return 1, nil
	}
	switch b[0] {
	case proxyV1Sig[0]:
		k := min(len(b), len(proxyV1Sig))
		if !bytes.Equal(b[:k], proxyV1Sig[:k]) {
			return 0, fmt.Errorf("%w: no PROXY signature", ErrBadHeader)
		}
		if i := bytes.IndexByte(b[:min(len(b), maxProxyV1Len)], '\n'); i >= 0 {
			return i + 1, nil
		}
		if len(b) >= maxProxyV1Len {
			return 0, fmt.Errorf("%w: v1 line longer than %d bytes", ErrBadHeader, maxProxyV1Len)
		}
		return len(b) + 1, nil
	case proxyproto.SIGV2[0]:
		k := min(len(b), len(proxyproto.SIGV2))
		if !bytes.Equal(b[:k], proxyproto.SIGV2[:k]) {
			return 0, fmt.Errorf("%w: no PROXY signature", ErrBadHeader)
		}
		if len(b) < proxyV2FixedLen {
			return proxyV2FixedLen, nil
		}
		n := proxyV2FixedLen + int(binary.BigEndian.Uint16(b[14:16]))
		if n > MaxProxyHeaderLen {
			return 0, fmt.Errorf("%w: v2 header of %d bytes exceeds %d", ErrBadHeader, n, MaxProxyHeaderLen)
		}
		return n, nil
	}
	return 0, fmt.Errorf("%w: no PROXY signature", ErrBadHeader)
}

// AppendProxyHeader appends a PROXY v2 header saying src → dst to b: TCP4
// when both are IPv4, TCP6 otherwise (IPv4 then written 4-in-6), and LOCAL
// when either is not a valid address (health checks and other connections
// strata makes for itself).
func AppendProxyHeader(b []byte, src, dst netip.AddrPort) ([]byte, error) {
	h := &proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}
	if src.IsValid() && dst.IsValid() {
		h = proxyproto.HeaderProxyFromAddrs(2,
			net.TCPAddrFromAddrPort(Unmap(src)), net.TCPAddrFromAddrPort(Unmap(dst)))
	}
	raw, err := h.Format()
	if err != nil {
		return b, fmt.Errorf("format PROXY header %s -> %s: %w", src, dst, err)
	}
	return append(b, raw...), nil
}

// ProxyDecode is the front Stage for listeners that accept the PROXY
// protocol: it reads a v1 or v2 header from the start of the connection,
// takes the client's addresses from it and hands the next stage a
// connection that yields exactly the bytes after the header.
type ProxyDecode struct{}

// Name is "proxy".
func (ProxyDecode) Name() string { return "proxy" }

// Accept reads the header, bounded by MaxProxyHeaderLen and by ctx's
// deadline, which it sets as conn's read deadline and clears afterwards
// (a ctx without a deadline leaves the read unbounded: give it one). For a PROXY command over TCP4/TCP6 it sets in.Source, in.Dest
// and in.Proxied; LOCAL and UNKNOWN keep the socket's addresses. A missing
// or malformed header is a *StageError "client proxy: malformed header: …",
// a deadline "client proxy: timeout".
//
// When the reads went past the header, the returned connection holds those
// bytes and serves them first (see proxyConn); otherwise it is conn itself.
func (ProxyDecode) Accept(ctx context.Context, in *Initiator, conn net.Conn) (net.Conn, error) {
	fail := func(err error) error {
		return &StageError{Side: SideClient, Stage: "proxy", Phase: PhaseProxy, Err: err}
	}
	if err := ctx.Err(); err != nil {
		return nil, fail(fmt.Errorf("%w: %w", ErrTimeout, err))
	}
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetReadDeadline(dl); err != nil {
			return nil, fail(err)
		}
		defer conn.SetReadDeadline(time.Time{})
	}

	buf := make([]byte, proxyFirstRead)
	m := 0
	for {
		need, err := proxyHeaderLen(buf[:m])
		if err != nil {
			return nil, fail(err)
		}
		if need <= m {
			break
		}
		if need > len(buf) {
			// A v2 header with TLVs: grow to exactly its size so the next
			// reads cannot go past it.
			nb := make([]byte, need)
			copy(nb, buf[:m])
			buf = nb
		}
		k, err := conn.Read(buf[m:])
		m += k
		if err != nil && k == 0 {
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded), ctx.Err() != nil:
				return nil, fail(fmt.Errorf("%w: no complete PROXY header after %d bytes", ErrTimeout, m))
			case errors.Is(err, io.EOF):
				return nil, fail(fmt.Errorf("%w: connection closed after %d bytes", ErrBadHeader, m))
			}
			return nil, fail(err)
		}
	}

	hdr, n, err := ParseProxyHeader(buf[:m])
	if err != nil {
		return nil, fail(err)
	}
	if hdr.Proxied() {
		in.Source, in.Dest, in.Proxied = hdr.Source, hdr.Dest, true
	}
	if n == m {
		return conn, nil
	}
	return &proxyConn{Conn: conn, rest: buf[n:m]}, nil
}

// proxyConn is a connection whose first bytes were read past a PROXY
// header: Read serves them, then reads conn directly. It belongs to the
// goroutine reading the client, as any net.Conn's read side does.
type proxyConn struct {
	net.Conn
	rest []byte // over-read bytes not yet served; nil once drained
}

func (c *proxyConn) Read(p []byte) (int, error) {
	if len(c.rest) == 0 {
		return c.Conn.Read(p)
	}
	n := copy(p, c.rest)
	c.rest = c.rest[n:]
	if len(c.rest) == 0 {
		c.rest = nil // let the header buffer go
	}
	return n, nil
}

// WriteTo writes the over-read bytes to w, then lets w read the socket
// below directly (w.ReadFrom), so that io.Copy from this connection to a
// *net.TCPConn still takes the kernel's splice path.
func (c *proxyConn) WriteTo(w io.Writer) (int64, error) {
	var n int64
	if len(c.rest) > 0 {
		k, err := w.Write(c.rest)
		n += int64(k)
		c.rest = c.rest[k:]
		if err != nil {
			return n, err
		}
		c.rest = nil
	}
	var k int64
	var err error
	if rf, ok := w.(io.ReaderFrom); ok {
		k, err = rf.ReadFrom(c.Conn)
	} else {
		k, err = io.Copy(w, c.Conn)
	}
	return n + k, err
}

// Buffered is the number of over-read bytes Read will serve before it
// reads the socket.
func (c *proxyConn) Buffered() int { return len(c.rest) }

// NetConn returns the connection below. A caller reading it directly must
// first drain Buffered() bytes through Read or WriteTo.
func (c *proxyConn) NetConn() net.Conn { return c.Conn }

// CloseWrite shuts the sending side of the connection below (TCP
// half-close).
func (c *proxyConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return fmt.Errorf("close write on %T: %w", c.Conn, errors.ErrUnsupported)
}

// CloseRead shuts the receiving side of the connection below.
func (c *proxyConn) CloseRead() error {
	if cr, ok := c.Conn.(interface{ CloseRead() error }); ok {
		return cr.CloseRead()
	}
	return fmt.Errorf("close read on %T: %w", c.Conn, errors.ErrUnsupported)
}

// ProxyEncode is the outbound Stage for servers configured with
// send_proxy: it writes a PROXY v2 header saying in.Source → in.Dest on
// the new server connection (LOCAL when in has no source, as for health
// checks) and returns the connection unchanged.
type ProxyEncode struct{}

// Name is "proxy".
func (ProxyEncode) Name() string { return "proxy" }

// Accept writes the header, bounded by ctx's deadline. A failure is a
// *StageError "server proxy: …".
func (ProxyEncode) Accept(ctx context.Context, in *Initiator, conn net.Conn) (net.Conn, error) {
	fail := func(err error) error {
		return &StageError{Side: SideServer, Stage: "proxy", Phase: PhaseProxy, Err: err}
	}
	var src, dst netip.AddrPort
	if in != nil {
		src, dst = in.Source, in.Dest
	}
	hdr, err := AppendProxyHeader(make([]byte, 0, 64), src, dst)
	if err != nil {
		return nil, fail(err)
	}
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetWriteDeadline(dl); err != nil {
			return nil, fail(err)
		}
		defer conn.SetWriteDeadline(time.Time{})
	}
	if _, err := conn.Write(hdr); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("%w: writing PROXY header: %w", ErrTimeout, err)
		}
		return nil, fail(err)
	}
	return conn, nil
}
