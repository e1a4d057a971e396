package config

import (
	"crypto/tls"
	"net/netip"
	"slices"
	"strings"

	"go.yaml.in/yaml/v4"
)

var (
	frontendKeys    = []string{"bind", "mode", "max_connections", "proxy_protocol", "tls", "passthrough", "l4", "routes", "default_backend", "timeouts"}
	frontendTLSKeys = []string{"certificates", "min_version", "alpn", "client_auth"}
	certificateKeys = []string{"cert", "key"}
	clientAuthKeys  = []string{"ca", "mode"}
	l4Keys          = []string{"allow", "deny", "rate", "max_per_source"}
	rateKeys        = []string{"connections", "per"}
	routeKeys       = []string{"sni", "dst_port", "backend"}
)

// maxListeners bounds the listeners of one configuration, port ranges
// expanded.
const maxListeners = 1 << 16

func (p *parser) frontend(e entry, cfg *Config) *Frontend {
	fe := &Frontend{
		Name:     e.key.Value,
		Pos:      pos(e.key),
		Mode:     ModeHTTP,
		Timeouts: cfg.Defaults.Timeouts,
	}
	f := p.mapping(e.val, "frontend "+fe.Name, frontendKeys)
	if f == nil {
		return fe
	}

	before := len(p.errs)
	if v, ok := f["bind"]; ok {
		fe.Bind = p.binds(v.val)
	}
	if len(fe.Bind) == 0 && len(p.errs) == before {
		p.errorf(e.key, "frontend %s: no bind address; add e.g. bind: \":8443\"", fe.Name)
	}
	if v, ok := f["mode"]; ok {
		if s, ok := p.enum(v.val, "mode", "tcp", "http"); ok {
			fe.Mode = Mode(s)
		}
	}
	if v, ok := f["max_connections"]; ok {
		if i, ok := p.integer(v.val, "max_connections", 0, maxInt); ok {
			fe.MaxConnections = i
		}
	}
	if v, ok := f["proxy_protocol"]; ok {
		fe.ProxyProtocol, _ = p.boolean(v.val, "proxy_protocol")
	}
	if v, ok := f["tls"]; ok {
		fe.TLS = p.frontendTLS(v)
	}
	if v, ok := f["passthrough"]; ok {
		fe.Passthrough, _ = p.boolean(v.val, "passthrough")
		switch {
		case fe.Passthrough && fe.TLS != nil:
			p.errorf(v.key, "frontend %s: passthrough and tls are mutually exclusive: passthrough forwards TLS untouched, tls terminates it", fe.Name)
		case fe.Passthrough && fe.Mode != ModeTCP:
			p.errorf(v.key, "frontend %s: passthrough needs mode: tcp (mode is %s)", fe.Name, fe.Mode)
		}
	}
	if v, ok := f["l4"]; ok {
		fe.L4 = p.l4(v.val)
	}
	if v, ok := f["timeouts"]; ok {
		fe.Timeouts = p.timeouts(v.val, fe.Timeouts)
	}
	routes := p.seq(f.val("routes"), "routes", false)
	for _, item := range routes {
		if r, ok := p.route(item, fe, cfg); ok {
			fe.Routes = append(fe.Routes, r)
		}
	}
	if v, ok := f["default_backend"]; ok {
		if s, ok := p.str(v.val, "default_backend"); ok {
			p.checkBackend(v.val, s, cfg)
			fe.DefaultBackend = s
		}
	}
	if len(routes) == 0 && !f.has("default_backend") && !p.hasErrorAt(f.val("routes")) {
		p.errorf(e.key, "frontend %s: nowhere to send connections; add default_backend or routes", fe.Name)
	}
	return fe
}

// hasErrorAt reports whether an error was recorded at n itself, such as
// "expected a list", so that a follow-on "missing" error is not added.
func (p *parser) hasErrorAt(n *yaml.Node) bool {
	n = deref(n)
	if n == nil {
		return false
	}
	return p.errAt[Pos{n.Line, n.Column}]
}

// binds reads a bind string or list, expanding port ranges.
func (p *parser) binds(n *yaml.Node) []ListenAddr {
	var out []ListenAddr
	for _, item := range p.seq(n, "bind", true) {
		s, ok := p.str(item, "bind")
		if !ok {
			continue
		}
		addrs, err := parseBind(s)
		if err != nil {
			p.errorf(deref(item), "bind %q: %v", s, err)
			continue
		}
		at := pos(deref(item))
		for i := range addrs {
			addrs[i].Pos = at
		}
		if p.listeners+len(addrs) > maxListeners {
			p.errorf(deref(item), "bind: more than %d listeners in the configuration", maxListeners)
			return out
		}
		p.listeners += len(addrs)
		out = append(out, addrs...)
	}
	return out
}

func (p *parser) frontendTLS(e entry) *FrontendTLS {
	t := &FrontendTLS{Pos: pos(e.key), MinVersion: tls.VersionTLS12}
	f := p.mapping(e.val, "tls", frontendTLSKeys)
	if f == nil {
		return t
	}
	before := len(p.errs)
	for _, item := range p.seq(f.val("certificates"), "certificates", false) {
		if c, ok := p.certificate(item); ok {
			t.Certificates = append(t.Certificates, c)
		}
	}
	if len(t.Certificates) == 0 && len(p.errs) == before {
		at := e.key
		if c, ok := f["certificates"]; ok {
			at = c.key
		}
		p.errorf(at, "tls: no certificates; add certificates: [{cert: FILE, key: FILE}]")
	}
	if v, ok := f["min_version"]; ok {
		if s, ok := p.enum(v.val, "min_version", "1.2", "1.3"); ok && s == "1.3" {
			t.MinVersion = tls.VersionTLS13
		}
	}
	if v, ok := f["alpn"]; ok {
		t.ALPN = p.alpn(v.val)
	}
	if v, ok := f["client_auth"]; ok {
		t.ClientAuth = p.clientAuth(v)
	}
	return t
}

func (p *parser) certificate(n *yaml.Node) (Certificate, bool) {
	c := Certificate{Pos: pos(deref(n))}
	f := p.mapping(n, "certificate", certificateKeys)
	if f == nil {
		return c, false
	}
	cv, kv := f.val("cert"), f.val("key")
	if cv == nil || kv == nil {
		p.errorf(deref(n), "certificate: needs both cert and key")
		return c, false
	}
	cert, certName, ok1 := p.path(cv, "cert")
	key, keyName, ok2 := p.path(kv, "key")
	if !ok1 || !ok2 {
		return c, false
	}
	if !p.checkKeyPair(deref(cv), cert, certName, key, keyName, "certificate") {
		return c, false
	}
	c.Cert, c.Key = cert, key
	return c, true
}

func (p *parser) clientAuth(e entry) *ClientAuth {
	ca := &ClientAuth{Mode: tls.RequireAndVerifyClientCert}
	f := p.mapping(e.val, "client_auth", clientAuthKeys)
	if f == nil {
		return ca
	}
	if v, ok := f["ca"]; ok {
		if path, name, ok := p.path(v.val, "ca"); ok {
			p.checkCA(deref(v.val), path, name)
			ca.CA = path
		}
	} else {
		p.errorf(e.key, "client_auth: ca is required: the PEM file of the CAs that sign client certificates")
	}
	if v, ok := f["mode"]; ok {
		if s, ok := p.enum(v.val, "client_auth.mode", "require", "verify_if_given"); ok && s == "verify_if_given" {
			ca.Mode = tls.VerifyClientCertIfGiven
		}
	}
	return ca
}

func (p *parser) l4(n *yaml.Node) L4 {
	var l L4
	f := p.mapping(n, "l4", l4Keys)
	prefixes := func(key string) []netip.Prefix {
		var out []netip.Prefix
		for _, item := range p.seq(f.val(key), key, true) {
			s, ok := p.str(item, key)
			if !ok {
				continue
			}
			pfx, err := parsePrefix(s)
			if err != nil {
				p.errorf(deref(item), "%s: %v", key, err)
				continue
			}
			out = append(out, pfx)
		}
		return out
	}
	l.Allow = prefixes("allow")
	l.Deny = prefixes("deny")
	if v, ok := f["rate"]; ok {
		r := &Rate{}
		rf := p.mapping(v.val, "rate", rateKeys)
		cv, pv := rf.val("connections"), rf.val("per")
		if rf != nil && (cv == nil || pv == nil) {
			p.errorf(v.key, "rate: needs both connections and per, e.g. {connections: 100, per: 10s}")
		}
		if cv != nil {
			r.Connections, _ = p.integer(cv, "rate.connections", 1, maxInt)
		}
		if pv != nil {
			r.Per, _ = p.duration(pv, "rate.per", false)
		}
		l.Rate = r
	}
	if v, ok := f["max_per_source"]; ok {
		l.MaxPerSource, _ = p.integer(v.val, "max_per_source", 0, maxInt)
	}
	return l
}

func (p *parser) route(n *yaml.Node, fe *Frontend, cfg *Config) (Route, bool) {
	r := Route{Pos: pos(deref(n))}
	f := p.mapping(n, "route", routeKeys)
	if f == nil {
		return r, false
	}
	written := 0 // sni and dst_port items, valid or not
	if v, ok := f["sni"]; ok {
		items := p.seq(v.val, "sni", true)
		written += len(items)
		for _, item := range items {
			s, ok := p.str(item, "sni")
			if !ok {
				continue
			}
			name, err := parseSNI(s)
			if err != nil {
				p.errorf(deref(item), "sni: %v", err)
				continue
			}
			r.SNI = append(r.SNI, name)
		}
		if fe.TLS == nil && !fe.Passthrough {
			p.errorf(v.key, "route: sni needs tls or passthrough on frontend %s: without them the server name is never seen", fe.Name)
		}
	}
	if v, ok := f["dst_port"]; ok {
		items := p.seq(v.val, "dst_port", true)
		written += len(items)
		for _, item := range items {
			port, ok := p.integer(item, "dst_port", 1, 65535)
			if !ok {
				continue
			}
			if len(fe.Bind) > 0 && !slices.ContainsFunc(fe.Bind, func(a ListenAddr) bool { return a.Port == port }) {
				p.errorf(deref(item), "dst_port: frontend %s does not listen on port %d", fe.Name, port)
				continue
			}
			r.DstPort = append(r.DstPort, port)
		}
	}
	if written == 0 && !p.hasErrorAt(f.val("sni")) && !p.hasErrorAt(f.val("dst_port")) {
		p.errorf(deref(n), "route: matches nothing; give sni or dst_port (use default_backend for a catch-all)")
	}
	if v, ok := f["backend"]; ok {
		if s, ok := p.str(v.val, "backend"); ok {
			p.checkBackend(v.val, s, cfg)
			r.Backend = s
		}
	} else {
		p.errorf(deref(n), "route: backend is required")
	}
	return r, true
}

// checkBackend records an error at n when name is not a backend.
func (p *parser) checkBackend(n *yaml.Node, name string, cfg *Config) {
	if cfg.backends[name] != nil {
		return
	}
	names := make([]string, 0, len(cfg.backends))
	for b := range cfg.backends {
		names = append(names, b)
	}
	slices.Sort(names)
	h := ""
	if len(names) == 0 {
		h = "; no backends are defined"
	} else if hn := hint(name, names); strings.HasPrefix(hn, " (") {
		h = hn
	} else {
		h = "; backends are: " + strings.Join(names, ", ")
	}
	p.errorf(deref(n), "unknown backend %q%s", name, h)
}
