package acme_test

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/strata-proxy/strata/acme"
	"github.com/strata-proxy/strata/acme/acmetest"
	"github.com/strata-proxy/strata/certs"
)

// solvers answers Pebble's validations for the providers added to it: an
// HTTP server for HTTP-01 and a TLS listener for TLS-ALPN-01, both on
// 127.0.0.1, as strata's frontends do.
type solvers struct {
	httpLn, tlsLn net.Listener
	srv           *http.Server

	mu        sync.Mutex
	providers []*acme.Provider
	wg        sync.WaitGroup
}

func newSolvers(t *testing.T) *solvers {
	t.Helper()
	s := &solvers{}
	var err error
	if s.httpLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if s.tlsLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, p := range s.list() {
			if body, ok := p.HTTPChallenge(r.Host, r.URL.Path); ok {
				w.Write(body)
				return
			}
		}
		http.NotFound(w, r)
	})}
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.srv.Serve(s.httpLn) }()
	go func() {
		defer s.wg.Done()
		cfg := &tls.Config{
			NextProtos: []string{acme.ACMETLS1},
			GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
				for _, p := range s.list() {
					if c, ok := p.ChallengeCert(hello); ok && c != nil {
						return c, nil
					}
				}
				return nil, errors.New("no challenge")
			},
		}
		for {
			c, err := s.tlsLn.Accept()
			if err != nil {
				return
			}
			go func() {
				tc := tls.Server(c, cfg)
				tc.SetDeadline(time.Now().Add(10 * time.Second))
				tc.Handshake()
				tc.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		s.srv.Close()
		s.tlsLn.Close()
		s.wg.Wait()
	})
	return s
}

func (s *solvers) add(p *acme.Provider) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.providers = append(s.providers, p)
}

func (s *solvers) list() []*acme.Provider {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*acme.Provider(nil), s.providers...)
}

func (s *solvers) ports() (httpPort, tlsPort int) {
	return s.httpLn.Addr().(*net.TCPAddr).Port, s.tlsLn.Addr().(*net.TCPAddr).Port
}

// newProvider starts a Provider against peb, answered by s, stopped with
// the test.
func newProvider(t *testing.T, peb *acmetest.Pebble, s *solvers, storage string, edit func(*acme.Options)) *acme.Provider {
	t.Helper()
	roots, err := certs.LoadPool(peb.TLSRootFile)
	if err != nil {
		t.Fatal(err)
	}
	hp, tp := s.ports()
	o := acme.Options{
		Storage:    storage,
		CA:         acme.Issuer{Directory: peb.Directory, Roots: roots},
		HTTP01:     true,
		TLSALPN01:  true,
		ListenHost: "127.0.0.1",
		HTTPPort:   hp,
		TLSPort:    tp,
		RetryMin:   200 * time.Millisecond,
		RetryMax:   time.Second,
		Logger:     testLogger(t),
	}
	if edit != nil {
		edit(&o)
	}
	p, err := acme.New(o)
	if err != nil {
		t.Fatal(err)
	}
	s.add(p)
	t.Cleanup(p.Stop)
	return p
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("STRATA_ACME_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// waitCert polls p until it serves a certificate for name.
func waitCert(t *testing.T, p *acme.Provider, name string, within time.Duration) *tls.Certificate {
	t.Helper()
	deadline := time.Now().Add(within)
	var err error
	for time.Now().Before(deadline) {
		var c *tls.Certificate
		if c, err = p.GetCertificate(hello(t, name)); err == nil && c != nil && c.Leaf != nil {
			return c
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no certificate for %s within %s: %v", name, within, err)
	return nil
}

func TestProviderIssuesWithEachChallenge(t *testing.T) {
	s := newSolvers(t)
	hp, tp := s.ports()
	peb := acmetest.Start(t, acmetest.Options{HTTPPort: hp, TLSPort: tp, NonceReject: -1})
	cases := []struct {
		name string
		host string
		edit func(*acme.Options)
	}{
		{"http-01", "http01.strata.test", func(o *acme.Options) { o.TLSALPN01 = false }},
		{"tls-alpn-01", "alpn.strata.test", func(o *acme.Options) { o.HTTP01 = false }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			p := newProvider(t, peb, s, filepath.Join(t.TempDir(), "acme"), tc.edit)
			p.Manage([]string{tc.host})
			c := waitCert(t, p, tc.host, 30*time.Second)
			t.Logf("%s issued in %s", tc.host, time.Since(start).Round(time.Millisecond))
			if err := peb.VerifyChain(leafChain(t, c), tc.host); err != nil {
				t.Fatalf("chain does not verify against Pebble's root: %v", err)
			}
			if n := peb.Orders(tc.host); n < 1 {
				t.Fatalf("orders for %s = %d", tc.host, n)
			}
		})
	}
}

func leafChain(t *testing.T, c *tls.Certificate) []*x509Cert {
	t.Helper()
	return parseChain(t, c.Certificate)
}

// hello is a ClientHello for name with a connection, as certmagic's
// handshake logging expects.
func hello(t *testing.T, name string, protos ...string) *tls.ClientHelloInfo {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return &tls.ClientHelloInfo{ServerName: name, SupportedProtos: protos, Conn: a}
}
