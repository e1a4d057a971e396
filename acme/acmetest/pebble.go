package acmetest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"
	"golang.org/x/crypto/ocsp"

	"github.com/strata-proxy/strata/certs"
)

// Options configure a Pebble.
type Options struct {
	// HTTPPort and TLSPort are where the validation authority connects
	// for HTTP-01 and TLS-ALPN-01: strata's listeners.
	HTTPPort, TLSPort int
	// NonceReject is the percentage of good nonces Pebble rejects as bad,
	// to exercise clients' retries; negative means Pebble's default (5).
	NonceReject int
	// Validity is the lifetime of issued certificates; Pebble's default
	// (90 days) when zero. Renewal tests make it seconds.
	Validity time.Duration
	// OCSP runs an OCSP responder that answers "good" for every
	// certificate, and makes Pebble name it in the certificates it issues
	// (with RSA CA keys, which the responder signs with).
	OCSP bool
	// EAB, when not empty, makes external account binding mandatory,
	// with these key ids and base64url MAC keys.
	EAB map[string]string
	// Verbose sends Pebble's log to the test log as it comes; without it,
	// the log is shown only when the test fails.
	Verbose bool
}

// Pebble is a running in-process ACME CA. Start stops it with the test.
type Pebble struct {
	// Directory is the ACME directory URL.
	Directory string
	// TLSRootFile is a PEM file of the root that signs the directory's
	// HTTPS certificate, for the client's trusted roots (acme ca_root).
	TLSRootFile string

	ca   *ca.CAImpl
	srv  *http.Server
	ln   net.Listener
	dns  *dns.Server
	done chan struct{}

	down atomic.Bool

	ocspSrv   *http.Server
	ocspDone  chan struct{}
	ocspCount atomic.Int32

	mu     sync.Mutex
	orders map[string]int
}

// Start runs a Pebble for t: its DNS server, its CA and its web front end
// on 127.0.0.1. It sets PEBBLE_VA_NOSLEEP and PEBBLE_WFE_NONCEREJECT with
// t.Setenv, so tests using it cannot run in parallel.
func Start(t testing.TB, o Options) *Pebble {
	t.Helper()
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	if o.NonceReject >= 0 {
		t.Setenv("PEBBLE_WFE_NONCEREJECT", strconv.Itoa(o.NonceReject))
	} else {
		t.Setenv("PEBBLE_WFE_NONCEREJECT", "5")
	}
	p := &Pebble{orders: make(map[string]int), done: make(chan struct{})}
	dnsAddr := p.startDNS(t)

	var logw io.Writer = testWriter{t}
	if !o.Verbose {
		buf := &lockedBuffer{}
		logw = buf
		t.Cleanup(func() {
			if t.Failed() && buf.String() != "" {
				t.Logf("pebble log:\n%s", buf.String())
			}
		})
	}
	logger := log.New(logw, "pebble ", log.Lmicroseconds)
	validity := uint64(0)
	if o.Validity > 0 {
		validity = uint64(o.Validity / time.Second)
	}
	store := db.NewMemoryStore()
	ocspURL, keyAlg := "", "ecdsa"
	if o.OCSP {
		ocspURL, keyAlg = p.startOCSP(t), "rsa"
	}
	p.ca = ca.New(logger, store, ocspURL, keyAlg, 0, 1, map[string]ca.Profile{
		"default": {Description: "strata tests", ValidityPeriod: validity},
	})
	v := va.New(logger, o.HTTPPort, o.TLSPort, false, dnsAddr, store)
	for id, key := range o.EAB {
		if err := store.AddExternalAccountKeyByID(id, key); err != nil {
			t.Fatal(err)
		}
	}
	w := wfe.New(logger, store, v, p.ca, []string{"pebble.letsencrypt.org"}, false, len(o.EAB) > 0, 0, 0)

	dir := t.TempDir()
	sca, err := certs.OpenCA(filepath.Join(dir, "ca"), nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := sca.Issue([]string{"127.0.0.1", "localhost"}, certs.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.TLSRootFile = filepath.Join(dir, "pebble-root.pem")
	if err := os.WriteFile(p.TLSRootFile, sca.RootPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	p.ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.Directory = "https://" + p.ln.Addr().String() + wfe.DirectoryPath
	p.srv = &http.Server{
		Handler:   p.wrap(w.Handler()),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{*leaf}},
		ErrorLog:  log.New(io.Discard, "", 0),
	}
	go func() {
		defer close(p.done)
		p.srv.ServeTLS(p.ln, "", "")
	}()
	t.Cleanup(p.stop)
	return p
}

// startDNS runs a DNS server over TCP (how Pebble's VA asks) that answers
// every A question with 127.0.0.1 and every other question with no record.
func (p *Pebble) startDNS(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	p.dns = &dns.Server{
		Listener:          ln,
		Net:               "tcp",
		NotifyStartedFunc: func() { close(started) },
		Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
			m := new(dns.Msg)
			m.SetReply(r)
			for _, q := range r.Question {
				if q.Qtype == dns.TypeA {
					m.Answer = append(m.Answer, &dns.A{
						Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 0},
						A:   net.IPv4(127, 0, 0, 1),
					})
				}
			}
			w.WriteMsg(m)
		}),
	}
	go p.dns.ActivateAndServe()
	<-started
	return ln.Addr().String()
}

// stop shuts the web front end and the DNS server down. Pebble's VA keeps
// one goroutine that has no way to stop (va.processTasks); leak checks
// leave it out.
func (p *Pebble) stop() {
	p.srv.Close()
	<-p.done
	p.dns.Shutdown()
	if p.ocspSrv != nil {
		p.ocspSrv.Close()
		<-p.ocspDone
	}
}

// startOCSP runs the OCSP responder (RFC 6960 over HTTP POST and GET) and
// returns its URL. It signs with Pebble's intermediate, known once the CA
// exists; requests before that fail.
func (p *Pebble) startOCSP(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.ocspDone = make(chan struct{})
	p.ocspSrv = &http.Server{ErrorLog: log.New(io.Discard, "", 0), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var der []byte
		if r.Method == http.MethodPost {
			der, _ = io.ReadAll(io.LimitReader(r.Body, 1<<16))
		} else {
			der, _ = base64.StdEncoding.DecodeString(strings.TrimPrefix(r.URL.Path, "/"))
		}
		req, err := ocsp.ParseRequest(der)
		if err != nil {
			http.Error(w, "bad OCSP request", http.StatusBadRequest)
			return
		}
		issuer, key := p.ca.GetIntermediateCert(0), p.ca.GetIntermediateKey(0)
		if issuer == nil || key == nil {
			http.Error(w, "no issuer", http.StatusServiceUnavailable)
			return
		}
		now := time.Now()
		resp, err := ocsp.CreateResponse(issuer.Cert, issuer.Cert, ocsp.Response{
			Status:       ocsp.Good,
			SerialNumber: req.SerialNumber,
			ThisUpdate:   now.Add(-time.Minute),
			NextUpdate:   now.Add(time.Hour),
		}, key)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		p.ocspCount.Add(1)
		w.Header().Set("Content-Type", "application/ocsp-response")
		w.Write(resp)
	})}
	go func() {
		defer close(p.ocspDone)
		p.ocspSrv.Serve(ln)
	}()
	return "http://" + ln.Addr().String() + "/"
}

// OCSPResponses returns how many OCSP responses the responder gave.
func (p *Pebble) OCSPResponses() int { return int(p.ocspCount.Load()) }

// Intermediate returns the certificate that signs issued certificates (and
// OCSP responses).
func (p *Pebble) Intermediate() *x509.Certificate { return p.ca.GetIntermediateCert(0).Cert }

// wrap counts new orders by name and, while the CA is down, drops every
// connection without an answer.
func (p *Pebble) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.down.Load() {
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if r.Method == http.MethodPost && r.URL.Path == "/order-plz" {
			body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			if err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			sw := &statusWriter{ResponseWriter: w}
			h.ServeHTTP(sw, r)
			if sw.status == http.StatusCreated {
				p.countOrder(body)
			}
			return
		}
		h.ServeHTTP(w, r)
	})
}

// countOrder records the identifiers of a new-order JWS (flattened JSON
// serialisation; the payload is read without checking the signature,
// which Pebble does).
func (p *Pebble) countOrder(jws []byte) {
	var env struct {
		Payload string `json:"payload"`
	}
	if json.Unmarshal(jws, &env) != nil {
		return
	}
	payload, err := base64.RawURLEncoding.DecodeString(env.Payload)
	if err != nil {
		return
	}
	var order struct {
		Identifiers []struct {
			Value string `json:"value"`
		} `json:"identifiers"`
	}
	if json.Unmarshal(payload, &order) != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range order.Identifiers {
		p.orders[id.Value]++
	}
}

// Orders returns how many orders Pebble created for name (a new-order
// request it refused, such as for a bad nonce, is not an order).
func (p *Pebble) Orders(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.orders[name]
}

// TotalOrders returns the number of orders created, over all names.
func (p *Pebble) TotalOrders() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.orders {
		n += c
	}
	return n
}

// SetDown makes the CA unreachable (every connection dropped) or brings it
// back.
func (p *Pebble) SetDown(down bool) {
	p.down.Store(down)
	if down {
		// Kept-alive connections would otherwise still reach the handler
		// check only per request; closing idle ones makes clients redial.
		p.srv.SetKeepAlivesEnabled(false)
	} else {
		p.srv.SetKeepAlivesEnabled(true)
	}
}

// Roots returns a pool of the root that signs issued certificates.
func (p *Pebble) Roots() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.ca.GetRootCert(0).Cert)
	return pool
}

// VerifyChain verifies a served chain (leaf first) for name against the
// issuing root.
func (p *Pebble) VerifyChain(chain []*x509.Certificate, name string) error {
	if len(chain) == 0 {
		return errors.New("acmetest: empty chain")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{DNSName: name, Roots: p.Roots(), Intermediates: inter})
	return err
}

// testWriter sends log output to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(b, "\n")))
	return len(b), nil
}

// statusWriter records the status of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
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
