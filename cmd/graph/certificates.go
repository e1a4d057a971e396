package graph

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sync"

	"github.com/strata-proxy/strata/acme"
	"github.com/strata-proxy/strata/certs"
	"github.com/strata-proxy/strata/cmd/config"
)

// services are the certificate sources that outlive one Graph: the ACME
// Provider (its cache, renewals and pending orders) and the internal CA.
// A Runtime keeps one services across reloads and stops it on Shutdown; a
// Graph built alone owns its own and stops it when drained.
//
// The first configuration that needs them fixes their settings: a reload
// that changes global.acme or global.data_dir is logged and applies after
// a restart, as global.max_connections does. A reload's new names are
// managed by the running Provider; names a reload drops stay cached until
// they expire, which costs nothing.
type services struct {
	logger *slog.Logger
	// dataDir, when set, replaces global.data_dir (strata validate keeps
	// its state in a temporary directory).
	dataDir string

	mu       sync.Mutex // guards the fields below
	ca       *certs.CA
	caDir    string
	provider *acme.Provider
	acmeCfg  config.ACME
	acmeDir  string
	stopped  bool
}

func newServices(logger *slog.Logger) *services {
	return &services{logger: logger}
}

func (s *services) dir(cfg *config.Config, sub string) string {
	if s.dataDir != "" {
		return filepath.Join(s.dataDir, sub)
	}
	return filepath.Join(cfg.Global.DataDir, sub)
}

// internalCA opens the internal CA in data_dir/ca the first time it is
// needed.
func (s *services) internalCA(cfg *config.Config) (*certs.CA, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	dir := s.dir(cfg, "ca")
	if s.ca != nil {
		if dir != s.caDir {
			s.logger.Warn("global.data_dir changed: the internal CA stays in the old directory until a restart", "running", s.caDir, "configured", dir)
		}
		return s.ca, nil
	}
	ca, err := certs.OpenCA(dir, s.logger)
	if err != nil {
		return nil, err
	}
	s.ca, s.caDir = ca, dir
	return ca, nil
}

// acmeProvider returns the ACME Provider, made from cfg the first time.
func (s *services) acmeProvider(cfg *config.Config) (*acme.Provider, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil, errors.New("acme: shutting down")
	}
	dir := s.dir(cfg, "acme")
	if s.provider != nil {
		if !reflect.DeepEqual(stripPos(s.acmeCfg), stripPos(cfg.Global.ACME)) || dir != s.acmeDir {
			s.logger.Warn("global.acme or global.data_dir changed: the new ACME settings apply after a restart")
		}
		return s.provider, nil
	}
	o, err := acmeOptions(cfg, dir, s.logger)
	if err != nil {
		return nil, err
	}
	p, err := acme.New(o)
	if err != nil {
		return nil, err
	}
	s.provider, s.acmeCfg, s.acmeDir = p, cfg.Global.ACME, dir
	return p, nil
}

func stripPos(a config.ACME) config.ACME {
	a.Pos = config.Pos{}
	return a
}

// stop stops the ACME Provider; the internal CA has nothing running.
func (s *services) stop() {
	s.mu.Lock()
	p := s.provider
	s.stopped = true
	s.mu.Unlock()
	if p != nil {
		p.Stop()
	}
}

// acmeOptions turns the configuration into the Provider's options.
func acmeOptions(cfg *config.Config, storage string, logger *slog.Logger) (acme.Options, error) {
	a := cfg.Global.ACME
	issuer := func(c config.ACMEIssuer) (acme.Issuer, error) {
		iss := acme.Issuer{Directory: c.Directory, Email: c.Email}
		if c.EABKeyID != "" {
			iss.EAB = &acme.EAB{KeyID: c.EABKeyID, MACKey: c.EABMACKey}
		}
		if c.CARoot != "" {
			pool, err := certs.LoadPool(c.CARoot)
			if err != nil {
				return iss, err
			}
			iss.Roots = pool
		}
		return iss, nil
	}
	o := acme.Options{
		Storage:       storage,
		KeyType:       a.KeyType,
		RenewWindow:   a.RenewWindow,
		CheckInterval: a.CheckInterval,
		RetryMin:      a.RetryMin,
		RetryMax:      a.RetryMax,
		HTTP01:        a.HTTP01,
		TLSALPN01:     a.TLSALPN01,
		ListenHost:    acmeListenHost(cfg),
		HTTPPort:      a.HTTPPort,
		TLSPort:       a.TLSPort,
		Logger:        logger.With("acme", a.CA.Directory),
	}
	var err error
	if o.CA, err = issuer(a.CA); err != nil {
		return o, fmt.Errorf("acme: %w", err)
	}
	if a.Fallback != nil {
		fb, err := issuer(*a.Fallback)
		if err != nil {
			return o, fmt.Errorf("acme.fallback: %w", err)
		}
		o.Fallback = &fb
	}
	if d := a.OnDemand; d != nil {
		o.OnDemand = &acme.OnDemand{
			Ask:     d.Ask,
			Allow:   d.Allow,
			Rate:    acme.Limit{N: d.Certificates, Per: d.RatePer},
			PerName: acme.Limit{N: d.Attempts, Per: d.AttemptsPer},
		}
	}
	return o, nil
}

// acmeListenHost is the host strata binds the ACME HTTP port on, so that
// certmagic, finding it taken, opens no challenge listener of its own.
func acmeListenHost(cfg *config.Config) string {
	for _, f := range cfg.Frontends {
		for _, a := range f.Bind {
			if a.Port == cfg.Global.ACME.HTTPPort {
				return a.Host
			}
		}
	}
	return ""
}

// certificateSource is the GetCertificate of a frontend's TLS stage and its
// TLS-ALPN-01 hook: static certificates first when one matches the SNI,
// then the internal CA's or the ACME CA's certificate.
type certificateSource struct {
	store     *certs.Store
	internal  *certs.ManagedCert
	provider  *acme.Provider
	challenge func(*tls.ClientHelloInfo) (*tls.Certificate, bool)
}

func (c *certificateSource) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c.store != nil && (c.internal != nil || c.provider != nil) {
		// A static certificate for the name wins; so does the static
		// default for a hello without SNI, which ACME cannot serve.
		if x := c.store.Index(); x.Match(hello.ServerName) != nil || (hello.ServerName == "" && c.provider != nil) {
			return c.store.GetCertificate(hello)
		}
	}
	switch {
	case c.internal != nil:
		return c.internal.Certificate()
	case c.provider != nil:
		return c.provider.GetCertificate(hello)
	}
	return c.store.GetCertificate(hello)
}

// Check builds cfg as Build does, with the internal CA and the ACME
// storage in a temporary directory, and takes it down again: validating a
// configuration writes nothing to its data_dir and orders nothing.
func Check(cfg *config.Config) error {
	dir, err := os.MkdirTemp("", "strata-check-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	logger := slog.New(slog.DiscardHandler)
	svc := newServices(logger)
	svc.dataDir = dir
	g, err := buildGraph(cfg, logger, nil, svc, true)
	if err != nil {
		svc.stop()
		return err
	}
	return g.Drain(context.Background())
}
