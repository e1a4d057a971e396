package integration

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/strata-proxy/strata/acme/acmetest"
)

// port returns the port of a host:port address.
func port(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestACMEIssuance: a name validated only by HTTP-01 (answered on strata's
// plain HTTP frontend) and one validated only by TLS-ALPN-01 (answered in
// strata's TLS stage) are issued by a real ACME CA (Pebble, nonce
// rejection on) within 30 s; the chain verifies against Pebble's root and
// is served over HTTP/1.1 and to a handshake offering h2.
func TestACMEIssuance(t *testing.T) {
	for _, tc := range []struct {
		challenge, name, disable string
	}{
		{"http-01", "http01.strata.test", "tls_alpn01: false"},
		{"tls-alpn-01", "alpn.strata.test", "http01: false"},
	} {
		t.Run(tc.challenge, func(t *testing.T) {
			httpAddr, tlsAddr := freeAddr(t), freeAddr(t)
			peb := acmetest.Start(t, acmetest.Options{HTTPPort: port(t, httpAddr), TLSPort: port(t, tlsAddr), NonceReject: -1})
			backend := startHTTPBackend(t, newPKI(t), false)
			start := time.Now()
			_, logs := startStrata(t, fmt.Sprintf(`global:
  data_dir: %q
  acme:
    directory: %q
    ca_root: %q
    email: ops@strata.test
    retry: { min: 200ms, max: 2s }
    challenges: { %s, http_port: %d, tls_port: %d }
frontends:
  web:
    bind: [ { address: %q, quic: true } ]
    tls: { auto: [%s] }
    default_backend: app
  plain:
    bind: %q
backends:
  app: { servers: [ { address: %q } ] }
`, t.TempDir(), peb.Directory, peb.TLSRootFile, tc.disable, port(t, httpAddr), port(t, tlsAddr), tlsAddr, tc.name, httpAddr, backend.addr))

			cs := waitIssued(t, tlsAddr, tc.name, peb, 30*time.Second)
			t.Logf("%s issued and served %s after start", tc.name, time.Since(start).Round(time.Millisecond))
			if err := peb.VerifyChain(cs.PeerCertificates, tc.name); err != nil {
				t.Fatalf("served chain does not verify against Pebble's root: %v", err)
			}
			if n := peb.Orders(tc.name); n != 1 {
				t.Errorf("%d orders for %s, want 1", n, tc.name)
			}

			// HTTP/1.1 through the managed certificate.
			client := &http.Client{Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: peb.Roots(), ServerName: tc.name},
				DialContext:     (&net.Dialer{}).DialContext,
			}}
			defer client.CloseIdleConnections()
			resp, err := client.Post("https://"+tlsAddr+"/echo", "text/plain", strings.NewReader("hello"))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("X-Body-Len") != "5" || len(body) != 5 {
				t.Fatalf("HTTP/1.1 over the ACME certificate: %d, %d bytes", resp.StatusCode, len(body))
			}

			// HTTP/2 (ALPN h2) over the same certificate.
			h2client := &http.Client{Transport: &http.Transport{
				TLSClientConfig:   &tls.Config{RootCAs: peb.Roots(), ServerName: tc.name},
				ForceAttemptHTTP2: true,
			}}
			defer h2client.CloseIdleConnections()
			resp, err = h2client.Post("https://"+tlsAddr+"/echo", "text/plain", strings.NewReader("hello, h2"))
			if err != nil {
				t.Fatal(err)
			}
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.ProtoMajor != 2 || len(body) != 9 {
				t.Fatalf("HTTP/2 over the ACME certificate: %d over %s, %d bytes", resp.StatusCode, resp.Proto, len(body))
			}
			if err := peb.VerifyChain(resp.TLS.PeerCertificates, tc.name); err != nil {
				t.Fatalf("chain served to the h2 client: %v", err)
			}

			// HTTP/3 (QUIC, same port) over the same certificate.
			h3tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: peb.Roots(), ServerName: tc.name}}
			defer h3tr.Close()
			resp, err = (&http.Client{Transport: h3tr, Timeout: 10 * time.Second}).Post("https://"+tlsAddr+"/echo", "text/plain", strings.NewReader("hello, h3"))
			if err != nil {
				t.Fatal(err)
			}
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.ProtoMajor != 3 || len(body) != 9 {
				t.Fatalf("HTTP/3 over the ACME certificate: %d over %s, %d bytes", resp.StatusCode, resp.Proto, len(body))
			}
			if err := peb.VerifyChain(resp.TLS.PeerCertificates, tc.name); err != nil {
				t.Fatalf("chain served to the h3 client: %v", err)
			}

			// The plain frontend redirects everything but validations.
			pc, err := net.Dial("tcp", httpAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			pc.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(pc, "GET /x?y=1 HTTP/1.1\r\nHost: %s\r\n\r\n", tc.name)
			rr, err := http.ReadResponse(bufio.NewReader(pc), nil)
			if err != nil {
				t.Fatal(err)
			}
			rr.Body.Close()
			if rr.StatusCode != 308 || rr.Header.Get("Location") != "https://"+tc.name+"/x?y=1" {
				t.Fatalf("port-80 request: %d Location %q, want a 308 to https", rr.StatusCode, rr.Header.Get("Location"))
			}
			// The validation handshake made no session: no access line
			// names acme-tls/1, and once issued no handshake fails.
			failed := func() int {
				n := 0
				for _, r := range logs.records("session") {
					term, _ := r["term"].(string)
					if strings.Contains(term, "acme") {
						t.Errorf("access log line for a validation handshake: %v", r)
					}
					if strings.Contains(term, "tls handshake") {
						n++
					}
				}
				return n
			}
			before := failed()
			for range 20 {
				c, err := tls.Dial("tcp", tlsAddr, &tls.Config{RootCAs: peb.Roots(), ServerName: tc.name})
				if err != nil {
					t.Fatal(err)
				}
				c.Close()
			}
			time.Sleep(100 * time.Millisecond)
			if after := failed(); after != before {
				t.Errorf("%d failed handshakes after issuance", after-before)
			}
			if len(logs.records("certificate obtained")) == 0 {
				t.Errorf("no \"certificate obtained\" event in the log:\n%s", logs.String())
			}
		})
	}
}

// waitIssued dials addr with SNI name until the handshake verifies against
// the CA's root, and returns its state.
func waitIssued(t *testing.T, addr, name string, peb *acmetest.Pebble, within time.Duration) tls.ConnectionState {
	t.Helper()
	deadline := time.Now().Add(within)
	var err error
	for time.Now().Before(deadline) {
		var c *tls.Conn
		c, err = tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: peb.Roots(), ServerName: name})
		if err == nil {
			cs := c.ConnectionState()
			c.Close()
			return cs
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no verified certificate for %s within %s: %v", name, within, err)
	return tls.ConnectionState{}
}

// TestACMECAUnreachableAtStart: with the CA down, a name whose certificate
// is in storage is served at once, another fails its handshake cleanly,
// and when the CA comes back its certificate arrives without a restart.
func TestACMECAUnreachableAtStart(t *testing.T) {
	httpAddr, tlsAddr := freeAddr(t), freeAddr(t)
	peb := acmetest.Start(t, acmetest.Options{HTTPPort: port(t, httpAddr), TLSPort: port(t, tlsAddr), NonceReject: 0})
	data := t.TempDir()
	conf := func(names string) string {
		return acmeFront(t, peb, data, httpAddr, tlsAddr, names, "")
	}
	// A first run stores stored.strata.test, then stops.
	first, _ := startStrata(t, conf("stored.strata.test"))
	waitIssued(t, tlsAddr, "stored.strata.test", peb, 30*time.Second)
	shutdown(t, first)

	peb.SetDown(true)
	start := time.Now()
	_, logs := startStrata(t, conf("stored.strata.test, missing.strata.test"))
	waitIssued(t, tlsAddr, "stored.strata.test", peb, 5*time.Second)
	t.Logf("stored certificate served %s after start with the CA down", time.Since(start).Round(time.Millisecond))

	_, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", tlsAddr, &tls.Config{RootCAs: peb.Roots(), ServerName: "missing.strata.test"})
	if err == nil {
		t.Fatal("a name without a certificate completed a handshake")
	}
	logs.waitAccess(t, func(r map[string]any) bool {
		term, _ := r["term"].(string)
		return term == "client tls handshake: no certificate for missing.strata.test"
	})
	deadline := time.Now().Add(10 * time.Second)
	for len(logs.records("certificate not obtained; retrying")) < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	retries := logs.records("certificate not obtained; retrying")
	if len(retries) < 2 {
		t.Fatalf("retries logged: %d", len(retries))
	}
	t.Logf("%d retries logged while the CA was down, first: retry_in=%v next_retry=%v", len(retries), retries[0]["retry_in"], retries[0]["next_retry"])

	peb.SetDown(false)
	back := time.Now()
	waitIssued(t, tlsAddr, "missing.strata.test", peb, 30*time.Second)
	t.Logf("missing certificate served %s after the CA came back, no restart", time.Since(back).Round(time.Millisecond))
}

// TestACMESharedStorage: two strata instances sharing one data_dir order
// each name exactly once and serve the same certificate.
func TestACMESharedStorage(t *testing.T) {
	httpAddr := freeAddr(t)
	tlsA, tlsB := freeAddr(t), freeAddr(t)
	// Pebble validates TLS-ALPN-01 on one port, so only HTTP-01 is used;
	// both instances answer it through the shared storage.
	peb := acmetest.Start(t, acmetest.Options{HTTPPort: port(t, httpAddr), TLSPort: port(t, tlsA), NonceReject: -1})
	data := t.TempDir()
	backend := serve(t, hello("app"))
	conf := func(tlsAddr, plain string) string {
		p := ""
		if plain != "" {
			p = fmt.Sprintf("  plain:\n    bind: %q\n", plain)
		} else {
			p = fmt.Sprintf("  other:\n    bind: %q\n    https_redirect: true\n", freeAddr(t))
		}
		return fmt.Sprintf(`global:
  data_dir: %q
  acme:
    directory: %q
    ca_root: %q
    challenges: { tls_alpn01: false, http_port: %d }
frontends:
  web:
    bind: %q
    mode: tcp
    tls: { auto: [one.strata.test, two.strata.test] }
    default_backend: app
%sbackends:
  app: { servers: [ { address: %q } ] }
`, data, peb.Directory, peb.TLSRootFile, port(t, httpAddr), tlsAddr, p, backend)
	}
	startStrata(t, conf(tlsA, httpAddr))
	startStrata(t, conf(tlsB, ""))
	for _, name := range []string{"one.strata.test", "two.strata.test"} {
		a := waitIssued(t, tlsA, name, peb, 30*time.Second)
		b := waitIssued(t, tlsB, name, peb, 30*time.Second)
		if !a.PeerCertificates[0].Equal(b.PeerCertificates[0]) {
			t.Errorf("%s: the instances serve different certificates", name)
		}
		if n := peb.Orders(name); n != 1 {
			t.Errorf("%s: %d orders, want exactly 1", name, n)
		}
	}
	t.Logf("orders: one=%d two=%d", peb.Orders("one.strata.test"), peb.Orders("two.strata.test"))
}

// shutdown stops a Runtime before the end of the test.
func shutdown(t *testing.T, rt interface {
	Shutdown(context.Context) error
}) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rt.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}
