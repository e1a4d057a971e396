package config

import (
	"crypto/tls"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v4"
)

var (
	frontendKeys    = []string{"bind", "mode", "max_connections", "proxy_protocol", "tls", "passthrough", "l4", "routes", "default_backend", "timeouts", "http_limits", "http_rules", "headers", "forwarded", "request_id", "errors", "https_redirect", "http2", "h2c"}
	frontendTLSKeys = []string{"certificates", "min_version", "alpn", "client_auth", "auto", "internal", "zero_rtt"}
	bindKeys        = []string{"address", "quic"}
	certificateKeys = []string{"cert", "key"}
	clientAuthKeys  = []string{"ca", "mode"}
	l4Keys          = []string{"allow", "deny", "rate", "max_per_source"}
	rateKeys        = []string{"connections", "per"}
	routeKeys       = []string{"sni", "dst_port", "host", "path_prefix", "header", "backend", "redirect"}
)

// maxListeners bounds the listeners of one configuration, port ranges
// expanded.
const maxListeners = 1 << 16

// frontend reads one frontend. autoHTTPS says whether some frontend of the
// file has tls auto, which makes a plain mode-http frontend on the ACME
// HTTP port redirect to https by default.
func (p *parser) frontend(e entry, cfg *Config, autoHTTPS bool) *Frontend {
	fe := &Frontend{
		Name:       e.key.Value,
		Pos:        pos(e.key),
		Mode:       ModeHTTP,
		Timeouts:   cfg.Defaults.Timeouts,
		HTTPLimits: cfg.Defaults.HTTPLimits,
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
	var tlsNames []*yaml.Node
	if v, ok := f["tls"]; ok {
		fe.TLS, tlsNames = p.frontendTLS(v)
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
		for _, key := range []string{"http_request", "keep_alive"} {
			if k := keyNode(v.val, key); k != nil {
				p.needHTTP(k, fe, "timeouts."+key)
			}
		}
	}
	p.frontendHTTP(f, fe, cfg)
	p.checkQUIC(f, fe)
	routes := p.seq(f.val("routes"), "routes", false)
	for i, item := range routes {
		if r, ok := p.route(item, i, fe, cfg); ok {
			fe.Routes = append(fe.Routes, r)
		}
	}
	if v, ok := f["default_backend"]; ok {
		if s, ok := p.str(v.val, "default_backend"); ok {
			p.checkBackend(v.val, s, fe, cfg)
			fe.DefaultBackend = s
		}
	}
	if t := fe.TLS; t != nil && (t.Auto || t.Internal) {
		p.managedNames(fe, f["tls"], tlsNames, cfg)
	}
	p.httpsRedirect(f, fe, cfg, autoHTTPS)
	if len(routes) == 0 && !f.has("default_backend") && !p.hasErrorAt(f.val("routes")) && !fe.HTTPSRedirect {
		p.errorf(e.key, "frontend %s: nowhere to send connections; add default_backend or routes", fe.Name)
	}
	return fe
}

// managedNames fills fe.TLS.Names for tls auto or internal and checks that
// there is something to manage.
func (p *parser) managedNames(fe *Frontend, e entry, listed []*yaml.Node, cfg *Config) {
	t := fe.TLS
	t.Names = p.tlsNames(fe, listed)
	switch {
	case len(t.Names) > 0:
	case t.Internal:
		t.Names = []string{defaultInternalLeaves, "127.0.0.1", "::1"}
	case cfg.Global.ACME.OnDemand == nil:
		p.errorf(e.key, "frontend %s: tls auto has no names: list them (tls: {auto: [example.com]}), give routes with host or sni, or set global.acme.on_demand", fe.Name)
	}
}

// httpsRedirect reads https_redirect, or gives its default: on for a plain
// mode-http frontend without default_backend binding the ACME HTTP port
// when some frontend has tls auto, as Caddy does. A frontend with a
// default_backend was written to serve plain HTTP; the redirect would make
// its default_backend unreachable.
func (p *parser) httpsRedirect(f fields, fe *Frontend, cfg *Config, autoHTTPS bool) {
	if v, ok := f["https_redirect"]; ok {
		p.needHTTP(v.key, fe, "https_redirect")
		if b, ok := p.boolean(v.val, "https_redirect"); ok {
			fe.HTTPSRedirect = b
			switch {
			case b && fe.TLS != nil:
				p.errorf(v.key, "frontend %s: https_redirect is for plain HTTP frontends; this one has tls", fe.Name)
			case b && f.has("default_backend"):
				p.errorf(v.key, "frontend %s: with https_redirect every request the routes do not take is redirected, so default_backend would never be used; remove one of them", fe.Name)
			}
		}
		return
	}
	if !autoHTTPS || fe.Mode != ModeHTTP || fe.TLS != nil || f.has("default_backend") {
		return
	}
	fe.HTTPSRedirect = slices.ContainsFunc(fe.Bind, func(a ListenAddr) bool { return a.Port == cfg.Global.ACME.HTTPPort })
}

// declaresAuto reports whether one of the frontend entries has tls auto,
// looking at the raw nodes before the frontends are read.
func declaresAuto(frontends []entry) bool {
	for _, e := range frontends {
		v := deref(valueOf(e.val, "tls"))
		switch {
		case v == nil:
		case v.Kind == yaml.ScalarNode && v.Value == "auto":
			return true
		case v.Kind == yaml.MappingNode:
			if a := deref(valueOf(v, "auto")); a != nil && !(a.Kind == yaml.ScalarNode && (a.Value == "false" || isNull(a))) {
				return true
			}
		}
	}
	return false
}

// valueOf returns the value of key name in the mapping n, or nil.
func valueOf(n *yaml.Node, name string) *yaml.Node {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := deref(n.Content[i]); k.Kind == yaml.ScalarNode && k.Value == name {
			return n.Content[i+1]
		}
	}
	return nil
}

// frontendHTTP reads the sections that only mode http has, and gives a
// mode http frontend their defaults.
func (p *parser) frontendHTTP(f fields, fe *Frontend, cfg *Config) {
	if fe.Mode == ModeHTTP {
		fe.Forwarded = Forwarded{XForwarded: true}
		fe.RequestID = RequestID{Header: defaultRequestIDHeader, Generate: true}
	}
	if fe.Mode == ModeHTTP {
		fe.HTTP2 = true
	}
	if v, ok := f["http2"]; ok {
		p.needHTTP(v.key, fe, "http2")
		fe.HTTP2, _ = p.boolean(v.val, "http2")
	}
	if v, ok := f["h2c"]; ok {
		p.needHTTP(v.key, fe, "h2c")
		fe.H2C, _ = p.boolean(v.val, "h2c")
	}
	if v, ok := f["http_limits"]; ok {
		p.needHTTP(v.key, fe, "http_limits")
		fe.HTTPLimits = p.httpLimits(v.val, fe.HTTPLimits, &cfg.Global)
	}
	if v, ok := f["http_rules"]; ok {
		p.needHTTP(v.key, fe, "http_rules")
		fe.HTTPRules = p.httpRules(v.val)
	}
	if v, ok := f["headers"]; ok {
		p.needHTTP(v.key, fe, "headers")
		fe.Headers = p.headers(v.val)
	}
	if v, ok := f["forwarded"]; ok {
		p.needHTTP(v.key, fe, "forwarded")
		fe.Forwarded = p.forwarded(v.val)
	}
	if v, ok := f["request_id"]; ok {
		p.needHTTP(v.key, fe, "request_id")
		fe.RequestID = p.requestID(v.val)
	}
	if v, ok := f["errors"]; ok {
		p.needHTTP(v.key, fe, "errors")
		fe.ErrorFiles = p.errorFiles(v.val)
	}
}

// keyNode returns the key node called name in the mapping n, or nil.
func keyNode(n *yaml.Node, name string) *yaml.Node {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := deref(n.Content[i]); k.Kind == yaml.ScalarNode && k.Value == name {
			return k
		}
	}
	return nil
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
		addrNode, quic := item, false
		if d := deref(item); d != nil && d.Kind == yaml.MappingNode {
			f := p.mapping(d, "bind", bindKeys)
			if f == nil {
				continue
			}
			if !f.has("address") {
				p.errorf(d, "bind: address is required in the mapping form, e.g. {address: \":443\", quic: true}")
				continue
			}
			addrNode = f.val("address")
			if v, ok := f["quic"]; ok {
				quic, _ = p.boolean(v.val, "quic")
			}
		}
		s, ok := p.str(addrNode, "bind")
		if !ok {
			continue
		}
		addrs, err := parseBind(s)
		if err != nil {
			p.errorf(deref(addrNode), "bind %q: %v", s, err)
			continue
		}
		at := pos(deref(addrNode))
		for i := range addrs {
			addrs[i].Pos = at
			addrs[i].QUIC = quic
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

// frontendTLS reads a frontend's tls: "auto", "internal", or a mapping. It
// also returns the names listed under auto or internal, which
// managedNames checks once the routes are read.
func (p *parser) frontendTLS(e entry) (*FrontendTLS, []*yaml.Node) {
	t := &FrontendTLS{Pos: pos(e.key), MinVersion: tls.VersionTLS12}
	if v := deref(e.val); v != nil && v.Kind == yaml.ScalarNode && !isNull(v) {
		switch v.Value {
		case "auto":
			t.Auto = true
		case "internal":
			t.Internal = true
		default:
			p.errorf(v, "tls: expected a mapping (certificates, auto, internal, …), auto or internal; got %s", describe(v))
		}
		return t, nil
	}
	f := p.mapping(e.val, "tls", frontendTLSKeys)
	if f == nil {
		return t, nil
	}
	var listed []*yaml.Node
	for _, key := range []string{"auto", "internal"} {
		v, ok := f[key]
		if !ok {
			continue
		}
		on := true
		if n := deref(v.val); n != nil && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool" {
			on, _ = p.boolean(n, "tls."+key)
		} else {
			items := p.seq(v.val, "tls."+key, true)
			if len(items) == 0 && !p.hasErrorAt(v.val) {
				p.errorf(v.key, "tls.%s: expected true or a list of names", key)
			}
			listed = append(listed, items...)
		}
		if key == "auto" {
			t.Auto = on
		} else {
			t.Internal = on
		}
	}
	if t.Auto && t.Internal {
		p.errorf(f["internal"].key, "tls: auto and internal are mutually exclusive: a frontend's names come from the ACME CA or from the internal CA")
	}
	before := len(p.errs)
	for _, item := range p.seq(f.val("certificates"), "certificates", false) {
		if c, ok := p.certificate(item); ok {
			t.Certificates = append(t.Certificates, c)
		}
	}
	if len(t.Certificates) == 0 && len(p.errs) == before && !t.Auto && !t.Internal {
		at := e.key
		if c, ok := f["certificates"]; ok {
			at = c.key
		}
		p.errorf(at, "tls: no certificates; add certificates: [{cert: FILE, key: FILE}], or auto: true (ACME) or internal: true (the internal CA)")
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
	if v, ok := f["zero_rtt"]; ok {
		t.ZeroRTT, _ = p.boolean(v.val, "zero_rtt")
	}
	return t, listed
}

// checkQUIC reports quic binds on a frontend that cannot serve HTTP/3
// (QUIC is always TLS 1.3, and only mode http has streams to serve) and
// zero_rtt on one with no quic bind.
func (p *parser) checkQUIC(f fields, fe *Frontend) {
	hasQUIC := false
	for _, a := range fe.Bind {
		if !a.QUIC {
			continue
		}
		hasQUIC = true
		switch {
		case fe.Mode != ModeHTTP:
			p.errorAt(a.Pos.Line, a.Pos.Col, fmt.Sprintf("frontend %s: bind %s: quic needs mode: http (mode is %s)", fe.Name, a, fe.Mode))
			return
		case fe.TLS == nil:
			p.errorAt(a.Pos.Line, a.Pos.Col, fmt.Sprintf("frontend %s: bind %s: quic needs tls: QUIC is always encrypted; add tls.certificates", fe.Name, a))
			return
		case fe.ProxyProtocol:
			p.errorAt(a.Pos.Line, a.Pos.Col, fmt.Sprintf("frontend %s: bind %s: quic cannot be used with proxy_protocol: QUIC datagrams carry no PROXY header, so its clients' addresses would be the load balancer's; bind quic on a frontend of its own", fe.Name, a))
			return
		}
	}
	if fe.TLS != nil && fe.TLS.ZeroRTT && !hasQUIC {
		p.errorf(keyNode(f.val("tls"), "zero_rtt"), "frontend %s: zero_rtt needs a bind entry with quic: true (0-RTT is only offered over QUIC)", fe.Name)
	}
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
	l.Allow = p.prefixes(f.val("allow"), "allow")
	l.Deny = p.prefixes(f.val("deny"), "deny")
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

func (p *parser) route(n *yaml.Node, i int, fe *Frontend, cfg *Config) (Route, bool) {
	r := Route{Pos: pos(deref(n))}
	f := p.mapping(n, "route", routeKeys)
	if f == nil {
		return r, false
	}
	at := fmt.Sprintf("routes[%d]", i)
	for _, key := range []string{"host", "path_prefix", "header", "redirect"} {
		if v, ok := f[key]; ok {
			p.needHTTP(v.key, fe, at+"."+key)
		}
	}
	written := 0 // criteria items, valid or not
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
	if v, ok := f["host"]; ok {
		items := p.seq(v.val, at+".host", true)
		written += len(items)
		r.Host = p.hostPatterns(items, at+".host")
	}
	if v, ok := f["path_prefix"]; ok {
		items := p.seq(v.val, at+".path_prefix", true)
		written += len(items)
		r.PathPrefix = p.pathPrefixes(items, at+".path_prefix")
	}
	if v, ok := f["header"]; ok {
		written++
		r.Header = p.headerMatch(v.val, at+".header")
	}
	if written == 0 && !p.hasErrorAt(f.val("sni")) && !p.hasErrorAt(f.val("dst_port")) &&
		!p.hasErrorAt(f.val("host")) && !p.hasErrorAt(f.val("path_prefix")) {
		if fe.Mode == ModeHTTP {
			p.errorf(deref(n), "route: matches nothing; give host, path_prefix, header, sni or dst_port (path_prefix: / matches every request; use default_backend for a catch-all)")
		} else {
			p.errorf(deref(n), "route: matches nothing; give sni or dst_port (use default_backend for a catch-all)")
		}
	}
	bv, hasBackend := f["backend"]
	rv, hasRedirect := f["redirect"]
	switch {
	case hasBackend && hasRedirect:
		p.errorf(rv.key, "route: backend and redirect are mutually exclusive: a route either forwards or redirects")
	case !hasBackend && !hasRedirect && fe.Mode == ModeHTTP:
		p.errorf(deref(n), "route: backend is required (or redirect)")
	case !hasBackend && !hasRedirect:
		p.errorf(deref(n), "route: backend is required")
	}
	if hasBackend {
		if s, ok := p.str(bv.val, "backend"); ok {
			p.checkBackend(bv.val, s, fe, cfg)
			r.Backend = s
		}
	}
	if hasRedirect {
		r.Redirect = p.redirect(rv, at+".redirect", f.has("path_prefix"))
	}
	return r, true
}

// checkBackend records an error at n when name is not a backend, or is one
// that fe cannot use: a backend that reads requests (uri or header
// balancing, cookie persistence) or speaks HTTP/2 or HTTP/3 needs mode
// http.
func (p *parser) checkBackend(n *yaml.Node, name string, fe *Frontend, cfg *Config) {
	if b := cfg.backends[name]; b != nil {
		if fe.Mode == ModeHTTP {
			return
		}
		switch {
		case b.Balance == BalanceURI || b.Balance == BalanceHeader:
			p.errorf(deref(n), "backend %s balances by %s, which needs mode: http (frontend %s is mode %s)", name, balanceName(b), fe.Name, fe.Mode)
		case b.Cookie != nil:
			p.errorf(deref(n), "backend %s has cookie persistence, which needs mode: http (frontend %s is mode %s)", name, fe.Name, fe.Mode)
		case b.Proto == ProtoH2:
			p.errorf(deref(n), "backend %s speaks proto h2, which needs mode: http (frontend %s is mode %s)", name, fe.Name, fe.Mode)
		case b.H3:
			p.errorf(deref(n), "backend %s speaks HTTP/3 (h3: true), which needs mode: http (frontend %s is mode %s)", name, fe.Name, fe.Mode)
		}
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
