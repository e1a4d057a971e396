package integration

import (
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/strata-proxy/strata/certs"
)

// dialer opens a client connection to strata, plain or TLS.
type dialer func(t *testing.T, addr string) net.Conn

func plainDial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func tlsDial(p *pki, name string) dialer {
	return func(t *testing.T, addr string) net.Conn {
		t.Helper()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
			&tls.Config{ServerName: name, RootCAs: p.pool()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
}

// tcpFront is one frontend in mode tcp to one backend at addr, plain or
// terminating TLS with a certificate for localhost.
func tcpFront(t *testing.T, p *pki, useTLS bool, backend string) (cfg, front string) {
	t.Helper()
	front = freeAddr(t)
	tlsBlock := ""
	if useTLS {
		cert, key := p.issue(t, "front", certs.IssueOptions{}, "localhost", "127.0.0.1")
		tlsBlock = fmt.Sprintf("    tls:\n      certificates:\n        - { cert: %q, key: %q }\n", cert, key)
	}
	cfg = fmt.Sprintf(`frontends:
  web:
    bind: %q
    mode: tcp
%s    default_backend: app
backends:
  app:
    servers:
      - { name: s1, address: %q }
`, front, tlsBlock, backend)
	return cfg, front
}

// modes runs body once with a plain front and once with TLS termination.
func modes(t *testing.T, body func(t *testing.T, p *pki, useTLS bool, dial dialer)) {
	p := newPKI(t)
	t.Run("plain", func(t *testing.T) { body(t, p, false, plainDial) })
	t.Run("tls", func(t *testing.T) { body(t, p, true, tlsDial(p, "localhost")) })
}

// TestBulkByteExact sends 256 MiB each way at once through strata and
// checks both directions byte for byte (sha256).
func TestBulkByteExact(t *testing.T) {
	size := int64(256 << 20)
	if testing.Short() {
		size = 16 << 20
	}
	modes(t, func(t *testing.T, p *pki, useTLS bool, dial dialer) {
		got := make(chan [32]byte, 1)
		backend := serve(t, func(c net.Conn) {
			done := make(chan struct{})
			go func() {
				defer close(done)
				io.Copy(c, newStream(2, size))
				c.(*net.TCPConn).CloseWrite()
			}()
			h := sha256.New()
			io.Copy(h, c)
			var d [32]byte
			copy(d[:], h.Sum(nil))
			got <- d
			<-done
		})
		cfg, front := tcpFront(t, p, useTLS, backend)
		_, logs := startStrata(t, cfg)
		c := dial(t, front)
		c.SetDeadline(time.Now().Add(60 * time.Second))
		sendErr := make(chan error, 1)
		go func() {
			_, err := io.Copy(c, newStream(1, size))
			if err == nil {
				err = c.(interface{ CloseWrite() error }).CloseWrite()
			}
			sendErr <- err
		}()
		h := sha256.New()
		n, err := io.Copy(h, c)
		if err != nil {
			t.Fatalf("reading after %d bytes: %v", n, err)
		}
		if err := <-sendErr; err != nil {
			t.Fatalf("sending: %v", err)
		}
		if n != size || [32]byte(h.Sum(nil)) != digest(2, size) {
			t.Fatalf("server→client: got %d bytes, sha256 differs or short (want %d)", n, size)
		}
		if <-got != digest(1, size) {
			t.Fatal("client→server: sha256 differs")
		}
		r := logs.waitAccess(t, func(m map[string]any) bool { return m["frontend"] == "web" })
		if r["bytes_in"].(float64) != float64(size) || r["bytes_out"].(float64) != float64(size) {
			t.Errorf("access log bytes_in=%v bytes_out=%v, want %d each", r["bytes_in"], r["bytes_out"], size)
		}
	})
}

// TestHalfClose: the client finishes sending; the server sees EOF and can
// still answer, and the client reads the answer.
func TestHalfClose(t *testing.T) {
	modes(t, func(t *testing.T, p *pki, useTLS bool, dial dialer) {
		backend := serve(t, func(c net.Conn) {
			b, err := io.ReadAll(c)
			if err != nil {
				return
			}
			fmt.Fprintf(c, "got %q after EOF\n", b)
		})
		cfg, front := tcpFront(t, p, useTLS, backend)
		_, logs := startStrata(t, cfg)
		c := dial(t, front)
		io.WriteString(c, "ping")
		if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		if err != nil {
			t.Fatal(err)
		}
		if want := "got \"ping\" after EOF\n"; string(b) != want {
			t.Fatalf("got %q, want %q", b, want)
		}
		r := logs.waitAccess(t, func(m map[string]any) bool { return true })
		if term := r["term"].(string); !strings.HasPrefix(term, "client close") && !strings.HasPrefix(term, "server close") {
			t.Errorf("term = %q, want a normal close", term)
		}
	})
}
