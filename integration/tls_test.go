package integration

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"

	"github.com/strata-proxy/strata/certs"
)

// tlsServe serves TLS with cert on a new loopback listener; handle gets
// the handshaken connection.
func tlsServe(t *testing.T, cfg *tls.Config, handle func(*tls.Conn)) string {
	t.Helper()
	return serve(t, func(c net.Conn) {
		tc := tls.Server(c, cfg)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err != nil {
			return
		}
		handle(tc)
	})
}

// TestSNIPassthrough routes by SNI without decrypting: the client sees each
// backend's own certificate.
func TestSNIPassthrough(t *testing.T) {
	p := newPKI(t)
	backend := func(name string) string {
		cfg := &tls.Config{Certificates: []tls.Certificate{p.leaf(t, certs.IssueOptions{}, name)}}
		return tlsServe(t, cfg, func(c *tls.Conn) { fmt.Fprintf(c, "%s\n", name) })
	}
	a, b := backend("a.test"), backend("b.test")
	front := freeAddr(t)
	_, logs := startStrata(t, fmt.Sprintf(`frontends:
  edge:
    bind: %q
    mode: tcp
    passthrough: true
    routes:
      - { sni: [a.test], backend: a }
      - { sni: ["*.b.test", b.test], backend: b }
backends:
  a: { servers: [ { address: %q } ] }
  b: { servers: [ { address: %q } ] }
`, front, a, b))
	for _, name := range []string{"a.test", "b.test", "a.test"} {
		c, err := tls.Dial("tcp", front, &tls.Config{ServerName: name, RootCAs: p.pool()})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := readLine(t, c); got != name {
			t.Errorf("SNI %s reached %q", name, got)
		}
		if leaf := c.ConnectionState().PeerCertificates[0]; leaf.DNSNames[0] != name {
			t.Errorf("SNI %s: certificate for %v, want the backend's own", name, leaf.DNSNames)
		}
		c.Close()
	}
	// An unknown name has no route: the connection is closed.
	c, err := tls.Dial("tcp", front, &tls.Config{ServerName: "c.test", RootCAs: p.pool()})
	if err == nil {
		c.Close()
		t.Fatal("unknown SNI: handshake succeeded, want it refused")
	}
	logs.waitAccess(t, func(m map[string]any) bool {
		return m["sni"] == "c.test" && strings.Contains(m["term"].(string), "no route")
	})
}

// TestBackendTLS re-encrypts to servers: a good CA and name succeed; an
// unknown CA, a wrong name and an expired certificate fail closed with a
// clear termination state.
func TestBackendTLS(t *testing.T) {
	p, other := newPKI(t), newPKI(t)
	clientCert, clientKey := p.issue(t, "client", certs.IssueOptions{Client: true}, "strata.test")
	serverTLS := func(cert tls.Certificate) *tls.Config {
		return &tls.Config{
			Certificates: []tls.Certificate{cert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    p.pool(),
		}
	}
	say := func(c *tls.Conn) {
		fmt.Fprintf(c, "hello %s\n", c.ConnectionState().PeerCertificates[0].DNSNames[0])
	}
	cases := []struct {
		name string
		cert tls.Certificate
		want string // "" = success
	}{
		{"good", p.leaf(t, certs.IssueOptions{}, "backend.test"), ""},
		{"unknown-ca", other.leaf(t, certs.IssueOptions{}, "backend.test"), "server tls handshake: unknown authority"},
		{"wrong-name", p.leaf(t, certs.IssueOptions{}, "other.test"), "server tls handshake: certificate name mismatch"},
		{"expired", p.leaf(t, certs.IssueOptions{NotBefore: time.Now().Add(-48 * time.Hour), Lifetime: time.Hour}, "backend.test"), "server tls handshake: certificate expired"},
	}
	var cfg strings.Builder
	cfg.WriteString("frontends:\n")
	var backends strings.Builder
	fronts := map[string]string{}
	for _, tc := range cases {
		addr := tlsServe(t, serverTLS(tc.cert), say)
		front := freeAddr(t)
		fronts[tc.name] = front
		fmt.Fprintf(&cfg, "  f-%s: { bind: %q, mode: tcp, default_backend: %s }\n", tc.name, front, tc.name)
		fmt.Fprintf(&backends, `  %s:
    servers: [ { address: %q } ]
    retries: 0
    tls: { sni: backend.test, ca: %q, client_cert: %q, client_key: %q }
`, tc.name, addr, p.rootFile(), clientCert, clientKey)
	}
	cfg.WriteString("backends:\n" + backends.String())
	_, logs := startStrata(t, cfg.String())
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := plainDial(t, fronts[tc.name])
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			b, err := io.ReadAll(c)
			if tc.want == "" {
				if err != nil || string(b) != "hello strata.test\n" {
					t.Fatalf("got %q, %v; want the backend's greeting to our client certificate", b, err)
				}
				return
			}
			if len(b) != 0 {
				t.Fatalf("got %q through a backend that should have been refused", b)
			}
			r := logs.waitAccess(t, func(m map[string]any) bool { return m["frontend"] == "f-"+tc.name })
			if term := r["term"].(string); !strings.HasPrefix(term, tc.want) {
				t.Errorf("term = %q, want prefix %q", term, tc.want)
			}
		})
	}
}

// TestProxyProtocolInOut: a PROXY v2 header from the client sets the source
// strata logs and sends on to the server in its own v2 header.
func TestProxyProtocolInOut(t *testing.T) {
	type seen struct {
		src, dst string
		data     string
	}
	got := make(chan seen, 1)
	backend := serve(t, func(c net.Conn) {
		h, err := proxyproto.Read(newBufReader(c))
		if err != nil {
			got <- seen{data: "no header: " + err.Error()}
			return
		}
		got <- seen{src: h.SourceAddr.String(), dst: h.DestinationAddr.String()}
		io.WriteString(c, "ok\n")
	})
	front := freeAddr(t)
	_, logs := startStrata(t, fmt.Sprintf(`frontends:
  pp:
    bind: %q
    mode: tcp
    proxy_protocol: true
    default_backend: app
backends:
  app:
    servers: [ { address: %q, send_proxy: true } ]
`, front, backend))
	c := plainDial(t, front)
	h := proxyproto.HeaderProxyFromAddrs(2,
		net.TCPAddrFromAddrPort(netip.MustParseAddrPort("203.0.113.7:4242")),
		net.TCPAddrFromAddrPort(netip.MustParseAddrPort("198.51.100.1:443")))
	if _, err := h.WriteTo(c); err != nil {
		t.Fatal(err)
	}
	if line := readLine(t, c); line != "ok" {
		t.Fatalf("got %q", line)
	}
	s := <-got
	if s.src != "203.0.113.7:4242" || s.dst != "198.51.100.1:443" {
		t.Fatalf("server saw PROXY source %q destination %q (%s)", s.src, s.dst, s.data)
	}
	c.Close()
	logs.waitAccess(t, func(m map[string]any) bool { return m["client"] == "203.0.113.7:4242" })

	// A client without a header is refused before any server is reached.
	c2 := plainDial(t, front)
	io.WriteString(c2, "GET / HTTP/1.0\r\n\r\n")
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, _ := io.ReadAll(c2); len(b) != 0 {
		t.Fatalf("got %q without a PROXY header", b)
	}
	logs.waitAccess(t, func(m map[string]any) bool {
		return strings.HasPrefix(m["term"].(string), "client proxy")
	})
}

// TestTLSToBackendsHTTP: in mode http, a backend whose certificate verifies
// answers 200; an unknown authority, a wrong name or an expired
// certificate is answered 502 with the handshake's cause in the log.
func TestTLSToBackendsHTTP(t *testing.T) {
	p, other := newPKI(t), newPKI(t)
	cases := []struct {
		name string
		cert tls.Certificate
		want string // "" = success
	}{
		{"good", p.leaf(t, certs.IssueOptions{}, "backend.test"), ""},
		{"unknown-ca", other.leaf(t, certs.IssueOptions{}, "backend.test"), "server tls handshake: unknown authority"},
		{"wrong-name", p.leaf(t, certs.IssueOptions{}, "other.test"), "server tls handshake: certificate name mismatch"},
		{"expired", p.leaf(t, certs.IssueOptions{NotBefore: time.Now().Add(-48 * time.Hour), Lifetime: time.Hour}, "backend.test"), "server tls handshake: certificate expired"},
	}
	var cfg, backends strings.Builder
	cfg.WriteString("frontends:\n")
	fronts := map[string]string{}
	for _, tc := range cases {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{
			Handler:   http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }),
			TLSConfig: &tls.Config{Certificates: []tls.Certificate{tc.cert}},
			ErrorLog:  log.New(io.Discard, "", 0),
		}
		go srv.ServeTLS(ln, "", "")
		t.Cleanup(func() { srv.Close() })
		front := freeAddr(t)
		fronts[tc.name] = front
		fmt.Fprintf(&cfg, "  f-%s: { bind: %q, default_backend: %s }\n", tc.name, front, tc.name)
		fmt.Fprintf(&backends, "  %s:\n    servers: [ { address: %q } ]\n    retries: 0\n    tls: { sni: backend.test, ca: %q }\n",
			tc.name, ln.Addr(), p.rootFile())
	}
	cfg.WriteString("backends:\n" + backends.String())
	_, logs := startStrata(t, cfg.String())
	client := &http.Client{Timeout: 10 * time.Second}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := client.Get("http://" + fronts[tc.name] + "/")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if tc.want == "" {
				if resp.StatusCode != 200 || string(body) != "hello" {
					t.Fatalf("got %d %q", resp.StatusCode, body)
				}
				return
			}
			if resp.StatusCode != 502 {
				t.Fatalf("got %d, want 502", resp.StatusCode)
			}
			r := logs.waitAccess(t, func(m map[string]any) bool { return m["frontend"] == "f-"+tc.name })
			if term, _ := r["term"].(string); !strings.HasPrefix(term, tc.want) {
				t.Fatalf("termination %q, want %q", term, tc.want)
			}
		})
	}
}
