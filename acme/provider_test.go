package acme_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

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

// testLogger returns a debug logger for a provider of t, extra handlers
// (a recorder) receiving the records too. Its lines are kept and shown in
// the test's output when the test fails (certmagic's lines included), and
// go to stderr as they come with STRATA_ACME_LOG=1.
func testLogger(t *testing.T, extra ...slog.Handler) *slog.Logger {
	t.Helper()
	buf := &lockedBuffer{}
	opts := &slog.HandlerOptions{Level: slog.LevelDebug}
	hs := append([]slog.Handler{slog.NewTextHandler(buf, opts)}, extra...)
	if os.Getenv("STRATA_ACME_LOG") != "" {
		hs = append(hs, slog.NewTextHandler(os.Stderr, opts))
	}
	// Registered before the provider's Stop, so it runs after it: the
	// log is complete.
	t.Cleanup(func() {
		if t.Failed() && buf.String() != "" {
			t.Logf("provider log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewMultiHandler(hs...))
}

// lockedBuffer is a bytes.Buffer safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
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

func TestProviderRetriesRejectedNonces(t *testing.T) {
	s := newSolvers(t)
	hp, tp := s.ports()
	// Half the nonces are refused: every request has a fair chance of a
	// badNonce error, which the client must retry.
	peb := acmetest.Start(t, acmetest.Options{HTTPPort: hp, TLSPort: tp, NonceReject: 50})
	p := newProvider(t, peb, s, filepath.Join(t.TempDir(), "acme"), nil)
	p.Manage([]string{"nonce.strata.test"})
	c := waitCert(t, p, "nonce.strata.test", 30*time.Second)
	if err := peb.VerifyChain(parseChain(t, c.Certificate), "nonce.strata.test"); err != nil {
		t.Fatal(err)
	}
}

func TestProviderOnDemand(t *testing.T) {
	s := newSolvers(t)
	hp, tp := s.ports()
	peb := acmetest.Start(t, acmetest.Options{HTTPPort: hp, TLSPort: tp, NonceReject: 0})
	ask := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("domain") == "asked.strata.test" {
			return
		}
		w.WriteHeader(http.StatusForbidden)
	})}
	askLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go ask.Serve(askLn)
	t.Cleanup(func() { ask.Close() })
	p := newProvider(t, peb, s, filepath.Join(t.TempDir(), "acme"), func(o *acme.Options) {
		o.OnDemand = &acme.OnDemand{
			Ask:   "http://" + askLn.Addr().String() + "/check",
			Allow: []string{"*.ok.strata.test"},
			Rate:  acme.Limit{N: 3, Per: time.Hour},
		}
	})
	get := func(name string) (*tls.Certificate, error, time.Duration) {
		start := time.Now()
		c, err := p.GetCertificate(hello(t, name))
		return c, err, time.Since(start)
	}
	for _, name := range []string{"a.ok.strata.test", "asked.strata.test", "b.ok.strata.test"} {
		c, err, took := get(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := peb.VerifyChain(parseChain(t, c.Certificate), name); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Logf("%s issued on demand at its first handshake in %s", name, took.Round(time.Millisecond))
	}
	for _, tc := range []struct {
		name string
		want error
	}{
		{"evil.strata.test", acme.ErrNotAllowed},
		{"x.y.ok.strata.test", acme.ErrNotAllowed},
		{"c.ok.strata.test", acme.ErrRateLimited},
	} {
		_, err, took := get(tc.name)
		if !errors.Is(err, tc.want) {
			t.Fatalf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
		if took > time.Second {
			t.Fatalf("%s: refused after %s; want a quick failure", tc.name, took)
		}
		if n := peb.Orders(tc.name); n != 0 {
			t.Fatalf("%s: refused name reached the CA (%d orders)", tc.name, n)
		}
		t.Logf("%s refused in %s: %v", tc.name, took.Round(time.Microsecond), err)
	}
	if n := peb.TotalOrders(); n != 3 {
		t.Fatalf("orders = %d, want 3 (the allowed names only)", n)
	}
}

func TestProviderSharedStorageOrdersOnce(t *testing.T) {
	s := newSolvers(t)
	hp, tp := s.ports()
	peb := acmetest.Start(t, acmetest.Options{HTTPPort: hp, TLSPort: tp, NonceReject: -1})
	storage := filepath.Join(t.TempDir(), "acme")
	names := []string{"one.strata.test", "two.strata.test"}
	a := newProvider(t, peb, s, storage, nil)
	b := newProvider(t, peb, s, storage, nil)
	a.Manage(names)
	b.Manage(names)
	for _, name := range names {
		ca := waitCert(t, a, name, 30*time.Second)
		cb := waitCert(t, b, name, 30*time.Second)
		if !ca.Leaf.Equal(cb.Leaf) {
			t.Fatalf("%s: the instances serve different certificates (serials %x, %x)", name, ca.Leaf.SerialNumber, cb.Leaf.SerialNumber)
		}
		if n := peb.Orders(name); n != 1 {
			t.Fatalf("%s: %d orders, want exactly 1", name, n)
		}
	}
}

func TestProviderCAUnreachableAtStart(t *testing.T) {
	s := newSolvers(t)
	hp, tp := s.ports()
	peb := acmetest.Start(t, acmetest.Options{HTTPPort: hp, TLSPort: tp, NonceReject: 0})
	storage := filepath.Join(t.TempDir(), "acme")

	// A first run stores a certificate, then stops.
	first := newProvider(t, peb, s, storage, nil)
	first.Manage([]string{"stored.strata.test"})
	stored := waitCert(t, first, "stored.strata.test", 30*time.Second)
	first.Stop()

	peb.SetDown(true)
	logs := &recorder{}
	p := newProvider(t, peb, s, storage, func(o *acme.Options) {
		o.Logger = testLogger(t, logs)
		o.RetryMin, o.RetryMax = 100*time.Millisecond, 400*time.Millisecond
	})
	start := time.Now()
	p.Manage([]string{"stored.strata.test", "missing.strata.test"})
	c := waitCert(t, p, "stored.strata.test", 5*time.Second)
	t.Logf("stored certificate served %s after start with the CA down", time.Since(start).Round(time.Millisecond))
	if !c.Leaf.Equal(stored.Leaf) {
		t.Fatal("the stored certificate was not the one served")
	}
	if _, err := p.GetCertificate(hello(t, "missing.strata.test")); err == nil {
		t.Fatal("a name with no certificate completed a handshake")
	}
	// Retries back off: wait for three failures, then check the delays grow.
	deadline := time.Now().Add(20 * time.Second)
	for len(logs.waits("certificate not obtained; retrying")) < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	waits := logs.waits("certificate not obtained; retrying")
	if len(waits) < 3 {
		t.Fatalf("retries logged: %v", waits)
	}
	if !(waits[0] < waits[1] && waits[1] <= waits[2]) {
		t.Fatalf("retry delays %v do not back off", waits)
	}
	t.Logf("retry delays while the CA is down: %v", waits)

	peb.SetDown(false)
	back := time.Now()
	waitCert(t, p, "missing.strata.test", 30*time.Second)
	t.Logf("missing certificate arrived %s after the CA came back", time.Since(back).Round(time.Millisecond))
}

func TestProviderRenewalSwapsWithoutFailedHandshakes(t *testing.T) {
	s := newSolvers(t)
	hp, tp := s.ports()
	// Renewal starts with half the lifetime left: 10 s. A loaded machine
	// was seen to stall every process for 6.7 s (no log line, no
	// handshake, in two test processes at once); with a 6 s lifetime
	// that let the certificate expire before its renewal was served.
	peb := acmetest.Start(t, acmetest.Options{HTTPPort: hp, TLSPort: tp, NonceReject: 0, Validity: 20 * time.Second})
	const name = "renew.strata.test"
	p := newProvider(t, peb, s, filepath.Join(t.TempDir(), "acme"), func(o *acme.Options) {
		o.RenewWindow = 0.5
		o.CheckInterval = 200 * time.Millisecond
		o.DisableARI = true // the window alone decides, for a predictable test
	})
	p.Manage([]string{name})
	first := waitCert(t, p, name, 30*time.Second)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srvCfg := &tls.Config{GetCertificate: p.GetCertificate}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				tc := tls.Server(c, srvCfg)
				tc.SetDeadline(time.Now().Add(10 * time.Second))
				tc.Handshake()
				tc.Close()
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })

	cliCfg := &tls.Config{ServerName: name, RootCAs: peb.Roots()}
	var (
		mu       sync.Mutex
		conns    int
		after    int // connections since the renewed certificate was first served
		failures []error
		serials  = map[string]int{}
	)
	firstSerial := first.Leaf.SerialNumber.String()
	swapped := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(serials) >= 2 && conns >= 1000 && after >= 500
	}
	deadline := time.Now().Add(40 * time.Second)
	var cw sync.WaitGroup
	for range 4 {
		cw.Add(1)
		go func() {
			defer cw.Done()
			for !swapped() && time.Now().Before(deadline) {
				c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(), cliCfg)
				mu.Lock()
				conns++
				if err != nil {
					failures = append(failures, err)
				} else {
					serials[c.ConnectionState().PeerCertificates[0].SerialNumber.String()]++
				}
				if len(serials) >= 2 || (len(serials) == 1 && serials[firstSerial] == 0) {
					after++
				}
				mu.Unlock()
				if c != nil {
					c.Close()
				}
			}
		}()
	}
	cw.Wait()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d new connections (%d after the swap), %d failed handshakes, served certificates (serial: connections): %v", conns, after, len(failures), serials)
	if len(failures) > 0 {
		t.Fatalf("%d handshakes failed during renewal; first: %v", len(failures), failures[0])
	}
	if len(serials) < 2 {
		t.Fatalf("no renewal seen within the test (first serial %x)", first.Leaf.SerialNumber)
	}
	if conns < 1000 || after < 500 {
		t.Fatalf("only %d connections, %d after the swap", conns, after)
	}
}

// recorder keeps the log records, for tests that assert on them.
type recorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec.Clone())
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

// waits returns the retry_in of the records with message msg.
func (r *recorder) waits(msg string) []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []time.Duration
	for _, rec := range r.recs {
		if rec.Message != msg {
			continue
		}
		rec.Attrs(func(a slog.Attr) bool {
			if a.Key == "retry_in" {
				out = append(out, a.Value.Duration())
			}
			return true
		})
	}
	return out
}

func TestProviderStaplesOCSP(t *testing.T) {
	s := newSolvers(t)
	hp, tp := s.ports()
	peb := acmetest.Start(t, acmetest.Options{HTTPPort: hp, TLSPort: tp, NonceReject: 0, OCSP: true})
	const name = "ocsp.strata.test"
	p := newProvider(t, peb, s, filepath.Join(t.TempDir(), "acme"), nil)
	p.Manage([]string{name})
	waitCert(t, p, name, 30*time.Second)

	// A real handshake carries the staple.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		tc := tls.Server(c, &tls.Config{GetCertificate: p.GetCertificate})
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		tc.Handshake()
		tc.Close()
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: name, RootCAs: peb.Roots()})
	if err != nil {
		t.Fatal(err)
	}
	staple := c.ConnectionState().OCSPResponse
	c.Close()
	ln.Close()
	<-done
	if len(staple) == 0 {
		t.Fatalf("no OCSP staple in the handshake (%d responses given)", peb.OCSPResponses())
	}
	resp, err := ocsp.ParseResponse(staple, peb.Intermediate())
	if err != nil {
		t.Fatalf("stapled response: %v", err)
	}
	if resp.Status != ocsp.Good {
		t.Fatalf("stapled status %d, want good", resp.Status)
	}
	t.Logf("OCSP response stapled: status good, next update %s", resp.NextUpdate.Format(time.RFC3339))
}

func TestProviderFallbackIssuer(t *testing.T) {
	s := newSolvers(t)
	hp, tp := s.ports()
	peb := acmetest.Start(t, acmetest.Options{HTTPPort: hp, TLSPort: tp, NonceReject: 0})
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "https://" + dead.Addr().String() + "/dir"
	dead.Close() // nothing listens there: the primary CA is unreachable
	const name = "fallback.strata.test"
	p := newProvider(t, peb, s, filepath.Join(t.TempDir(), "acme"), func(o *acme.Options) {
		fb := o.CA
		o.Fallback = &fb
		o.CA.Directory = deadURL
	})
	p.Manage([]string{name})
	c := waitCert(t, p, name, 30*time.Second)
	if err := peb.VerifyChain(parseChain(t, c.Certificate), name); err != nil {
		t.Fatalf("certificate is not from the fallback CA: %v", err)
	}
	if n := peb.Orders(name); n != 1 {
		t.Fatalf("fallback orders = %d, want 1", n)
	}
}

func TestProviderExternalAccountBinding(t *testing.T) {
	s := newSolvers(t)
	hp, tp := s.ports()
	const keyID, macKey = "kid-1", "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
	peb := acmetest.Start(t, acmetest.Options{HTTPPort: hp, TLSPort: tp, NonceReject: 0, EAB: map[string]string{keyID: macKey}})

	logs := &recorder{}
	without := newProvider(t, peb, s, filepath.Join(t.TempDir(), "acme"), func(o *acme.Options) { o.Logger = testLogger(t, logs) })
	without.Manage([]string{"noeab.strata.test"})
	with := newProvider(t, peb, s, filepath.Join(t.TempDir(), "acme"), func(o *acme.Options) {
		o.CA.EAB = &acme.EAB{KeyID: keyID, MACKey: macKey}
	})
	with.Manage([]string{"eab.strata.test"})
	c := waitCert(t, with, "eab.strata.test", 30*time.Second)
	if err := peb.VerifyChain(parseChain(t, c.Certificate), "eab.strata.test"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(logs.waits("certificate not obtained; retrying")) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if len(logs.waits("certificate not obtained; retrying")) == 0 {
		t.Fatal("a client without the binding was not refused")
	}
	if n := peb.Orders("noeab.strata.test"); n != 0 {
		t.Fatalf("an account without the binding placed %d orders", n)
	}
}

// TestProviderNoEmailIgnoresHalfWrittenAccount: an instance sharing the
// storage with another one that is registering its account (the account
// directory there, its registration not written yet) must not take the
// directory's name, "default", for its email address: the CA refuses the
// contact "mailto:default", and certmagic keeps a discovered address for
// the whole process, so every later issuer without an email would fail
// too. That was the flaky failure of every test after
// SharedStorageOrdersOnce on a loaded machine.
func TestProviderNoEmailIgnoresHalfWrittenAccount(t *testing.T) {
	s := newSolvers(t)
	hp, tp := s.ports()
	peb := acmetest.Start(t, acmetest.Options{HTTPPort: hp, TLSPort: tp, NonceReject: 0})
	storage := filepath.Join(t.TempDir(), "acme")
	u, err := url.Parse(peb.Directory)
	if err != nil {
		t.Fatal(err)
	}
	issuerKey := strings.ReplaceAll(u.Host, ":", "-") + strings.ReplaceAll(u.Path, "/", "-")
	if err := os.MkdirAll(filepath.Join(storage, "acme", issuerKey, "users", "default"), 0o700); err != nil {
		t.Fatal(err)
	}
	const name = "halfwritten.strata.test"
	logs := &recorder{}
	p := newProvider(t, peb, s, storage, func(o *acme.Options) { o.Logger = testLogger(t, logs) })
	start := time.Now()
	p.Manage([]string{name})
	c := waitCert(t, p, name, 30*time.Second)
	if err := peb.VerifyChain(parseChain(t, c.Certificate), name); err != nil {
		t.Fatal(err)
	}
	if n := len(logs.waits("certificate not obtained; retrying")); n != 0 {
		t.Fatalf("%d failed attempts before the certificate", n)
	}
	t.Logf("%s issued in %s with a half-written account in storage", name, time.Since(start).Round(time.Millisecond))

	// And the next issuer without an email in this process is unaffected.
	p2 := newProvider(t, peb, s, filepath.Join(t.TempDir(), "acme"), nil)
	p2.Manage([]string{"after.strata.test"})
	waitCert(t, p2, "after.strata.test", 30*time.Second)
}
