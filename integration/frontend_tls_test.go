package integration

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/strata-proxy/strata/certs"
)

// TestFrontendTLS: certificates are chosen by SNI (exact and wildcard),
// client certificates are required when configured, and a refused
// handshake ends with a clear termination state.
func TestFrontendTLS(t *testing.T) {
	p := newPKI(t)
	aCert, aKey := p.issue(t, "a", certs.IssueOptions{}, "a.test")
	wCert, wKey := p.issue(t, "wild", certs.IssueOptions{}, "*.w.test")
	clientCert := p.leaf(t, certs.IssueOptions{Client: true}, "client.test")
	backend := serve(t, hello("app"))
	front := freeAddr(t)
	_, logs := startStrata(t, fmt.Sprintf(`frontends:
  mtls:
    bind: %q
    mode: tcp
    tls:
      certificates:
        - { cert: %q, key: %q }
        - { cert: %q, key: %q }
      min_version: "1.2"
      client_auth: { ca: %q, mode: require }
    default_backend: app
backends:
  app: { servers: [ { address: %q } ] }
`, front, aCert, aKey, wCert, wKey, p.rootFile(), backend))

	for _, tc := range []struct {
		sni, want string
		version   uint16
	}{
		{"a.test", "a.test", tls.VersionTLS13},
		{"x.w.test", "*.w.test", tls.VersionTLS13},
		{"x.w.test", "*.w.test", tls.VersionTLS12},
	} {
		c, err := tls.Dial("tcp", front, &tls.Config{
			ServerName: tc.sni, RootCAs: p.pool(), Certificates: []tls.Certificate{clientCert},
			MaxVersion: tc.version,
		})
		if err != nil {
			t.Fatalf("%s: %v", tc.sni, err)
		}
		if got := c.ConnectionState().PeerCertificates[0].DNSNames[0]; got != tc.want {
			t.Errorf("SNI %s got the certificate for %s, want %s", tc.sni, got, tc.want)
		}
		if line := readLine(t, c); line != "app" {
			t.Errorf("SNI %s: got %q", tc.sni, line)
		}
		c.Close()
	}

	// No client certificate: the handshake is refused and says why.
	c, err := tls.Dial("tcp", front, &tls.Config{ServerName: "a.test", RootCAs: p.pool()})
	if err == nil {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(c) // TLS 1.3: the client learns on its first read
		c.Close()
		if len(b) != 0 {
			t.Fatalf("got %q without a client certificate", b)
		}
	}
	logs.waitAccess(t, func(m map[string]any) bool {
		return m["term"] == "client tls handshake: no client certificate"
	})
}

// TestCertificateReload: replacing a frontend's certificate files is picked
// up by the running proxy without a restart or a reload.
func TestCertificateReload(t *testing.T) {
	p := newPKI(t)
	cert, key := p.issue(t, "site", certs.IssueOptions{}, "site.test")
	backend := serve(t, hello("app"))
	front := freeAddr(t)
	startStrata(t, fmt.Sprintf(`frontends:
  web:
    bind: %q
    mode: tcp
    tls: { certificates: [ { cert: %q, key: %q } ] }
    default_backend: app
backends:
  app: { servers: [ { address: %q } ] }
`, front, cert, key, backend))
	serial := func() string {
		t.Helper()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", front,
			&tls.Config{ServerName: "site.test", RootCAs: p.pool()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before := serial()
	next, err := p.ca.Issue([]string{"site.test", "new.site.test"}, certs.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := certs.WriteFiles(next, p.dir, "site"); err != nil {
		t.Fatal(err)
	}
	want := next.Leaf.SerialNumber.String()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := serial()
		if got == want {
			break
		}
		if got != before {
			t.Fatalf("served serial %s, neither the old %s nor the new %s", got, before, want)
		}
		if time.Now().After(deadline) {
			t.Fatalf("still serving the old certificate 15s after its files changed")
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A broken file never takes the working certificate away.
	os.WriteFile(cert, []byte("not a certificate"), 0o644)
	time.Sleep(6 * time.Second)
	if got := serial(); got != want {
		t.Fatalf("after a broken write the proxy serves %s, want the last good %s", got, want)
	}
}
