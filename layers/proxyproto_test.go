package layers

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// encodeHeader formats h with go-proxyproto, the reference encoder.
func encodeHeader(t testing.TB, h *proxyproto.Header, tlvs ...proxyproto.TLV) []byte {
	t.Helper()
	if len(tlvs) > 0 {
		if err := h.SetTLVs(tlvs); err != nil {
			t.Fatal(err)
		}
	}
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tcpAddr(s string) *net.TCPAddr {
	return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s))
}

func proxyHeader(version byte, src, dst string) *proxyproto.Header {
	return proxyproto.HeaderProxyFromAddrs(version, tcpAddr(src), tcpAddr(dst))
}

func TestProxyDecode(t *testing.T) {
	const payload = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
	bigTLV := proxyproto.TLV{Type: proxyproto.PP2_TYPE_AUTHORITY, Value: bytes.Repeat([]byte("a"), 1000)}
	tests := []struct {
		name        string
		header      []byte
		split       bool // send the header alone, then the payload
		chunks      int  // send the header in this many pieces
		wantProxied bool
		wantSrc     string
		wantDst     string
	}{
		{name: "v1 tcp4", header: encodeHeader(t, proxyHeader(1, "192.0.2.1:5000", "198.51.100.2:443")), wantProxied: true, wantSrc: "192.0.2.1:5000", wantDst: "198.51.100.2:443"},
		{name: "v1 tcp6", header: encodeHeader(t, proxyHeader(1, "[2001:db8::1]:5000", "[2001:db8::2]:443")), wantProxied: true, wantSrc: "[2001:db8::1]:5000", wantDst: "[2001:db8::2]:443"},
		{name: "v1 tcp6 4-in-6 unmapped", header: []byte("PROXY TCP6 ::ffff:192.0.2.1 2001:db8::2 5000 443\r\n"), wantProxied: true, wantSrc: "192.0.2.1:5000", wantDst: "[2001:db8::2]:443"},
		{name: "v1 unknown", header: []byte("PROXY UNKNOWN\r\n")},
		{name: "v1 unknown with addresses", header: []byte("PROXY UNKNOWN ffff:f::f ffff:f::f 65535 65535\r\n")},
		{name: "v1 header alone", header: encodeHeader(t, proxyHeader(1, "192.0.2.1:5000", "198.51.100.2:443")), split: true, wantProxied: true, wantSrc: "192.0.2.1:5000", wantDst: "198.51.100.2:443"},
		{name: "v1 header in pieces", header: encodeHeader(t, proxyHeader(1, "192.0.2.1:5000", "198.51.100.2:443")), chunks: 4, wantProxied: true, wantSrc: "192.0.2.1:5000", wantDst: "198.51.100.2:443"},
		{name: "v2 tcp4", header: encodeHeader(t, proxyHeader(2, "192.0.2.1:5000", "198.51.100.2:443")), wantProxied: true, wantSrc: "192.0.2.1:5000", wantDst: "198.51.100.2:443"},
		{name: "v2 tcp6 with tlvs", header: encodeHeader(t, proxyHeader(2, "[2001:db8::1]:5000", "[2001:db8::2]:443"),
			proxyproto.TLV{Type: proxyproto.PP2_TYPE_ALPN, Value: []byte("h2")}, proxyproto.TLV{Type: proxyproto.PP2_TYPE_AUTHORITY, Value: []byte("example.com")}),
			wantProxied: true, wantSrc: "[2001:db8::1]:5000", wantDst: "[2001:db8::2]:443"},
		{name: "v2 large tlv", header: encodeHeader(t, proxyHeader(2, "192.0.2.1:5000", "198.51.100.2:443"), bigTLV), wantProxied: true, wantSrc: "192.0.2.1:5000", wantDst: "198.51.100.2:443"},
		{name: "v2 large tlv in pieces", header: encodeHeader(t, proxyHeader(2, "192.0.2.1:5000", "198.51.100.2:443"), bigTLV), chunks: 5, wantProxied: true, wantSrc: "192.0.2.1:5000", wantDst: "198.51.100.2:443"},
		{name: "v2 local", header: encodeHeader(t, &proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC})},
		{name: "v2 local with tlv", header: encodeHeader(t, &proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}, proxyproto.TLV{Type: proxyproto.PP2_TYPE_NOOP, Value: []byte{0}})},
		{name: "v2 header alone", header: encodeHeader(t, proxyHeader(2, "192.0.2.1:5000", "198.51.100.2:443")), split: true, wantProxied: true, wantSrc: "192.0.2.1:5000", wantDst: "198.51.100.2:443"},
		{name: "v2 udp keeps socket addresses", header: encodeHeader(t, proxyproto.HeaderProxyFromAddrs(2, &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1}, &net.UDPAddr{IP: net.IPv4(192, 0, 2, 2), Port: 2}))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server := tcpPair(t)
			go func() {
				switch {
				case tt.split:
					client.Write(tt.header)
					time.Sleep(20 * time.Millisecond)
					client.Write([]byte(payload))
				case tt.chunks > 0:
					step := (len(tt.header) + tt.chunks - 1) / tt.chunks
					for b := tt.header; len(b) > 0; b = b[min(step, len(b)):] {
						client.Write(b[:min(step, len(b))])
						time.Sleep(5 * time.Millisecond)
					}
					client.Write([]byte(payload))
				default:
					client.Write(append(append([]byte(nil), tt.header...), payload...))
				}
				client.CloseWrite()
			}()
			in := NewInitiator(server, "test", time.Now())
			socketSrc, socketDst := in.Source, in.Dest
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			conn, err := ProxyDecode{}.Accept(ctx, in, server)
			if err != nil {
				t.Fatalf("Accept: %v", err)
			}
			if in.Proxied != tt.wantProxied {
				t.Fatalf("Proxied = %v, want %v", in.Proxied, tt.wantProxied)
			}
			if tt.wantProxied {
				if in.Source.String() != tt.wantSrc || in.Dest.String() != tt.wantDst {
					t.Fatalf("Source, Dest = %s, %s; want %s, %s", in.Source, in.Dest, tt.wantSrc, tt.wantDst)
				}
			} else if in.Source != socketSrc || in.Dest != socketDst {
				t.Fatalf("Source, Dest = %s, %s; want the socket's %s, %s", in.Source, in.Dest, socketSrc, socketDst)
			}
			if in.Remote != socketSrc {
				t.Fatalf("Remote changed to %s", in.Remote)
			}
			got, err := io.ReadAll(conn)
			if err != nil {
				t.Fatalf("reading after the header: %v", err)
			}
			if string(got) != payload {
				t.Fatalf("bytes after the header = %q, want %q", got, payload)
			}
			if tt.split && conn != net.Conn(server) {
				t.Fatalf("with nothing read past the header Accept returned %T, want the socket itself", conn)
			}
		})
	}
}

func TestProxyDecodeErrors(t *testing.T) {
	tests := []struct {
		name     string
		send     string
		close    bool // close the sending side after send
		timeout  time.Duration
		wantErr  error
		wantText string
	}{
		{name: "http request", send: "GET / HTTP/1.1\r\n\r\n", wantErr: ErrBadHeader, wantText: "client proxy: malformed header: no PROXY signature"},
		{name: "tls hello", send: "\x16\x03\x01\x02\x00\x01", wantErr: ErrBadHeader, wantText: "client proxy: malformed header: no PROXY signature"},
		{name: "almost v1", send: "PROXZ TCP4", wantErr: ErrBadHeader, wantText: "client proxy: malformed header: no PROXY signature"},
		{name: "almost v2", send: "\r\n\r\n\x00\r\nQUIX\n", wantErr: ErrBadHeader, wantText: "client proxy: malformed header: no PROXY signature"},
		{name: "v1 too long", send: "PROXY TCP4 " + strings.Repeat("1", 200), wantErr: ErrBadHeader, wantText: "client proxy: malformed header: v1 line longer than 107 bytes"},
		{name: "v1 bad address", send: "PROXY TCP4 1.2.3 4.5.6.7 1 2\r\n", wantErr: ErrBadHeader, wantText: "client proxy: malformed header: invalid address: "},
		{name: "v1 v6 in tcp4", send: "PROXY TCP4 ::1 ::1 1 2\r\n", wantErr: ErrBadHeader, wantText: "client proxy: malformed header: invalid address"},
		{name: "v1 bad port", send: "PROXY TCP4 1.2.3.4 4.5.6.7 1 99999\r\n", wantErr: ErrBadHeader, wantText: "client proxy: malformed header: invalid port number: "},
		{name: "v1 no cr", send: "PROXY TCP4 1.2.3.4 4.5.6.7 1 2\n", wantErr: ErrBadHeader, wantText: "client proxy: malformed header: version 1 header is invalid, must end with \\r\\n"},
		{name: "v2 too long", send: "\r\n\r\n\x00\r\nQUIT\n\x21\x11\x10\x00", wantErr: ErrBadHeader, wantText: "client proxy: malformed header: v2 header of 4112 bytes exceeds 4096"},
		{name: "v2 short address block", send: "\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x04abcd", wantErr: ErrBadHeader, wantText: "client proxy: malformed header: invalid length"},
		{name: "v2 bad version", send: "\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x0c123456789012", wantErr: ErrBadHeader, wantText: "client proxy: malformed header: unsupported proxy protocol version and command"},
		{name: "closed mid header", send: "PROXY TCP4 1.2", close: true, wantErr: ErrBadHeader, wantText: "client proxy: malformed header: connection closed after 14 bytes"},
		{name: "closed before anything", send: "", close: true, wantErr: ErrBadHeader, wantText: "client proxy: malformed header: connection closed after 0 bytes"},
		{name: "stalled mid header", send: "\r\n\r\n\x00\r\nQUIT\n\x21", timeout: 50 * time.Millisecond, wantErr: ErrTimeout, wantText: "client proxy timeout"},
		{name: "stalled before anything", send: "", timeout: 50 * time.Millisecond, wantErr: ErrTimeout, wantText: "client proxy timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server := tcpPair(t)
			client.Write([]byte(tt.send))
			if tt.close {
				client.CloseWrite()
			}
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			in := NewInitiator(server, "test", time.Now())
			before := *in
			conn, err := ProxyDecode{}.Accept(ctx, in, server)
			if err == nil {
				t.Fatalf("Accept succeeded (conn %T)", conn)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Accept error %v is not %v", err, tt.wantErr)
			}
			var se *StageError
			if !errors.As(err, &se) || se.Side != SideClient || se.Stage != "proxy" || se.Phase != PhaseProxy {
				t.Fatalf("Accept error %#v is not a client proxy *StageError", err)
			}
			if got := err.Error(); got != tt.wantText && !(strings.HasSuffix(tt.wantText, ": ") && strings.HasPrefix(got, tt.wantText)) {
				t.Fatalf("error text = %q, want %q", err.Error(), tt.wantText)
			}
			if in.Source != before.Source || in.Proxied {
				t.Fatalf("a failed decode changed the Initiator: %+v", in)
			}
		})
	}
}

func TestParseProxyHeaderPrefixes(t *testing.T) {
	headers := [][]byte{
		encodeHeader(t, proxyHeader(1, "192.0.2.1:5000", "198.51.100.2:443")),
		encodeHeader(t, proxyHeader(2, "[2001:db8::1]:5000", "[2001:db8::2]:443"), proxyproto.TLV{Type: proxyproto.PP2_TYPE_ALPN, Value: []byte("h2")}),
	}
	for _, h := range headers {
		for i := 0; i < len(h); i++ {
			if _, n, err := ParseProxyHeader(h[:i]); !errors.Is(err, io.ErrUnexpectedEOF) || n != 0 {
				t.Fatalf("ParseProxyHeader(%q) = %d, %v; want io.ErrUnexpectedEOF", h[:i], n, err)
			}
		}
		hdr, n, err := ParseProxyHeader(append(h, "trailing"...))
		if err != nil || n != len(h) {
			t.Fatalf("ParseProxyHeader(%q) = %d, %v; want %d", h, n, err, len(h))
		}
		if hdr.Version == 2 {
			tlvs, err := proxyproto.SplitTLVs(hdr.TLVs)
			if err != nil || len(tlvs) != 1 || string(tlvs[0].Value) != "h2" {
				t.Fatalf("TLVs = %v, %v", tlvs, err)
			}
		}
	}
}

func TestProxyConnWriteToAndCloseWrite(t *testing.T) {
	// client → [server: proxyConn] → io.Copy → [out] → sink
	client, server := tcpPair(t)
	out, sink := tcpPair(t)
	hdr := encodeHeader(t, proxyHeader(2, "192.0.2.1:5000", "198.51.100.2:443"))
	body := bytes.Repeat([]byte("0123456789"), 100_000)
	go func() {
		client.Write(append(append([]byte(nil), hdr...), body[:100]...))
		client.Write(body[100:])
		client.CloseWrite()
	}()
	in := NewInitiator(server, "test", time.Now())
	conn, err := ProxyDecode{}.Accept(context.Background(), in, server)
	if err != nil {
		t.Fatal(err)
	}
	pc, ok := conn.(*proxyConn)
	if !ok {
		t.Skipf("no bytes were read past the header (got %T); nothing to test", conn)
	}
	if pc.NetConn() != net.Conn(server) {
		t.Fatal("NetConn is not the socket below")
	}
	if pc.Buffered() == 0 {
		t.Fatal("Buffered = 0 for a connection holding over-read bytes")
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(sink)
		got <- b
	}()
	// io.Copy takes proxyConn.WriteTo, which hands the socket to
	// out.ReadFrom (splice) after the over-read bytes.
	n, err := io.Copy(out, conn)
	if err != nil || n != int64(len(body)) {
		t.Fatalf("io.Copy = %d, %v; want %d", n, err, len(body))
	}
	if pc.Buffered() != 0 {
		t.Fatalf("Buffered = %d after the copy", pc.Buffered())
	}
	if err := conn.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	// The half-close reached the client: it reads EOF.
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("client read after CloseWrite = %v, want EOF", err)
	}
	out.CloseWrite()
	if b := <-got; !bytes.Equal(b, body) {
		t.Fatalf("sink got %d bytes, want %d intact", len(b), len(body))
	}
}

func TestProxyEncode(t *testing.T) {
	tests := []struct {
		name      string
		in        *Initiator
		wantCmd   proxyproto.ProtocolVersionAndCommand
		wantProto proxyproto.AddressFamilyAndProtocol
		wantSrc   string
		wantDst   string
	}{
		{name: "tcp4", in: &Initiator{Source: netip.MustParseAddrPort("192.0.2.1:5000"), Dest: netip.MustParseAddrPort("198.51.100.2:443")},
			wantCmd: proxyproto.PROXY, wantProto: proxyproto.TCPv4, wantSrc: "192.0.2.1:5000", wantDst: "198.51.100.2:443"},
		{name: "tcp6", in: &Initiator{Source: netip.MustParseAddrPort("[2001:db8::1]:5000"), Dest: netip.MustParseAddrPort("[2001:db8::2]:443")},
			wantCmd: proxyproto.PROXY, wantProto: proxyproto.TCPv6, wantSrc: "[2001:db8::1]:5000", wantDst: "[2001:db8::2]:443"},
		{name: "4-in-6 source is tcp4", in: &Initiator{Source: netip.MustParseAddrPort("[::ffff:192.0.2.1]:5000"), Dest: netip.MustParseAddrPort("198.51.100.2:443")},
			wantCmd: proxyproto.PROXY, wantProto: proxyproto.TCPv4, wantSrc: "192.0.2.1:5000", wantDst: "198.51.100.2:443"},
		{name: "mixed families is tcp6", in: &Initiator{Source: netip.MustParseAddrPort("192.0.2.1:5000"), Dest: netip.MustParseAddrPort("[2001:db8::2]:443")},
			wantCmd: proxyproto.PROXY, wantProto: proxyproto.TCPv6, wantSrc: "192.0.2.1:5000", wantDst: "[2001:db8::2]:443"},
		{name: "health check is local", in: &Initiator{}, wantCmd: proxyproto.LOCAL, wantProto: proxyproto.UNSPEC},
		{name: "nil initiator is local", in: nil, wantCmd: proxyproto.LOCAL, wantProto: proxyproto.UNSPEC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server := tcpPair(t)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			conn, err := ProxyEncode{}.Accept(ctx, tt.in, client)
			if err != nil {
				t.Fatal(err)
			}
			if conn != net.Conn(client) {
				t.Fatalf("ProxyEncode returned %T, want the connection unchanged", conn)
			}
			client.Write([]byte("data"))
			client.CloseWrite()
			br := bufio.NewReader(server)
			h, err := proxyproto.Read(br)
			if err != nil {
				t.Fatalf("go-proxyproto cannot read our header: %v", err)
			}
			if h.Version != 2 || h.Command != tt.wantCmd || h.TransportProtocol != tt.wantProto {
				t.Fatalf("header = v%d cmd %#x proto %#x; want v2 %#x %#x", h.Version, h.Command, h.TransportProtocol, tt.wantCmd, tt.wantProto)
			}
			if tt.wantCmd == proxyproto.PROXY {
				if h.SourceAddr.String() != tt.wantSrc || h.DestinationAddr.String() != tt.wantDst {
					t.Fatalf("addresses %s → %s; want %s → %s", h.SourceAddr, h.DestinationAddr, tt.wantSrc, tt.wantDst)
				}
			}
			rest, _ := io.ReadAll(br)
			if string(rest) != "data" {
				t.Fatalf("after the header: %q", rest)
			}
		})
	}
}

func TestProxyEncodeWriteFails(t *testing.T) {
	client, _ := tcpPair(t)
	client.Close()
	_, err := ProxyEncode{}.Accept(context.Background(), &Initiator{}, client)
	var se *StageError
	if !errors.As(err, &se) || se.Side != SideServer || se.Stage != "proxy" || se.Phase != PhaseProxy {
		t.Fatalf("error = %#v, want a server proxy *StageError", err)
	}
	if !strings.HasPrefix(err.Error(), "server proxy: ") {
		t.Fatalf("error text = %q", err.Error())
	}
}

func BenchmarkParseProxyHeader(b *testing.B) {
	for _, tc := range []struct {
		name string
		h    []byte
	}{
		{"v1", encodeHeader(b, proxyHeader(1, "192.0.2.1:5000", "198.51.100.2:443"))},
		{"v2", encodeHeader(b, proxyHeader(2, "192.0.2.1:5000", "198.51.100.2:443"))},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := ParseProxyHeader(tc.h); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
