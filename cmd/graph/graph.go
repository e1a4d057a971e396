package graph

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/strata-proxy/strata/certs"
	"github.com/strata-proxy/strata/cmd/config"
	"github.com/strata-proxy/strata/layers"
	"github.com/strata-proxy/strata/layers/h3"
	"github.com/strata-proxy/strata/session"
	"github.com/strata-proxy/strata/tlsstage"
)

// certWatchInterval is how often static certificate files are checked for
// changes.
const certWatchInterval = 5 * time.Second

// Graph is the live objects built from one Config. It holds no sockets: the
// Runtime owns those and points them at the Graph's frontends.
type Graph struct {
	Config *config.Config

	// frontends maps a listen address (ListenAddr.String()) to the
	// frontend that serves it.
	frontends map[string]frontend
	// quic maps a listen address with `quic: true` to what its UDP
	// listener serves.
	quic     map[string]h3.Handler
	all      []frontend
	backends map[string]*session.Backend
	stores   []*certs.Store
	// tls holds each TLS frontend's server configuration while Build runs.
	tls map[string]*tls.Config
	// managed are internal-CA certificates renewed while the Graph runs;
	// acmeNames are given to the ACME Provider on Start.
	managed   []*certs.ManagedCert
	acmeNames []string
	svc       *services
	ownSvc    bool // svc is this Graph's alone: Drain stops it

	ctx    context.Context
	cancel context.CancelFunc
	start  sync.Once
	wg     sync.WaitGroup // background goroutines started by Start
}

// internalClientName is the name in the client certificate presented to
// backends with client_certificate: internal.
const internalClientName = "strata-client"

// frontend is what a listener serves: a TCP-mode or HTTP-mode frontend of
// package session.
type frontend interface {
	layers.Handler
	Shutdown(ctx context.Context) error
	Live() int
}

// Build makes the live objects of cfg. It opens no socket and starts no
// goroutine apart from the ACME Provider's cache when a frontend has tls
// auto; Start does the rest. The Graph owns its internal CA and ACME
// Provider and stops them when drained; a Runtime shares them across
// reloads instead.
func Build(cfg *config.Config, logger, accessLog *slog.Logger) (*Graph, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	svc := newServices(logger)
	g, err := buildGraph(cfg, logger, accessLog, svc, true)
	if err != nil {
		svc.stop()
	}
	return g, err
}

func buildGraph(cfg *config.Config, logger, accessLog *slog.Logger, svc *services, own bool) (*Graph, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	g := &Graph{
		Config:    cfg,
		frontends: make(map[string]frontend),
		quic:      make(map[string]h3.Handler),
		tls:       make(map[string]*tls.Config),
		backends:  make(map[string]*session.Backend),
		svc:       svc,
		ownSvc:    own,
	}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	for _, b := range cfg.Backends {
		be, err := g.buildBackend(b, logger)
		if err != nil {
			return nil, fmt.Errorf("%s:%s: backend %s: %w", cfg.File, b.Pos, b.Name, err)
		}
		g.backends[b.Name] = be
	}
	buffers := layers.NewBufferPool(int(cfg.Global.BufferSize))
	for _, f := range cfg.Frontends {
		fe, err := g.buildFrontend(f, buffers, logger, accessLog)
		if err != nil {
			return nil, fmt.Errorf("%s:%s: frontend %s: %w", cfg.File, f.Pos, f.Name, err)
		}
		g.all = append(g.all, fe)
		for _, a := range f.Bind {
			g.frontends[a.String()] = fe
		}
		if err := g.buildQUIC(f, fe); err != nil {
			return nil, fmt.Errorf("%s:%s: frontend %s: %w", cfg.File, f.Pos, f.Name, err)
		}
	}
	return g, nil
}

func (g *Graph) buildFrontend(f *config.Frontend, buffers *layers.BufferPool, logger, accessLog *slog.Logger) (frontend, error) {
	var stages []layers.Stage
	if f.ProxyProtocol {
		stages = append(stages, &layers.ProxyDecode{})
	}
	switch {
	case f.Passthrough:
		stages = append(stages, &tlsstage.Peek{})
	case f.TLS != nil:
		cfg, err := g.serverTLS(f, logger)
		if err != nil {
			return nil, err
		}
		g.tls[f.Name] = cfg
		stages = append(stages, tlsstage.NewServer(cfg))
	}
	var l4 *layers.L4Rules
	if len(f.L4.Allow) > 0 || len(f.L4.Deny) > 0 || f.L4.Rate != nil || f.L4.MaxPerSource > 0 {
		o := layers.L4Options{Allow: f.L4.Allow, Deny: f.L4.Deny, MaxPerSource: f.L4.MaxPerSource}
		if f.L4.Rate != nil {
			o.Rate, o.Per = f.L4.Rate.Connections, f.L4.Rate.Per
		}
		l4 = layers.NewL4Rules(o, logger.With("frontend", f.Name))
	}
	if f.Mode == config.ModeHTTP {
		return g.buildHTTPFrontend(f, stages, l4, buffers, logger, accessLog)
	}
	routes := make([]session.Route, 0, len(f.Routes))
	for _, r := range f.Routes {
		ports := make([]uint16, len(r.DstPort))
		for i, p := range r.DstPort {
			ports[i] = uint16(p)
		}
		routes = append(routes, session.Route{SNI: r.SNI, DstPorts: ports, Backend: g.backends[r.Backend]})
	}
	var def *session.Backend
	if f.DefaultBackend != "" {
		def = g.backends[f.DefaultBackend]
	}
	t := f.Timeouts
	return session.NewTCPFrontend(session.TCPFrontendOptions{
		Name:   f.Name,
		Stages: stages,
		Router: session.NewRouter(routes, def),
		Timeouts: session.Timeouts{
			Handshake: t.Handshake, Client: t.Client, Server: t.Server,
			Tunnel: t.Tunnel, Connect: t.Connect, Queue: t.Queue,
		},
		L4:        l4,
		Limit:     layers.NewConnLimit(f.MaxConnections),
		Buffers:   buffers,
		AccessLog: accessLog,
		Logger:    logger.With("frontend", f.Name),
	}), nil
}

// frontendALPN is what a TLS frontend offers by ALPN: what the user wrote,
// else for mode http the protocols its mux stages serve, HTTP/2 first (as
// Caddy and HAProxy offer them).
func frontendALPN(f *config.Frontend) []string {
	switch {
	case len(f.TLS.ALPN) > 0:
		return f.TLS.ALPN
	case f.Mode != config.ModeHTTP:
		return nil
	case f.HTTP2:
		return []string{"h2", "http/1.1"}
	}
	return []string{"http/1.1"}
}

// serverTLS is the TLS configuration of a frontend's TLS decode stage and
// of its QUIC listeners: static certificates chosen by SNI, reloaded when
// their files change, and the certificates of tls auto (the ACME Provider,
// which also answers TLS-ALPN-01 on TCP) or tls internal (one
// self-renewing certificate from the internal CA for all of the
// frontend's names).
func (g *Graph) serverTLS(f *config.Frontend, logger *slog.Logger) (*tls.Config, error) {
	t := f.TLS
	src := &certificateSource{}
	if len(t.Certificates) > 0 {
		pairs := make([]certs.Pair, len(t.Certificates))
		for i, c := range t.Certificates {
			pairs[i] = certs.Pair{Cert: c.Cert, Key: c.Key}
		}
		store, err := certs.NewStore(pairs, logger)
		if err != nil {
			return nil, err
		}
		g.stores = append(g.stores, store)
		src.store = store
	}
	o := tlsstage.ServerOptions{
		GetCertificate: src.GetCertificate,
		MinVersion:     t.MinVersion,
		ALPN:           frontendALPN(f),
	}
	switch {
	case t.Internal:
		ca, err := g.svc.internalCA(g.Config)
		if err != nil {
			return nil, err
		}
		src.internal = ca.Managed(t.Names, certs.IssueOptions{})
		if _, err := src.internal.Certificate(); err != nil {
			return nil, fmt.Errorf("tls internal: %w", err)
		}
		g.managed = append(g.managed, src.internal)
	case t.Auto:
		p, err := g.svc.acmeProvider(g.Config)
		if err != nil {
			return nil, err
		}
		src.provider = p
		g.acmeNames = append(g.acmeNames, t.Names...)
		o.ChallengeCert = p.ChallengeCert
	}
	if ca := t.ClientAuth; ca != nil {
		pool, err := certs.LoadPool(ca.CA)
		if err != nil {
			return nil, err
		}
		o.ClientCAs = pool
		o.RequireClientCert = ca.Mode == tls.RequireAndVerifyClientCert
		o.VerifyIfGiven = ca.Mode == tls.VerifyClientCertIfGiven
	}
	return tlsstage.ServerConfig(o), nil
}

func (g *Graph) buildBackend(b *config.Backend, logger *slog.Logger) (*session.Backend, error) {
	var (
		roots      *x509.CertPool
		clientCert []tls.Certificate
		getClient  func(*tls.CertificateRequestInfo) (*tls.Certificate, error)
	)
	if t := b.TLS; t != nil && (t.CAInternal || t.ClientInternal) {
		ca, err := g.svc.internalCA(g.Config)
		if err != nil {
			return nil, err
		}
		if t.CAInternal {
			roots = ca.RootPool()
		}
		if t.ClientInternal {
			m := ca.Managed([]string{internalClientName}, certs.IssueOptions{Client: true})
			if _, err := m.Certificate(); err != nil {
				return nil, fmt.Errorf("tls client_certificate internal: %w", err)
			}
			g.managed = append(g.managed, m)
			getClient = m.GetClientCertificate
		}
	}
	if t := b.TLS; t != nil {
		if t.CA != "" {
			p, err := certs.LoadPool(t.CA)
			if err != nil {
				return nil, err
			}
			roots = p
		}
		if t.ClientCert != "" {
			c, err := certs.LoadPair(t.ClientCert, t.ClientKey)
			if err != nil {
				return nil, err
			}
			clientCert = []tls.Certificate{*c}
		}
		if !t.Verify {
			logger.Warn("backend TLS verification is off: servers' certificates are not checked", "backend", b.Name)
		}
	}
	proto, alpn := session.ProtoH1, []string(nil)
	if b.TLS != nil {
		alpn = b.TLS.ALPN
	}
	if b.Proto == config.ProtoH2 {
		proto = session.ProtoH2
		if len(alpn) == 0 {
			alpn = []string{"h2"}
		}
	}
	servers := make([]session.ServerOptions, len(b.Servers))
	for i, s := range b.Servers {
		d := &layers.Dialer{Address: s.Address}
		if s.SendProxy {
			d.Stages = append(d.Stages, &layers.ProxyEncode{})
		}
		var tc *tlsstage.Client
		if t := b.TLS; t != nil {
			tc = tlsstage.NewClient(tlsstage.ClientOptions{
				ServerName:           s.ServerName,
				RootCAs:              roots,
				InsecureSkipVerify:   !t.Verify,
				Certificates:         clientCert,
				GetClientCertificate: getClient,
				ALPN:                 alpn,
			})
			d.Stages = append(d.Stages, tc)
		}
		servers[i] = session.ServerOptions{
			Name: s.Name, Address: s.Address, Weight: s.Weight,
			MaxConn: s.MaxConn, Backup: s.Backup, Connector: d, Proto: proto,
		}
		if b.H3 && tc != nil {
			servers[i].QUIC = quicClientTLS(tc, s)
		}
	}
	o := session.BackendOptions{
		Name:         b.Name,
		Balance:      string(b.Balance),
		HashHeader:   b.HashHeader,
		Servers:      servers,
		Retries:      b.Retries,
		QueueMax:     b.Queue.Max,
		QueueTimeout: b.Queue.Timeout,
		Logger:       logger.With("backend", b.Name),
	}
	if h := b.Health; h != nil {
		o.Health = &session.HealthOptions{Kind: string(h.Type), Interval: h.Interval, Timeout: h.Timeout, Rise: h.Rise, Fall: h.Fall}
		if h.Type == config.HealthHTTP {
			o.Health.HTTP = session.HTTPCheck{Method: h.Method, Path: h.Path, Host: h.Host, Status: h.ExpectStatus}
		}
	}
	if c := b.Cookie; c != nil {
		o.Cookie = &session.CookieOptions{Name: c.Name, Insert: c.Insert}
	}
	if p := b.Passive; p != nil {
		o.Passive = &session.PassiveOptions{Failures: p.Failures, Eject: p.Eject}
	}
	return session.NewBackend(o)
}

// QUICHandler returns what the UDP listener on the listen address addr
// serves, and false when addr has no `quic: true`.
func (g *Graph) QUICHandler(addr string) (h3.Handler, bool) {
	h, ok := g.quic[addr]
	return h, ok
}

// Handler returns the frontend serving the listen address addr, or nil.
func (g *Graph) Handler(addr string) layers.Handler {
	if fe, ok := g.frontends[addr]; ok {
		return fe
	}
	return nil
}

// Start starts the Graph's background work: health checks, certificate
// file watches, internal-CA renewals, and ACME management of the tls auto
// names. It is idempotent.
func (g *Graph) Start() {
	g.start.Do(func() {
		for _, b := range g.backends {
			b.Start(g.ctx)
		}
		for _, s := range g.stores {
			go s.Watch(g.ctx, certWatchInterval)
		}
		for _, m := range g.managed {
			g.wg.Add(1)
			go func() {
				defer g.wg.Done()
				m.Run(g.ctx)
			}()
		}
		if len(g.acmeNames) > 0 {
			if p, err := g.svc.acmeProvider(g.Config); err == nil {
				p.Manage(g.acmeNames)
			}
		}
	})
}

// Drain waits for the sessions that started on this Graph to finish, closes
// those still running when ctx is done, then stops the background work.
func (g *Graph) Drain(ctx context.Context) error {
	var errs []error
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, fe := range g.all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fe.Shutdown(ctx); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	g.cancel()
	g.wg.Wait()
	for _, b := range g.backends {
		b.CloseIdle()
	}
	if g.ownSvc {
		g.svc.stop()
	}
	return errors.Join(errs...)
}

// Live is the number of sessions running on this Graph.
func (g *Graph) Live() int {
	n := 0
	for _, fe := range g.all {
		n += fe.Live()
	}
	return n
}
