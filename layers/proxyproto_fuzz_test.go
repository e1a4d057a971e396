package layers

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzProxyHeader checks ParseProxyHeader on any input: it never panics,
// never claims more bytes than it was given, fails only with
// io.ErrUnexpectedEOF or ErrBadHeader, parses its own claimed prefix to
// the same result, and what it parses re-encodes (v2) to a header that
// parses to the same addresses. The seed corpus in
// testdata/fuzz/FuzzProxyHeader is go-proxyproto encoder output (v1
// TCP4/TCP6/UNKNOWN, v2 PROXY/LOCAL with TLVs) and malformed headers.
func FuzzProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 192.0.2.1 198.51.100.2 5000 443\r\nGET / HTTP/1.1\r\n"))
	f.Add([]byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\xc0\x00\x02\x01\xc6\x33\x64\x02\x13\x88\x01\xbb"))
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		hdr, n, err := ParseProxyHeader(b)
		if !bytes.Equal(b, orig) {
			t.Fatal("ParseProxyHeader modified its input")
		}
		if err != nil {
			if n != 0 {
				t.Fatalf("error %v with n = %d", err, n)
			}
			if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrBadHeader) {
				t.Fatalf("error %v is neither io.ErrUnexpectedEOF nor ErrBadHeader", err)
			}
			return
		}
		if n <= 0 || n > len(b) || n > MaxProxyHeaderLen {
			t.Fatalf("n = %d for %d bytes", n, len(b))
		}
		if hdr.Version != 1 && hdr.Version != 2 {
			t.Fatalf("Version = %d", hdr.Version)
		}
		again, n2, err := ParseProxyHeader(b[:n])
		if err != nil || n2 != n || again.Source != hdr.Source || again.Dest != hdr.Dest || again.Local != hdr.Local {
			t.Fatalf("parsing the claimed %d bytes again gave %+v, %d, %v; first %+v", n, again, n2, err, hdr)
		}
		if hdr.Local && hdr.Source.IsValid() {
			t.Fatalf("LOCAL header with addresses %+v", hdr)
		}
		if hdr.Source.IsValid() != hdr.Dest.IsValid() {
			t.Fatalf("only one address set: %+v", hdr)
		}
		if hdr.Source.Addr().Is4In6() || hdr.Dest.Addr().Is4In6() {
			t.Fatalf("4-in-6 address not unmapped: %+v", hdr)
		}

		enc, err := AppendProxyHeader(nil, hdr.Source, hdr.Dest)
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", hdr, err)
		}
		back, n3, err := ParseProxyHeader(enc)
		if err != nil || n3 != len(enc) {
			t.Fatalf("re-encoded header %q does not parse: %d, %v", enc, n3, err)
		}
		if back.Version != 2 || back.Source != hdr.Source || back.Dest != hdr.Dest || back.Proxied() != hdr.Proxied() {
			t.Fatalf("round trip: %+v became %+v", hdr, back)
		}
	})
}
