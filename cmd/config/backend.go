package config

import (
	"math"
	"net/netip"
	"time"

	"go.yaml.in/yaml/v4"
)

var (
	backendKeys    = []string{"balance", "servers", "tls", "health", "passive", "retries", "queue", "timeouts"}
	serverKeys     = []string{"address", "name", "weight", "maxconn", "backup", "send_proxy"}
	backendTLSKeys = []string{"sni", "ca", "verify", "client_cert", "client_key", "alpn"}
	healthKeys     = []string{"type", "interval", "timeout", "rise", "fall"}
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
)

func (p *parser) backend(e entry, d *Defaults) *Backend {
	b := &Backend{
		Name:     e.key.Value,
		Pos:      pos(e.key),
		Balance:  BalanceRoundRobin,
		Retries:  d.Retries,
		Timeouts: d.Timeouts,
	}
	f := p.mapping(e.val, "backend "+b.Name, backendKeys)
	if f == nil {
		return b
	}
	if v, ok := f["balance"]; ok {
		if s, ok := p.enum(v.val, "balance", "roundrobin", "leastconn", "random", "source", "first"); ok {
			b.Balance = Balance(s)
		}
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
		if path, name, ok := p.path(v.val, "ca"); ok {
			p.checkCA(deref(v.val), path, name)
			t.CA = path
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
	if v, ok := f["type"]; ok {
		if s, ok := p.enum(v.val, "health.type", "tcp", "tls"); ok {
			h.Type = HealthType(s)
			if h.Type == HealthTLS && b.TLS == nil {
				p.errorf(deref(v.val), "health.type: tls checks need tls on backend %s", b.Name)
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
