package acme

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"
	"go.uber.org/zap"
)

// ACMETLS1 is the ALPN protocol of the TLS-ALPN-01 challenge (RFC 8737).
const ACMETLS1 = "acme-tls/1"

// Provider obtains, stores, renews and serves ACME certificates. It owns a
// certmagic cache and its maintenance goroutine, and one goroutine per name
// still waiting for its first certificate; Stop ends them all. Its methods
// are safe for concurrent use.
//
// A configuration reload keeps the Provider (cmd/graph holds it across
// reloads) and calls Manage with the names of the new configuration: names
// already managed are left alone, names gone stay in the cache until they
// expire, which costs nothing.
type Provider struct {
	o      Options
	logger *slog.Logger

	cache   *certmagic.Cache
	managed *certmagic.Config // names known at start; never decides on demand
	demand  *certmagic.Config // nil without an on-demand policy
	issuers []*certmagic.ACMEIssuer

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	stop   sync.Once

	mu    sync.Mutex // guards names
	names map[string]bool
}

var keyTypes = map[string]certmagic.KeyType{
	"p256": certmagic.P256, "p384": certmagic.P384,
	"rsa2048": certmagic.RSA2048, "rsa4096": certmagic.RSA4096, "ed25519": certmagic.ED25519,
}

// New checks o and returns a Provider with its cache running. It makes no
// request to the CA; Manage starts the work.
func New(o Options) (*Provider, error) {
	if o.Storage == "" {
		return nil, errors.New("acme: no storage directory")
	}
	if !o.HTTP01 && !o.TLSALPN01 {
		return nil, errors.New("acme: both challenges are disabled: enable http01 or tls_alpn01")
	}
	if o.CA.Directory == "" {
		o.CA.Directory = LetsEncrypt
	}
	if o.KeyType == "" {
		o.KeyType = "p256"
	}
	kt, ok := keyTypes[o.KeyType]
	if !ok {
		return nil, fmt.Errorf("acme: unknown key type %q", o.KeyType)
	}
	if o.RenewWindow == 0 {
		o.RenewWindow = DefaultRenewWindow
	}
	if o.RenewWindow <= 0 || o.RenewWindow >= 1 {
		return nil, fmt.Errorf("acme: renewal window %v is not a fraction between 0 and 1", o.RenewWindow)
	}
	if o.RetryMin <= 0 {
		o.RetryMin = DefaultRetryMin
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = max(DefaultRetryMax, o.RetryMin)
	}
	if o.HTTPPort == 0 {
		o.HTTPPort = DefaultHTTPPort
	}
	if o.TLSPort == 0 {
		o.TLSPort = DefaultTLSPort
	}
	for _, iss := range append([]*Issuer{&o.CA}, o.Fallback) {
		if iss == nil {
			continue
		}
		if u, err := url.Parse(iss.Directory); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("acme: directory %q is not an http(s) URL", iss.Directory)
		}
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &Provider{o: o, logger: logger, names: make(map[string]bool)}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	zl := zapLogger(o.Logger)
	p.cache = certmagic.NewCache(certmagic.CacheOptions{
		// Renewal never needs the on-demand decision: a certificate
		// in the cache was allowed once.
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return p.managed, nil },
		RenewCheckInterval: o.CheckInterval,
		Logger:             zl,
	})
	base := certmagic.Config{
		RenewalWindowRatio: o.RenewWindow,
		OnEvent:            p.onEvent,
		ShouldEmitFunc:     func(event string) bool { return event != "tls_get_certificate" },
		Storage:            &certmagic.FileStorage{Path: o.Storage},
		KeySource:          certmagic.StandardKeyGenerator{KeyType: kt},
		DisableARI:         o.DisableARI,
		Logger:             zl,
	}
	p.managed = certmagic.New(p.cache, base)
	p.managed.Issuers = p.newIssuers(p.managed, zl, true)
	if d := o.OnDemand; d != nil {
		cfg := base
		cfg.OnDemand = &certmagic.OnDemandConfig{DecisionFunc: newPolicy(*d).decide}
		p.demand = certmagic.New(p.cache, cfg)
		p.demand.Issuers = p.newIssuers(p.demand, zl, false)
	}
	return p, nil
}

// newIssuers makes the certmagic issuers of cfg: the CA, then the
// fallback. keep says whether they are the ones HTTPChallenge asks.
func (p *Provider) newIssuers(cfg *certmagic.Config, zl *zap.Logger, keep bool) []certmagic.Issuer {
	var out []certmagic.Issuer
	for _, iss := range []*Issuer{&p.o.CA, p.o.Fallback} {
		if iss == nil {
			continue
		}
		tmpl := certmagic.ACMEIssuer{
			CA:                      iss.Directory,
			TestCA:                  iss.Directory,
			Email:                   iss.Email,
			Agreed:                  true,
			TrustedRoots:            iss.Roots,
			DisableHTTPChallenge:    !p.o.HTTP01,
			DisableTLSALPNChallenge: !p.o.TLSALPN01,
			ListenHost:              p.o.ListenHost,
			AltHTTPPort:             p.o.HTTPPort,
			AltTLSALPNPort:          p.o.TLSPort,
			Logger:                  zl,
		}
		if iss.EAB != nil {
			tmpl.ExternalAccount = &acme.EAB{KeyID: iss.EAB.KeyID, MACKey: iss.EAB.MACKey}
		}
		a := certmagic.NewACMEIssuer(cfg, tmpl)
		if keep {
			p.issuers = append(p.issuers, a)
		}
		out = append(out, unattended{a})
	}
	return out
}

// unattended is an ACMEIssuer that never prompts on the terminal:
// certmagic asks for an email address on stdin when an obtain is
// "interactive" and none is configured, which a server must not do.
type unattended struct{ *certmagic.ACMEIssuer }

// PreCheck checks names without prompting. With no email configured it
// does not call certmagic's PreCheck at all: that one "discovers" an
// address for the account (a process-wide variable set once and kept, or
// the most recent account directory in storage) and would register the
// account with it. Seeing another instance's account directory under
// users/default before its registration is written there, it takes
// "default" for an address: the CA refuses the contact "mailto:default",
// and every issuer without an email in the process uses it from then on.
// The account of an issuer without an email is the one without a contact.
func (u unattended) PreCheck(ctx context.Context, names []string, _ bool) error {
	if u.Email != "" {
		return u.ACMEIssuer.PreCheck(ctx, names, false)
	}
	for _, n := range names {
		if !certmagic.SubjectQualifiesForCert(n) {
			return fmt.Errorf("acme: %q does not qualify for a certificate", n)
		}
	}
	return nil
}

// Manage starts obtaining certificates for names not managed yet: each is
// loaded from storage when it is there (and served at once), else ordered
// from the CA, retried with backoff until it succeeds or Stop is called.
// It returns at once.
func (p *Provider) Manage(names []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx.Err() != nil {
		return
	}
	for _, n := range names {
		n = strings.ToLower(strings.TrimSuffix(n, "."))
		if p.names[n] {
			continue
		}
		p.names[n] = true
		p.wg.Add(1)
		go p.keep(n)
	}
}

// keep gets name its first certificate; certmagic's maintenance renews it
// afterwards.
func (p *Provider) keep(name string) {
	defer p.wg.Done()
	wait := p.o.RetryMin
	for attempt := 1; ; attempt++ {
		err := p.managed.ManageSync(p.ctx, []string{name})
		if err == nil {
			return
		}
		if p.ctx.Err() != nil {
			return
		}
		p.logger.Error("certificate not obtained; retrying", "name", name, "attempt", attempt,
			"error", err, "retry_in", wait, "next_retry", time.Now().Add(wait).UTC().Format(time.RFC3339))
		t := time.NewTimer(wait)
		select {
		case <-p.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(wait*2, p.o.RetryMax)
	}
}

// onEvent turns certmagic's certificate events into log lines.
func (p *Provider) onEvent(_ context.Context, event string, data map[string]any) error {
	renewal, _ := data["renewal"].(bool)
	switch event {
	case "cert_obtaining":
		p.logger.Info("certificate ordering", "name", data["identifier"], "renewal", renewal)
	case "cert_obtained":
		msg := "certificate obtained"
		if renewal {
			msg = "certificate renewed"
		}
		p.logger.Info(msg, "name", data["identifier"], "issuer", data["issuer"])
	case "cert_failed":
		p.logger.Error("certificate order failed", "name", data["identifier"], "renewal", renewal, "error", data["error"])
	case "cert_ocsp_revoked":
		p.logger.Warn("certificate revoked (OCSP); renewing", "names", data["subjects"])
	}
	return nil
}

// GetCertificate has the signature of tls.Config.GetCertificate and is
// protocol-neutral (TLS over TCP and QUIC use it alike). It serves the
// cached certificate for the ClientHello's server name; with an on-demand
// policy, an unknown name that the policy allows is obtained first, and one
// it refuses fails at once, before any request to the CA.
func (p *Provider) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	cfg := p.managed
	if p.demand != nil {
		cfg = p.demand
	}
	c, err := cfg.GetCertificate(hello)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// ChallengeCert answers a TLS-ALPN-01 validation: for a ClientHello that
// offers only "acme-tls/1", ok is true and the certificate is the
// challenge certificate for its server name (nil when no challenge for that
// name is pending, which must fail the handshake). For any other
// ClientHello, or when TLS-ALPN-01 is disabled, ok is false.
func (p *Provider) ChallengeCert(hello *tls.ClientHelloInfo) (*tls.Certificate, bool) {
	if !p.o.TLSALPN01 || len(hello.SupportedProtos) != 1 || hello.SupportedProtos[0] != ACMETLS1 {
		return nil, false
	}
	if hello.ServerName == "" {
		return nil, true
	}
	c, err := p.managed.GetCertificate(hello)
	if err != nil {
		p.logger.Warn("tls-alpn-01 validation for a name with no pending challenge", "name", hello.ServerName, "error", err)
		return nil, true
	}
	return c, true
}

// HTTPChallengePrefix is the path prefix of HTTP-01 validation requests.
const HTTPChallengePrefix = "/.well-known/acme-challenge/"

// HTTPChallenge answers an HTTP-01 validation request for host (the Host
// field, a port allowed) and path: ok is true and body is the key
// authorization when a challenge for that token is pending (in this
// process or, through the shared storage, in another instance).
func (p *Provider) HTTPChallenge(host, path string) (body []byte, ok bool) {
	if !p.o.HTTP01 || !strings.HasPrefix(path, HTTPChallengePrefix) {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://localhost"+path, nil)
	if err != nil {
		return nil, false
	}
	r.Host = host
	for _, iss := range p.issuers {
		w := &bodyWriter{status: http.StatusOK}
		if iss.HandleHTTPChallenge(w, r) {
			return w.body, w.status == http.StatusOK
		}
	}
	return nil, false
}

// bodyWriter collects the answer of certmagic's HTTP challenge handler.
type bodyWriter struct {
	h      http.Header
	status int
	body   []byte
}

func (w *bodyWriter) Header() http.Header {
	if w.h == nil {
		w.h = make(http.Header)
	}
	return w.h
}

func (w *bodyWriter) Write(b []byte) (int, error) {
	if len(w.body)+len(b) > 4<<10 {
		return 0, errors.New("acme: challenge answer too long")
	}
	w.body = append(w.body, b...)
	return len(b), nil
}

func (w *bodyWriter) WriteHeader(status int) { w.status = status }

// Stop ends the attempts to obtain certificates and the cache's
// maintenance, and waits for them. It is idempotent.
func (p *Provider) Stop() {
	p.stop.Do(func() {
		p.mu.Lock()
		p.cancel()
		p.mu.Unlock()
		p.wg.Wait()
		p.cache.Stop()
	})
}
