package config

import (
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v4"
)

var (
	topKeys      = []string{"global", "defaults", "frontends", "backends"}
	globalKeys   = []string{"max_connections", "data_dir", "buffer_size", "drain_timeout", "log", "acme"}
	logKeys      = []string{"format", "level", "output"}
	defaultsKeys = []string{"timeouts", "retries", "maxconn", "http_limits"}
	timeoutKeys  = []string{"connect", "client", "server", "tunnel", "queue", "handshake", "check", "http_request", "keep_alive"}
)

// Built-in defaults, used where the file is silent.
const (
	defaultMaxConnections = 20000
	defaultDataDir        = "./strata-data"
	defaultBufferSize     = 16 << 10
	defaultDrainTimeout   = 30 * time.Second
	defaultRetries        = 3
)

var defaultTimeouts = Timeouts{
	Connect:     5 * time.Second,
	Client:      60 * time.Second,
	Server:      60 * time.Second,
	Queue:       5 * time.Second,
	Handshake:   10 * time.Second,
	Check:       2 * time.Second,
	HTTPRequest: 10 * time.Second,
	KeepAlive:   60 * time.Second,
}

// config reads the whole document. Defaults are read before frontends and
// backends whatever the order in the file, because those inherit from them.
func (p *parser) config(root *yaml.Node) *Config {
	top := p.mapping(root, "configuration", topKeys)
	if top == nil {
		return nil
	}
	cfg := &Config{File: p.file, Dir: p.dir, backends: map[string]*Backend{}}
	cfg.Global = p.global(top.val("global"))
	cfg.Defaults = p.defaults(top.val("defaults"), &cfg.Global)

	backends, _ := p.namedEntries(top, "backends")
	for _, e := range backends {
		b := p.backend(e, &cfg.Defaults)
		cfg.Backends = append(cfg.Backends, b)
		cfg.backends[b.Name] = b
	}
	frontends, written := p.namedEntries(top, "frontends")
	autoHTTPS := declaresAuto(frontends)
	for _, e := range frontends {
		cfg.Frontends = append(cfg.Frontends, p.frontend(e, cfg, autoHTTPS))
	}
	if written == 0 {
		at := root
		if e, ok := top["frontends"]; ok {
			at = e.key
		}
		p.errorf(at, "no frontends: define at least one under frontends")
	}
	slices.SortFunc(cfg.Frontends, func(a, b *Frontend) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(cfg.Backends, func(a, b *Backend) int { return strings.Compare(a.Name, b.Name) })
	p.checkListeners(cfg.Frontends)
	return cfg
}

// namedEntries returns the entries of the mapping under key (frontends or
// backends), checking each name, and how many were written, valid or not.
func (p *parser) namedEntries(top fields, key string) ([]entry, int) {
	m := p.mapping(top.val(key), key, nil)
	out := make([]entry, 0, len(m))
	for name, e := range m {
		if !validName(name) {
			p.errorf(e.key, "%s: invalid name %q; use letters, digits, '_', '.' and '-'", key, name)
			continue
		}
		out = append(out, e)
	}
	sortEntries(out)
	return out, len(m)
}

// sortEntries puts entries in file order: map order is random, and errors,
// listener overlap reports and ordered values such as header rules must be
// deterministic.
func sortEntries(es []entry) {
	slices.SortFunc(es, func(a, b entry) int {
		if a.key.Line != b.key.Line {
			return a.key.Line - b.key.Line
		}
		return a.key.Column - b.key.Column
	})
}

func (p *parser) global(n *yaml.Node) Global {
	g := Global{
		MaxConnections: defaultMaxConnections,
		DataDir:        p.resolve(defaultDataDir),
		BufferSize:     defaultBufferSize,
		DrainTimeout:   defaultDrainTimeout,
		Log:            Log{Format: LogJSON, Level: slog.LevelInfo, Output: "stderr"},
		ACME:           defaultACME(),
	}
	f := p.mapping(n, "global", globalKeys)
	if v, ok := f["max_connections"]; ok {
		if i, ok := p.integer(v.val, "max_connections", 0, maxInt); ok {
			g.MaxConnections = i
		}
	}
	if v, ok := f["data_dir"]; ok {
		if s, _, ok := p.path(v.val, "data_dir"); ok {
			g.DataDir = s
		}
	}
	if v, ok := f["buffer_size"]; ok {
		if s, ok := p.size(v.val, "buffer_size", 1<<10, 1<<20); ok {
			g.BufferSize = s
		}
	}
	if v, ok := f["drain_timeout"]; ok {
		if d, ok := p.duration(v.val, "drain_timeout", false); ok {
			g.DrainTimeout = d
		}
	}
	if v, ok := f["acme"]; ok {
		g.ACME = p.acme(v)
	}
	if v, ok := f["log"]; ok {
		l := p.mapping(v.val, "log", logKeys)
		if v, ok := l["format"]; ok {
			if s, ok := p.enum(v.val, "log.format", "json", "text"); ok {
				g.Log.Format = LogFormat(s)
			}
		}
		if v, ok := l["level"]; ok {
			if s, ok := p.enum(v.val, "log.level", "debug", "info", "warn", "error"); ok {
				_ = g.Log.Level.UnmarshalText([]byte(s))
			}
		}
		if v, ok := l["output"]; ok {
			if s, ok := p.str(v.val, "log.output"); ok {
				if s != "stderr" && s != "stdout" {
					s = p.resolve(s)
				}
				g.Log.Output = s
			}
		}
	}
	return g
}

func (p *parser) defaults(n *yaml.Node, g *Global) Defaults {
	d := Defaults{Timeouts: defaultTimeouts, Retries: defaultRetries, HTTPLimits: defaultHTTPLimits(g)}
	f := p.mapping(n, "defaults", defaultsKeys)
	d.HTTPLimits = p.httpLimits(f.val("http_limits"), d.HTTPLimits, g)
	d.Timeouts = p.timeouts(f.val("timeouts"), d.Timeouts)
	if v, ok := f["retries"]; ok {
		if i, ok := p.integer(v.val, "retries", 0, math.MaxInt16); ok {
			d.Retries = i
		}
	}
	if v, ok := f["maxconn"]; ok {
		if i, ok := p.integer(v.val, "maxconn", 0, maxInt); ok {
			d.MaxConn = i
		}
	}
	return d
}

// timeouts overrides the keys set in n on a copy of base.
func (p *parser) timeouts(n *yaml.Node, base Timeouts) Timeouts {
	t := base
	f := p.mapping(n, "timeouts", timeoutKeys)
	set := func(key string, dst *time.Duration, allowZero bool) {
		if v, ok := f[key]; ok {
			if d, ok := p.duration(v.val, "timeouts."+key, allowZero); ok {
				*dst = d
			}
		}
	}
	set("connect", &t.Connect, false)
	set("client", &t.Client, false)
	set("server", &t.Server, false)
	set("tunnel", &t.Tunnel, true)
	set("queue", &t.Queue, false)
	set("handshake", &t.Handshake, false)
	set("check", &t.Check, false)
	set("http_request", &t.HTTPRequest, false)
	set("keep_alive", &t.KeepAlive, false)
	return t
}
