package config

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v4"
)

var (
	backendKeys    = []string{"balance", "cookie", "servers", "tls", "h3", "health", "passive", "retries", "queue", "timeouts", "proto"}
	serverKeys     = []string{"address", "name", "weight", "maxconn", "backup", "send_proxy"}
	backendTLSKeys = []string{"sni", "ca", "verify", "client_cert", "client_key", "client_certificate", "alpn"}
	healthKeys     = []string{"type", "interval", "timeout", "rise", "fall", "method", "path", "expect_status", "host"}
	cookieKeys     = []string{"name", "insert"}
	passiveKeys    = []string{"failures", "eject"}
	queueKeys      = []string{"max", "timeout"}
)

// Built-in defaults of backend sub-sections.
const (
	defaultWeight         = 1
	maxWeight             = 256
	defaultHealthInterval = 2 * time.Second
	defaultRise           = 2
	defaultFall           = 3
	defaultFailures       = 3
	defaultEject          = 30 * time.Second
	defaultHealthMethod   = "GET"
	defaultHealthPath     = "/"
	defaultHealthStatus   = 200
)

// balanceValues lists the valid balance values, for messages.
const balanceValues = "roundrobin, leastconn, random, source, first, uri, header(NAME)"

func (p *parser) backend(e entry, d *Defaults) *Backend {
	b := &Backend{
		Name:     e.key.Value,
		Pos:      pos(e.key),
		Balance:  BalanceRoundRobin,
		Proto:    ProtoH1,
		Retries:  d.Retries,
		Timeouts: d.Timeouts,
	}
	f := p.mapping(e.val, "backend "+b.Name, backendKeys)
	if f == nil {
		return b
	}
	if v, ok := f["balance"]; ok {
		if bal, header, ok := p.balance(v.val); ok {
			b.Balance, b.HashHeader = bal, header
		}
	}
	if v, ok := f["cookie"]; ok {
		b.Cookie = p.cookie(v)
	}
	if v, ok := f["retries"]; ok {
		if i, ok := p.integer(v.val, "retries", 0, math.MaxInt16); ok {
			b.Retries = i
		}
	}
	if v, ok := f["timeouts"]; ok {
		b.Timeouts = p.timeouts(v.val, b.Timeouts)
	}
	b.Queue.Timeout = b.Timeouts.Queue
	if v, ok := f["queue"]; ok {
		q := p.mapping(v.val, "queue", queueKeys)
		if v, ok := q["max"]; ok {
			b.Queue.Max, _ = p.integer(v.val, "queue.max", 0, maxInt)
		}
		if v, ok := q["timeout"]; ok {
			if t, ok := p.duration(v.val, "queue.timeout", false); ok {
				b.Queue.Timeout = t
				b.Timeouts.Queue = t
			}
		}
	}
	if v, ok := f["tls"]; ok {
		b.TLS = p.backendTLS(v)
	}
	if v, ok := f["h3"]; ok {
		b.H3, _ = p.boolean(v.val, "h3")
		if b.H3 && b.TLS == nil {
			p.errorf(v.key, "backend %s: h3 needs tls: HTTP/3 runs over QUIC, which is always encrypted; add tls (sni, ca)", b.Name)
		}
	}
	if v, ok := f["proto"]; ok {
		if s, ok := p.enum(v.val, "proto", string(ProtoH1), string(ProtoH2)); ok {
			b.Proto = Proto(s)
			if t := b.TLS; b.Proto == ProtoH2 && t != nil && len(t.ALPN) > 0 && !slices.Contains(t.ALPN, "h2") {
				p.errorf(deref(v.val), "proto: h2 over TLS needs \"h2\" in tls.alpn (it is %q); add it or drop tls.alpn", t.ALPN)
			}
		}
	}
	if v, ok := f["health"]; ok {
		b.Health = p.health(v, b)
	}
	if v, ok := f["passive"]; ok {
		ps := &Passive{Failures: defaultFailures, Eject: defaultEject}
		pf := p.mapping(v.val, "passive", passiveKeys)
		if v, ok := pf["failures"]; ok {
			ps.Failures, _ = p.integer(v.val, "passive.failures", 1, maxInt)
		}
		if v, ok := pf["eject"]; ok {
			ps.Eject, _ = p.duration(v.val, "passive.eject", false)
		}
		b.Passive = ps
	}

	before := len(p.errs)
	byName := map[string]Pos{}
	for _, item := range p.seq(f.val("servers"), "servers", false) {
		s, ok := p.server(item, d)
		if !ok {
			continue
		}
		if first, dup := byName[s.Name]; dup {
			p.errorf(deref(item), "backend %s: duplicate server name %q (first at %s); give each server a distinct name", b.Name, s.Name, first)
			continue
		}
		byName[s.Name] = s.Pos
		if b.Cookie != nil && !validCookieValue(s.Name) {
			p.errorf(deref(item), "backend %s: server name %q cannot be a cookie value (cookie persistence names servers); give it a name without spaces, quotes, commas, semicolons or backslashes", b.Name, s.Name)
		}
		if b.TLS != nil {
			s.ServerName = b.TLS.SNI
			if s.ServerName == "" && validHostname(s.Host) {
				s.ServerName = s.Host
			}
		}
		b.Servers = append(b.Servers, s)
	}
	if len(b.Servers) == 0 && len(p.errs) == before {
		p.errorf(e.key, "backend %s: no servers; add servers: [{address: HOST:PORT}]", b.Name)
	}
	return b
}

func (p *parser) server(n *yaml.Node, d *Defaults) (Server, bool) {
	s := Server{Pos: pos(deref(n)), Weight: defaultWeight, MaxConn: d.MaxConn}
	f := p.mapping(n, "server", serverKeys)
	if f == nil {
		return s, false
	}
	ok := true
	if v, has := f["address"]; has {
		addr, good := p.str(v.val, "address")
		if good {
			host, port, err := splitHostPort(addr)
			if err == nil {
				s.Port, err = parsePort(port)
			}
			if err == nil && host == "" {
				p.errorf(deref(v.val), "address %q: missing host; write e.g. 127.0.0.1%s", addr, addr)
				good = false
			} else if err != nil {
				p.errorf(deref(v.val), "address %q: %v", addr, err)
				good = false
			}
			s.Address, s.Host = addr, host
		}
		ok = ok && good
	} else {
		p.errorf(deref(n), "server: address is required (host:port)")
		ok = false
	}
	s.Name = s.Address
	if v, has := f["name"]; has {
		name, good := p.str(v.val, "name")
		s.Name = name
		ok = ok && good
	}
	if v, has := f["weight"]; has {
		w, good := p.integer(v.val, "weight", 0, maxWeight)
		s.Weight = w
		ok = ok && good
	}
	if v, has := f["maxconn"]; has {
		m, good := p.integer(v.val, "maxconn", 0, maxInt)
		s.MaxConn = m
		ok = ok && good
	}
	if v, has := f["backup"]; has {
		s.Backup, _ = p.boolean(v.val, "backup")
	}
	if v, has := f["send_proxy"]; has {
		s.SendProxy, _ = p.boolean(v.val, "send_proxy")
	}
	return s, ok
}

func (p *parser) backendTLS(e entry) *BackendTLS {
	t := &BackendTLS{Pos: pos(e.key), Verify: true}
	f := p.mapping(e.val, "tls", backendTLSKeys)
	if v, ok := f["sni"]; ok {
		if s, ok := p.str(v.val, "sni"); ok {
			if _, err := netip.ParseAddr(s); err == nil || !validHostname(s) {
				p.errorf(deref(v.val), "sni: %q is not a host name", s)
			} else {
				t.SNI = s
			}
		}
	}
	if v, ok := f["ca"]; ok {
		if n := deref(v.val); n != nil && n.Kind == yaml.ScalarNode && n.Value == internalCAKeyword {
			t.CAInternal = true
		} else if path, name, ok := p.path(v.val, "ca"); ok {
			p.checkCA(deref(v.val), path, name)
			t.CA = path
		}
	}
	if v, ok := f["client_certificate"]; ok {
		if _, ok := p.enum(v.val, "client_certificate", internalCAKeyword); ok {
			t.ClientInternal = true
			if f.has("client_cert") {
				p.errorf(v.key, "tls: client_certificate: internal and client_cert are mutually exclusive")
			}
		}
	}
	if v, ok := f["verify"]; ok {
		if b, ok := p.boolean(v.val, "verify"); ok {
			t.Verify = b
		}
	}
	if v, ok := f["alpn"]; ok {
		t.ALPN = p.alpn(v.val)
	}
	cv, kv := f["client_cert"], f["client_key"]
	switch {
	case cv.key != nil && kv.key == nil:
		p.errorf(cv.key, "tls: client_cert needs client_key")
	case cv.key == nil && kv.key != nil:
		p.errorf(kv.key, "tls: client_key needs client_cert")
	case cv.key != nil:
		cert, certName, ok1 := p.path(cv.val, "client_cert")
		key, keyName, ok2 := p.path(kv.val, "client_key")
		if ok1 && ok2 && p.checkKeyPair(deref(cv.val), cert, certName, key, keyName, "client_cert") {
			t.ClientCert, t.ClientKey = cert, key
		}
	}
	return t
}

func (p *parser) health(e entry, b *Backend) *Health {
	h := &Health{
		Type:     HealthTCP,
		Interval: defaultHealthInterval,
		Timeout:  b.Timeouts.Check,
		Rise:     defaultRise,
		Fall:     defaultFall,
	}
	f := p.mapping(e.val, "health", healthKeys)
	typeOK := true
	if v, ok := f["type"]; ok {
		var s string
		if s, typeOK = p.enum(v.val, "health.type", "tcp", "tls", "http"); typeOK {
			h.Type = HealthType(s)
			if h.Type == HealthTLS && b.TLS == nil {
				p.errorf(deref(v.val), "health.type: tls checks need tls on backend %s", b.Name)
			}
		}
	}
	if h.Type == HealthHTTP {
		h.Method, h.Path, h.ExpectStatus = defaultHealthMethod, defaultHealthPath, []int{defaultHealthStatus}
	} else if typeOK {
		for _, key := range []string{"method", "path", "expect_status", "host"} {
			if v, ok := f[key]; ok {
				p.errorf(v.key, "health.%s needs type: http", key)
			}
		}
	}
	if v, ok := f["method"]; ok {
		if s := p.methods([]*yaml.Node{v.val}, "health.method"); len(s) == 1 {
			h.Method = s[0]
		}
	}
	if v, ok := f["path"]; ok {
		if s, ok := p.str(v.val, "health.path"); ok {
			if problem := pathProblem(s, true); problem != "" {
				p.errorf(deref(v.val), "health.path: %q %s", s, problem)
			} else {
				h.Path = s
			}
		}
	}
	if v, ok := f["expect_status"]; ok {
		h.ExpectStatus = nil
		items := p.seq(v.val, "health.expect_status", true)
		for _, item := range items {
			if st, ok := p.integer(item, "health.expect_status", 200, 599); ok {
				h.ExpectStatus = append(h.ExpectStatus, st)
			}
		}
		if len(items) == 0 && !p.hasErrorAt(v.val) {
			p.errorf(v.key, "health.expect_status: give at least one status")
		}
	}
	if v, ok := f["host"]; ok {
		if s, ok := p.str(v.val, "health.host"); ok {
			if _, err := parseAuthority(s); err != nil {
				p.errorf(deref(v.val), "health.host: %v", err)
			} else {
				h.Host = s
			}
		}
	}
	if v, ok := f["interval"]; ok {
		h.Interval, _ = p.duration(v.val, "health.interval", false)
	}
	if v, ok := f["timeout"]; ok {
		h.Timeout, _ = p.duration(v.val, "health.timeout", false)
	}
	if v, ok := f["rise"]; ok {
		h.Rise, _ = p.integer(v.val, "health.rise", 1, math.MaxInt16)
	}
	if v, ok := f["fall"]; ok {
		h.Fall, _ = p.integer(v.val, "health.fall", 1, math.MaxInt16)
	}
	return h
}

// balance reads a balancing algorithm; header(NAME) also returns NAME.
func (p *parser) balance(n *yaml.Node) (Balance, string, bool) {
	s, ok := p.str(n, "balance")
	if !ok {
		return "", "", false
	}
	switch Balance(s) {
	case BalanceRoundRobin, BalanceLeastConn, BalanceRandom, BalanceSource, BalanceFirst, BalanceURI:
		return Balance(s), "", true
	case BalanceHeader:
		p.errorf(deref(n), "balance: header needs a field name, as in header(X-User)")
		return "", "", false
	}
	if arg, ok := strings.CutPrefix(s, "hdr("); ok {
		p.errorf(deref(n), "balance: unknown value %q (did you mean \"header(%s\"?)", s, arg)
		return "", "", false
	}
	arg, ok := strings.CutPrefix(s, "header(")
	if !ok {
		p.errorf(deref(n), "balance: unknown value %q; valid values: %s", s, balanceValues)
		return "", "", false
	}
	name, ok := strings.CutSuffix(arg, ")")
	if !ok {
		p.errorf(deref(n), "balance: %q is missing its closing ')'", s)
		return "", "", false
	}
	if !validToken(name) {
		p.errorf(deref(n), "balance: %q is not a valid header field name; use letters, digits and !#$%%&'*+-.^_`|~", name)
		return "", "", false
	}
	return BalanceHeader, name, true
}

func (p *parser) cookie(e entry) *Cookie {
	c := &Cookie{Insert: true}
	f := p.mapping(e.val, "cookie", cookieKeys)
	if f == nil {
		return c
	}
	if v, ok := f["name"]; ok {
		if s, ok := p.str(v.val, "cookie.name"); ok {
			if validToken(s) {
				c.Name = s
			} else {
				p.errorf(deref(v.val), "cookie.name: %q is not a valid cookie name; use letters, digits and !#$%%&'*+-.^_`|~", s)
			}
		}
	} else {
		p.errorf(e.key, "cookie: name is required, as in {name: SRV}")
	}
	if v, ok := f["insert"]; ok {
		if b, ok := p.boolean(v.val, "cookie.insert"); ok {
			c.Insert = b
		}
	}
	return c
}

// balanceName is how a message names the backend's algorithm.
func balanceName(b *Backend) string {
	if b.Balance == BalanceHeader {
		return fmt.Sprintf("header(%s)", b.HashHeader)
	}
	return string(b.Balance)
}
