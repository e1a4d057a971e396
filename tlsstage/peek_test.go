package tlsstage

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-proxy/strata/layers"
)

// helloConfigs are the client configurations whose real ClientHellos the
// parser tests and the fuzz seeds use.
var helloConfigs = []struct {
	name     string
	cfg      *tls.Config
	sni      string
	alpn     []string
	versions []uint16 // expected in supported_versions
}{
	{"sni", &tls.Config{ServerName: "www.example.com"}, "www.example.com", nil, []uint16{tls.VersionTLS13, tls.VersionTLS12}},
	{"no-sni", &tls.Config{InsecureSkipVerify: true}, "", nil, []uint16{tls.VersionTLS13, tls.VersionTLS12}},
	{"alpn", &tls.Config{ServerName: "api.example.com", NextProtos: []string{"h2", "http/1.1"}}, "api.example.com", []string{"h2", "http/1.1"}, nil},
	{"tls12-only", &tls.Config{ServerName: "old.example.com", MaxVersion: tls.VersionTLS12}, "old.example.com", nil, []uint16{tls.VersionTLS12}},
	{"tls13-only", &tls.Config{ServerName: "new.example.com", MinVersion: tls.VersionTLS13, NextProtos: []string{"acme-tls/1"}}, "new.example.com", []string{"acme-tls/1"}, []uint16{tls.VersionTLS13}},
	{"uppercase-sni", &tls.Config{ServerName: "MiXeD.Example.COM"}, "mixed.example.com", nil, nil},
}

func TestParseClientHelloReal(t *testing.T) {
	for _, tc := range helloConfigs {
		t.Run(tc.name, func(t *testing.T) {
			rec := captureHello(t, tc.cfg)
			for _, split := range []int{0, 1, 7, 100} {
				b := rec
				if split > 0 {
					b = resplit(rec, split)
				}
				trailing := append(slices.Clip(b), "early data"...)
				info, err := ParseClientHello(trailing)
				if err != nil {
					t.Fatalf("split %d: %v", split, err)
				}
				if info.SNI != tc.sni {
					t.Errorf("split %d: SNI = %q, want %q", split, info.SNI, tc.sni)
				}
				if !slices.Equal(info.ALPN, tc.alpn) {
					t.Errorf("split %d: ALPN = %q, want %q", split, info.ALPN, tc.alpn)
				}
				if tc.versions != nil && !slices.Equal(info.SupportedVersions, tc.versions) {
					t.Errorf("split %d: supported versions = %x, want %x", split, info.SupportedVersions, tc.versions)
				}
				if info.Len != len(b) {
					t.Errorf("split %d: Len = %d, want %d", split, info.Len, len(b))
				}
				for i := range len(b) {
					if _, err := ParseClientHello(b[:i]); !errors.Is(err, ErrIncomplete) {
						t.Fatalf("split %d: prefix of %d bytes: err = %v, want ErrIncomplete", split, i, err)
					}
				}
			}
		})
	}
}

// hello builds a one-record ClientHello with the given extensions.
func hello(exts ...[]byte) []byte {
	body := []byte{3, 3}
	body = append(body, make([]byte, 32)...) // random
	body = append(body, 0)                   // session id
	body = append(body, 0, 2, 0x13, 0x01)    // one suite
	body = append(body, 1, 0)                // null compression
	var e []byte
	for _, x := range exts {
		e = append(e, x...)
	}
	body = append(body, byte(len(e)>>8), byte(len(e)))
	body = append(body, e...)
	msg := append([]byte{1, 0, byte(len(body) >> 8), byte(len(body))}, body...)
	return append([]byte{22, 3, 1, byte(len(msg) >> 8), byte(len(msg))}, msg...)
}

func ext(typ uint16, data []byte) []byte {
	return append([]byte{byte(typ >> 8), byte(typ), byte(len(data) >> 8), byte(len(data))}, data...)
}

func sniExt(name string) []byte {
	entry := append([]byte{0, byte(len(name) >> 8), byte(len(name))}, name...)
	return ext(extServerName, append([]byte{byte(len(entry) >> 8), byte(len(entry))}, entry...))
}

func TestParseClientHelloErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error // errors.Is
		text string
	}{
		{"empty", nil, ErrIncomplete, ""},
		{"http", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), layers.ErrNotTLS, "first byte 0x47"},
		{"sslv2", []byte{0x80, 0x2e, 0x01, 0x03, 0x01}, layers.ErrNotTLS, ""},
		{"record version", []byte{22, 2, 0}, layers.ErrNotTLS, ""},
		{"alert record", []byte{21, 3, 3, 0, 2, 2, 40}, layers.ErrNotTLS, ""},
		{"server hello", []byte{22, 3, 3, 0, 4, 2, 0, 0, 0}, layers.ErrNotTLS, "handshake type 2"},
		{"zero record", []byte{22, 3, 1, 0, 0}, ErrMalformed, "record length 0"},
		{"too large", []byte{22, 3, 1, 0, 4, 1, 1, 0, 0}, layers.ErrTooLarge, ""},
		{"sni trailing dot", hello(sniExt("example.com.")), ErrMalformed, "not a host name"},
		{"sni bad char", hello(sniExt("exa mple.com")), ErrMalformed, "not a host name"},
		{"sni nul", hello(sniExt("a\x00b")), ErrMalformed, "not a host name"},
		{"sni empty label", hello(sniExt("a..b")), ErrMalformed, "not a host name"},
		{"sni hyphen", hello(sniExt("-a.b")), ErrMalformed, "not a host name"},
		{"sni short list", hello(ext(extServerName, []byte{0, 9, 0})), ErrMalformed, "server_name extension"},
		{"alpn empty proto", hello(ext(extALPN, []byte{0, 1, 0})), ErrMalformed, "alpn extension"},
		{"versions odd", hello(ext(extSupportedVersions, []byte{1, 3})), ErrMalformed, "supported_versions extension"},
		{"duplicate", hello(sniExt("a.b"), sniExt("a.b")), ErrMalformed, "duplicate extension 0"},
		{"extension overrun", hello([]byte{0, 5, 0, 9, 1}), ErrMalformed, "extensions block"},
		{"interleaved record", append(resplit(hello(sniExt("a.b")), 10)[:15], 23, 3, 3, 0, 1, 0), ErrMalformed, "record type 23"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			info, err := ParseClientHello(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v (info %+v)", err, tc.want, info)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("err = %q, want it to contain %q", err, tc.text)
			}
		})
	}
}

func TestParseClientHelloSynthetic(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		sni  string
		alpn []string
	}{
		{"no extensions", hello(), "", nil},
		{"underscore", hello(sniExt("_acme.Example.org")), "_acme.example.org", nil},
		{"other name type skipped", hello(ext(extServerName, []byte{0, 4, 1, 0, 1, 'x'})), "", nil},
		{"alpn", hello(ext(extALPN, []byte{0, 6, 2, 'h', '2', 2, 'h', '3'})), "", []string{"h2", "h3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			info, err := ParseClientHello(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if info.SNI != tc.sni || !slices.Equal(info.ALPN, tc.alpn) {
				t.Errorf("got SNI %q ALPN %q, want %q %q", info.SNI, info.ALPN, tc.sni, tc.alpn)
			}
		})
	}
}

// TestPeekForward peeks at a real ClientHello on a loopback socket, then
// forwards everything the peeked connection yields to a real TLS server,
// which must complete the handshake: no byte was lost or changed.
func TestPeekForward(t *testing.T) {
	ca := newTestCA(t, "peek CA")
	leaf := ca.issue(t, leafOpts{names: []string{"backend.test"}})
	tests := []struct {
		name     string
		maxVer   uint16
		oneByOne bool
	}{
		{"tls13", tls.VersionTLS13, false},
		{"tls12", tls.VersionTLS12, false},
		{"one byte per write", tls.VersionTLS13, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			front, frontSrv := tcpPair(t) // client → proxy
			back, backSrv := tcpPair(t)   // proxy → backend
			clientCfg := &tls.Config{ServerName: "backend.test", RootCAs: ca.pool, MaxVersion: tc.maxVer, NextProtos: []string{"h2", "http/1.1"}}

			clientErr := make(chan error, 1)
			go func() {
				var c net.Conn = front
				if tc.oneByOne {
					c = oneByteWriter{front}
				}
				tc := tls.Client(c, clientCfg)
				err := tc.Handshake()
				if err == nil {
					_, err = tc.Write([]byte("ping"))
				}
				clientErr <- err
			}()

			in := layers.NewInitiator(frontSrv, "test", time.Now())
			pc, err := (&Peek{}).Accept(testCtx(t), in, frontSrv)
			if err != nil {
				t.Fatal(err)
			}
			if in.SNI != "backend.test" || !slices.Equal(in.ALPN, []string{"h2", "http/1.1"}) {
				t.Errorf("initiator SNI %q ALPN %q", in.SNI, in.ALPN)
			}
			if _, ok := pc.(interface{ CloseWrite() error }); !ok {
				t.Error("peeked conn has no CloseWrite")
			}
			if pc.(interface{ NetConn() net.Conn }).NetConn() != frontSrv {
				t.Error("NetConn is not the inner conn")
			}
			// Splice both ways, as a TCP session would.
			go io.Copy(back, pc)
			go io.Copy(pc, back)

			srv := tls.Server(backSrv, &tls.Config{Certificates: []tls.Certificate{leaf}, NextProtos: []string{"http/1.1"}})
			srv.SetDeadline(time.Now().Add(5 * time.Second))
			if err := srv.Handshake(); err != nil {
				t.Fatalf("backend handshake: %v", err)
			}
			buf := make([]byte, 4)
			if _, err := io.ReadFull(srv, buf); err != nil || string(buf) != "ping" {
				t.Fatalf("backend read %q, %v", buf, err)
			}
			if err := <-clientErr; err != nil {
				t.Fatalf("client: %v", err)
			}
			if got := srv.ConnectionState().ServerName; got != "backend.test" {
				t.Errorf("backend saw SNI %q", got)
			}
			front.Close()
			back.Close()
		})
	}
}

// oneByteWriter writes one byte per TCP write (Nagle off), so the hello
// arrives in many reads.
type oneByteWriter struct{ *net.TCPConn }

func (w oneByteWriter) Write(p []byte) (int, error) {
	w.SetNoDelay(true)
	for i := range p {
		if _, err := w.TCPConn.Write(p[i : i+1]); err != nil {
			return i, err
		}
		time.Sleep(50 * time.Microsecond)
	}
	return len(p), nil
}

func TestPeekErrors(t *testing.T) {
	tests := []struct {
		name   string
		send   []byte
		close  bool
		max    int
		want   error
		text   string
		reason string
	}{
		{name: "http", send: []byte("GET / HTTP/1.1\r\n\r\n"), want: layers.ErrNotTLS, text: "client peek: not a TLS ClientHello (first byte 0x47)"},
		{name: "closed early", send: []byte{22, 3, 1}, close: true, want: io.ErrUnexpectedEOF, text: "client peek: closed during ClientHello"},
		{name: "closed at once", close: true, want: io.EOF, text: "client peek: closed before ClientHello"},
		{name: "timeout", send: []byte{22, 3, 1, 0, 200}, want: layers.ErrTimeout, text: "client peek timeout"},
		{name: "too large", send: hello(sniExt("a.b")), max: 20, want: layers.ErrTooLarge, text: "client peek: ClientHello over 20 bytes: too large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, s := tcpPair(t)
			if _, err := c.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			if tc.close {
				c.Close()
			}
			ctx := testCtx(t)
			if tc.name == "timeout" {
				var cancel func()
				ctx, cancel = contextWithTimeout(ctx, 100*time.Millisecond)
				defer cancel()
			}
			in := layers.NewInitiator(s, "test", time.Now())
			_, err := (&Peek{MaxSize: tc.max}).Accept(ctx, in, s)
			var se *layers.StageError
			if !errors.As(err, &se) || se.Side != layers.SideClient || se.Stage != "peek" || se.Phase != layers.PhasePeek {
				t.Fatalf("err = %#v, want a client peek StageError", err)
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want errors.Is %v", err, tc.want)
			}
			if err.Error() != tc.text {
				t.Errorf("err = %q, want %q", err, tc.text)
			}
		})
	}
}

// TestPeekedConnReadPaths checks Read, WriteTo and ReadFrom of the peeked
// connection deliver the replayed bytes, then the socket's.
func TestPeekedConnReadPaths(t *testing.T) {
	rec := hello(sniExt("a.test"))
	for _, mode := range []string{"read", "writeto"} {
		t.Run(mode, func(t *testing.T) {
			c, s := tcpPair(t)
			go func() {
				c.Write(rec)
				c.Write([]byte("after"))
				c.CloseWrite()
			}()
			pc, err := (&Peek{}).Accept(testCtx(t), layers.NewInitiator(s, "t", time.Now()), s)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			switch mode {
			case "read":
				_, err = io.Copy(&got, struct{ io.Reader }{pc})
			case "writeto":
				_, err = pc.(io.WriterTo).WriteTo(&got)
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := string(rec) + "after"; got.String() != want {
				t.Errorf("read %q, want %q", got.Bytes(), want)
			}
			// The other direction goes to the inner socket, then CloseWrite
			// reaches it.
			if n, err := pc.(io.ReaderFrom).ReadFrom(strings.NewReader("reply")); err != nil || n != 5 {
				t.Fatalf("ReadFrom = %d, %v", n, err)
			}
			if err := pc.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(c)
			if err != nil || string(b) != "reply" {
				t.Errorf("client read %q, %v", b, err)
			}
		})
	}
}

func BenchmarkParseClientHello(b *testing.B) {
	rec := captureHello(b, &tls.Config{ServerName: "www.example.com", NextProtos: []string{"h2", "http/1.1"}})
	b.ReportAllocs()
	b.SetBytes(int64(len(rec)))
	for b.Loop() {
		if _, err := ParseClientHello(rec); err != nil {
			b.Fatal(err)
		}
	}
}
