package integration

import (
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/strata-proxy/strata/acme/acmetest"
	"github.com/strata-proxy/strata/cmd/config"
)

// acmeFront is a configuration with one mode tcp frontend on tlsAddr with
// tls auto for names (none: on demand), a plain frontend on httpAddr for
// HTTP-01, and extra lines under global.acme.
func acmeFront(t *testing.T, peb *acmetest.Pebble, data, httpAddr, tlsAddr, names, acmeExtra string) string {
	t.Helper()
	tlsLine := "tls: auto"
	if names != "" {
		tlsLine = "tls: { auto: [" + names + "] }"
	}
	return fmt.Sprintf(`global:
  data_dir: %q
  acme:
    directory: %q
    ca_root: %q
    retry: { min: 200ms, max: 1s }
    challenges: { http_port: %d, tls_port: %d }
%sfrontends:
  web:
    bind: %q
    mode: tcp
    %s
    default_backend: app
  plain:
    bind: %q
backends:
  app: { servers: [ { address: %q } ] }
`, data, peb.Directory, peb.TLSRootFile, port(t, httpAddr), port(t, tlsAddr), acmeExtra, tlsAddr, tlsLine, httpAddr, serve(t, hello("app")))
}

// TestACMEOnDemand: with an on-demand policy, an allowed name gets its
// certificate at its first handshake, a refused name fails at once and
// never reaches the CA, and the rate limit holds.
func TestACMEOnDemand(t *testing.T) {
	httpAddr, tlsAddr := freeAddr(t), freeAddr(t)
	peb := acmetest.Start(t, acmetest.Options{HTTPPort: port(t, httpAddr), TLSPort: port(t, tlsAddr), NonceReject: -1})
	startStrata(t, acmeFront(t, peb, t.TempDir(), httpAddr, tlsAddr, "", `    on_demand:
      allow: ["*.ok.strata.test"]
      rate: { certificates: 2, per: 1h }
`))
	dial := func(name string) (tls.ConnectionState, error, time.Duration) {
		start := time.Now()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 20 * time.Second}, "tcp", tlsAddr, &tls.Config{RootCAs: peb.Roots(), ServerName: name})
		took := time.Since(start)
		if err != nil {
			return tls.ConnectionState{}, err, took
		}
		defer c.Close()
		return c.ConnectionState(), nil, took
	}
	for _, name := range []string{"a.ok.strata.test", "b.ok.strata.test"} {
		cs, err, took := dial(name)
		if err != nil {
			t.Fatalf("%s: first handshake: %v", name, err)
		}
		if err := peb.VerifyChain(cs.PeerCertificates, name); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: certificate obtained during its first handshake, %s", name, took.Round(time.Millisecond))
	}
	for _, name := range []string{"evil.strata.test", "c.ok.strata.test"} {
		_, err, took := dial(name)
		if err == nil {
			t.Fatalf("%s: handshake succeeded", name)
		}
		if took > time.Second {
			t.Errorf("%s: refused after %s, want a quick failure", name, took)
		}
		if n := peb.Orders(name); n != 0 {
			t.Errorf("%s: %d orders reached the CA", name, n)
		}
		t.Logf("%s refused in %s (%v)", name, took.Round(time.Microsecond), err)
	}
	if n := peb.TotalOrders(); n != 2 {
		t.Errorf("%d orders in all, want 2", n)
	}
}

// TestACMEReloadKeepsProvider: a reload that adds a name gets it a
// certificate from the running provider; names already managed are not
// ordered again.
func TestACMEReloadKeepsProvider(t *testing.T) {
	httpAddr, tlsAddr := freeAddr(t), freeAddr(t)
	peb := acmetest.Start(t, acmetest.Options{HTTPPort: port(t, httpAddr), TLSPort: port(t, tlsAddr), NonceReject: 0})
	data := t.TempDir()
	text := acmeFront(t, peb, data, httpAddr, tlsAddr, "first.strata.test", "")
	rt, _ := startStrata(t, text)
	waitIssued(t, tlsAddr, "first.strata.test", peb, 30*time.Second)

	file := filepath.Join(t.TempDir(), "reload.yaml")
	cfg, err := config.Parse(file, []byte(acmeFront(t, peb, data, httpAddr, tlsAddr, "first.strata.test, second.strata.test", "")))
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	waitIssued(t, tlsAddr, "second.strata.test", peb, 30*time.Second)
	waitIssued(t, tlsAddr, "first.strata.test", peb, 5*time.Second)
	if a, b := peb.Orders("first.strata.test"), peb.Orders("second.strata.test"); a != 1 || b != 1 {
		t.Fatalf("orders after the reload: first=%d second=%d, want 1 each", a, b)
	}
}

// TestACMERenewalSwap: short-lived certificates are renewed in the
// background and swapped with 0 failed handshakes among at least 1,000 new
// connections made through strata during the swap.
func TestACMERenewalSwap(t *testing.T) {
	httpAddr, tlsAddr := freeAddr(t), freeAddr(t)
	peb := acmetest.Start(t, acmetest.Options{HTTPPort: port(t, httpAddr), TLSPort: port(t, tlsAddr), NonceReject: 0, Validity: 6 * time.Second})
	const name = "renew.strata.test"
	_, logs := startStrata(t, acmeFront(t, peb, t.TempDir(), httpAddr, tlsAddr, name, "    renew_window: 0.5\n    check_interval: 200ms\n"))
	first := waitIssued(t, tlsAddr, name, peb, 30*time.Second).PeerCertificates[0].SerialNumber.String()

	var (
		mu       sync.Mutex
		conns    int
		after    int
		failures []error
		serials  = map[string]int{}
	)
	done := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(serials) >= 2 && conns >= 1000 && after >= 500
	}
	cfg := &tls.Config{RootCAs: peb.Roots(), ServerName: name}
	deadline := time.Now().Add(40 * time.Second)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !done() && time.Now().Before(deadline) {
				c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", tlsAddr, cfg)
				mu.Lock()
				conns++
				if err != nil {
					failures = append(failures, err)
				} else if s := c.ConnectionState().PeerCertificates[0].SerialNumber.String(); true {
					serials[s]++
					if s != first || len(serials) > 1 {
						after++
					}
				}
				mu.Unlock()
				if c != nil {
					c.Close()
				}
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d new connections through strata (%d after the swap), %d failed handshakes, certificates served (serial: connections): %v", conns, after, len(failures), serials)
	if len(failures) > 0 {
		t.Fatalf("%d handshakes failed; first: %v", len(failures), failures[0])
	}
	if len(serials) < 2 || conns < 1000 || after < 500 {
		t.Fatalf("no renewal swap observed with enough connections")
	}
	if len(logs.records("certificate renewed")) == 0 {
		t.Errorf("no \"certificate renewed\" event in the log")
	}
}
