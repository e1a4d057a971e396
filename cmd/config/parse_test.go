package config

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const fullConfig = `global:
  max_connections: 1000
  data_dir: state
  buffer_size: 32KiB
  drain_timeout: 10s
  log:
    format: text
    level: debug
    output: stdout
defaults:
  timeouts:
    connect: 3s
    client: 45s
    tunnel: 1h
  retries: 2
  maxconn: 500
frontends:
  web:
    bind: ["127.0.0.1:8443", "[::1]:8443", ":9000-9003"]
    mode: tcp
    max_connections: 100
    proxy_protocol: true
    tls:
      certificates:
        - { cert: site.pem, key: site.key }
        - cert: other.pem
          key: other.key
      min_version: "1.3"
      alpn: [h2, http/1.1]
      client_auth:
        ca: ca.pem
        mode: verify_if_given
    l4:
      allow: [10.0.0.0/8, "::1/128", 192.168.1.7]
      deny: 192.0.2.0/24
      rate: { connections: 100, per: 10s }
      max_per_source: 50
    routes:
      - sni: [A.example.com, "*.example.com"]
        backend: app
      - dst_port: [9001, 9002]
        backend: other
    default_backend: app
    timeouts: { client: 30s, handshake: 5s }
  edge:
    bind: localhost:7000
    mode: tcp
    passthrough: true
    routes:
      - sni: db.example.com
        backend: other
    default_backend: other
backends:
  app:
    balance: leastconn
    servers:
      - address: 127.0.0.1:9000
        name: s1
        weight: 10
        maxconn: 100
      - address: api.internal:9001
        backup: true
        send_proxy: true
    tls:
      ca: ca.pem
      client_cert: client.pem
      client_key: client.key
      alpn: [http/1.1]
    health:
      type: tls
      interval: 5s
      rise: 3
    passive:
      failures: 5
      eject: 1m
    retries: 1
    queue: { max: 10 }
    timeouts: { connect: 2s }
  other:
    servers:
      - address: "[::1]:9100"
    tls:
      sni: other.internal
      verify: false
`

// parseOK parses src as dir/strata.yaml and fails the test on any error.
func parseOK(t *testing.T, dir, src string) *Config {
	t.Helper()
	cfg, err := Parse(filepath.Join(dir, "strata.yaml"), []byte(src))
	if err != nil {
		t.Fatalf("Parse: unexpected error:\n%v", err)
	}
	return cfg
}

func TestParseFull(t *testing.T) {
	dir := testFiles(t)
	cfg := parseOK(t, dir, fullConfig)

	wantGlobal := Global{
		MaxConnections: 1000,
		DataDir:        filepath.Join(dir, "state"),
		BufferSize:     32 << 10,
		DrainTimeout:   10 * time.Second,
		Log:            Log{Format: LogText, Level: slog.LevelDebug, Output: "stdout"},
		ACME:           defaultACME(),
	}
	if !reflect.DeepEqual(cfg.Global, wantGlobal) {
		t.Errorf("Global = %+v, want %+v", cfg.Global, wantGlobal)
	}
	wantDefaults := Defaults{
		Timeouts: Timeouts{Connect: 3 * time.Second, Client: 45 * time.Second, Server: 60 * time.Second,
			Tunnel: time.Hour, Queue: 5 * time.Second, Handshake: 10 * time.Second, Check: 2 * time.Second,
			HTTPRequest: 10 * time.Second, KeepAlive: time.Minute},
		Retries:    2,
		MaxConn:    500,
		HTTPLimits: HTTPLimits{MaxHeaderBytes: 16 << 10, MaxHeaderCount: 101, MaxURIBytes: 8 << 10},
	}
	if !reflect.DeepEqual(cfg.Defaults, wantDefaults) {
		t.Errorf("Defaults = %+v, want %+v", cfg.Defaults, wantDefaults)
	}

	if len(cfg.Frontends) != 2 || cfg.Frontends[0].Name != "edge" || cfg.Frontends[1].Name != "web" {
		t.Fatalf("frontends not sorted by name: %v", cfg.Frontends)
	}
	web := cfg.Frontends[1]
	if web.Pos != (Pos{18, 3}) {
		t.Errorf("web.Pos = %v, want 18:3", web.Pos)
	}
	var binds []string
	for _, a := range web.Bind {
		binds = append(binds, a.String()+"@"+a.Pos.String())
	}
	wantBinds := "127.0.0.1:8443@19:12 [::1]:8443@19:30 :9000@19:44 :9001@19:44 :9002@19:44 :9003@19:44"
	if got := strings.Join(binds, " "); got != wantBinds {
		t.Errorf("web binds = %s\nwant %s", got, wantBinds)
	}
	if web.Mode != ModeTCP || web.MaxConnections != 100 || !web.ProxyProtocol || web.Passthrough {
		t.Errorf("web scalars wrong: %+v", web)
	}
	wantTLS := &FrontendTLS{
		Pos: Pos{23, 5},
		Certificates: []Certificate{
			{Pos: Pos{25, 11}, Cert: filepath.Join(dir, "site.pem"), Key: filepath.Join(dir, "site.key")},
			{Pos: Pos{26, 11}, Cert: filepath.Join(dir, "other.pem"), Key: filepath.Join(dir, "other.key")},
		},
		MinVersion: tls.VersionTLS13,
		ALPN:       []string{"h2", "http/1.1"},
		ClientAuth: &ClientAuth{CA: filepath.Join(dir, "ca.pem"), Mode: tls.VerifyClientCertIfGiven},
	}
	if !reflect.DeepEqual(web.TLS, wantTLS) {
		t.Errorf("web.TLS = %+v, want %+v", web.TLS, wantTLS)
	}
	wantL4 := L4{
		Allow:        []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("192.168.1.7/32")},
		Deny:         []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
		Rate:         &Rate{Connections: 100, Per: 10 * time.Second},
		MaxPerSource: 50,
	}
	if !reflect.DeepEqual(web.L4, wantL4) {
		t.Errorf("web.L4 = %+v, want %+v", web.L4, wantL4)
	}
	wantRoutes := []Route{
		{Pos: Pos{39, 9}, SNI: []string{"a.example.com", "*.example.com"}, Backend: "app"},
		{Pos: Pos{41, 9}, DstPort: []int{9001, 9002}, Backend: "other"},
	}
	if !reflect.DeepEqual(web.Routes, wantRoutes) {
		t.Errorf("web.Routes = %+v, want %+v", web.Routes, wantRoutes)
	}
	wantWebTimeouts := wantDefaults.Timeouts
	wantWebTimeouts.Client, wantWebTimeouts.Handshake = 30*time.Second, 5*time.Second
	if web.Timeouts != wantWebTimeouts || web.DefaultBackend != "app" {
		t.Errorf("web.Timeouts = %+v default_backend %q", web.Timeouts, web.DefaultBackend)
	}
	edge := cfg.Frontends[0]
	if !edge.Passthrough || edge.TLS != nil || len(edge.Bind) != 1 || edge.Bind[0].String() != "localhost:7000" {
		t.Errorf("edge = %+v", edge)
	}

	app := cfg.Backend("app")
	if app == nil || cfg.Backend("nope") != nil || len(cfg.Backends) != 2 || cfg.Backends[0] != app {
		t.Fatalf("backend lookup wrong: %v", cfg.Backends)
	}
	wantServers := []Server{
		{Pos: Pos{57, 9}, Name: "s1", Address: "127.0.0.1:9000", Host: "127.0.0.1", Port: 9000, Weight: 10, MaxConn: 100},
		{Pos: Pos{61, 9}, Name: "api.internal:9001", Address: "api.internal:9001", Host: "api.internal", Port: 9001,
			Weight: 1, MaxConn: 500, Backup: true, SendProxy: true, ServerName: "api.internal"},
	}
	if !reflect.DeepEqual(app.Servers, wantServers) {
		t.Errorf("app.Servers = %+v\nwant %+v", app.Servers, wantServers)
	}
	wantBTLS := &BackendTLS{Pos: Pos{64, 5}, CA: filepath.Join(dir, "ca.pem"), Verify: true,
		ClientCert: filepath.Join(dir, "client.pem"), ClientKey: filepath.Join(dir, "client.key"), ALPN: []string{"http/1.1"}}
	if !reflect.DeepEqual(app.TLS, wantBTLS) {
		t.Errorf("app.TLS = %+v, want %+v", app.TLS, wantBTLS)
	}
	wantHealth := &Health{Type: HealthTLS, Interval: 5 * time.Second, Timeout: 2 * time.Second, Rise: 3, Fall: 3}
	if !reflect.DeepEqual(app.Health, wantHealth) {
		t.Errorf("app.Health = %+v, want %+v", app.Health, wantHealth)
	}
	if *app.Passive != (Passive{Failures: 5, Eject: time.Minute}) || app.Retries != 1 ||
		app.Queue != (Queue{Max: 10, Timeout: 5 * time.Second}) || app.Balance != BalanceLeastConn {
		t.Errorf("app = %+v", app)
	}
	wantAppTimeouts := wantDefaults.Timeouts
	wantAppTimeouts.Connect = 2 * time.Second
	if app.Timeouts != wantAppTimeouts {
		t.Errorf("app.Timeouts = %+v, want %+v", app.Timeouts, wantAppTimeouts)
	}
	other := cfg.Backend("other")
	if other.Balance != BalanceRoundRobin || other.Retries != 2 || other.Health != nil || other.Passive != nil ||
		other.TLS.Verify || other.Servers[0].ServerName != "other.internal" || other.Servers[0].Host != "::1" {
		t.Errorf("other = %+v / %+v / %+v", other, other.TLS, other.Servers)
	}
}

func TestDefaults(t *testing.T) {
	dir := t.TempDir()
	cfg := parseOK(t, dir, `frontends:
  f:
    bind: ":80"
    default_backend: b
backends:
  b:
    servers: [{address: "10.0.0.1:80"}]
`)
	g := cfg.Global
	if g.MaxConnections != 20000 || g.DataDir != filepath.Join(dir, "strata-data") || g.BufferSize != 16<<10 ||
		g.DrainTimeout != 30*time.Second || g.Log != (Log{Format: LogJSON, Level: slog.LevelInfo, Output: "stderr"}) {
		t.Errorf("Global defaults = %+v", g)
	}
	want := Timeouts{Connect: 5 * time.Second, Client: time.Minute, Server: time.Minute, Queue: 5 * time.Second,
		Handshake: 10 * time.Second, Check: 2 * time.Second, HTTPRequest: 10 * time.Second, KeepAlive: time.Minute}
	wantLimits := HTTPLimits{MaxHeaderBytes: 16 << 10, MaxHeaderCount: 101, MaxURIBytes: 8 << 10, MaxBodyBytes: 0}
	if cfg.Defaults != (Defaults{Timeouts: want, Retries: 3, HTTPLimits: wantLimits}) {
		t.Errorf("Defaults = %+v", cfg.Defaults)
	}
	f := cfg.Frontends[0]
	if f.Mode != ModeHTTP || f.Timeouts != want || f.TLS != nil || f.L4.Rate != nil || f.HTTPLimits != wantLimits {
		t.Errorf("frontend defaults = %+v", f)
	}
	if f.Forwarded.XForwarded != true || f.Forwarded.Forwarded || f.Forwarded.Trusted != nil ||
		f.RequestID != (RequestID{Header: "X-Request-ID", Generate: true}) ||
		f.HTTPRules != nil || !reflect.DeepEqual(f.Headers, Headers{}) || f.ErrorFiles != nil {
		t.Errorf("frontend HTTP defaults = %+v", f)
	}
	b := cfg.Backends[0]
	if b.Balance != BalanceRoundRobin || b.Retries != 3 || b.Timeouts != want || b.Queue != (Queue{Timeout: 5 * time.Second}) {
		t.Errorf("backend defaults = %+v", b)
	}
	if s := b.Servers[0]; s.Name != "10.0.0.1:80" || s.Weight != 1 || s.MaxConn != 0 || s.ServerName != "" {
		t.Errorf("server defaults = %+v", s)
	}
}

// TestInheritance checks that each level overrides only the keys it sets.
func TestInheritance(t *testing.T) {
	cfg := parseOK(t, t.TempDir(), `defaults:
  timeouts: {connect: 1s, queue: 7s, check: 3s}
  retries: 5
  maxconn: 42
frontends:
  f:
    bind: ":80"
    default_backend: b
    timeouts: {client: 9s}
backends:
  b:
    timeouts: {server: 8s}
    health: {}
    passive: {}
    servers:
      - address: a.internal:80
      - address: b.internal:80
        maxconn: 0
  c:
    retries: 0
    queue: {timeout: 11s}
    servers: [{address: "10.0.0.1:80", weight: 0}]
`)
	f := cfg.Frontends[0]
	if f.Timeouts.Connect != time.Second || f.Timeouts.Client != 9*time.Second || f.Timeouts.Server != time.Minute {
		t.Errorf("frontend timeouts = %+v", f.Timeouts)
	}
	b := cfg.Backend("b")
	if b.Timeouts.Connect != time.Second || b.Timeouts.Server != 8*time.Second || b.Timeouts.Client != time.Minute ||
		b.Retries != 5 || b.Queue.Timeout != 7*time.Second {
		t.Errorf("backend b = %+v", b)
	}
	if !reflect.DeepEqual(*b.Health, Health{Type: HealthTCP, Interval: 2 * time.Second, Timeout: 3 * time.Second, Rise: 2, Fall: 3}) {
		t.Errorf("health defaults = %+v", b.Health)
	}
	if *b.Passive != (Passive{Failures: 3, Eject: 30 * time.Second}) {
		t.Errorf("passive defaults = %+v", b.Passive)
	}
	if b.Servers[0].MaxConn != 42 || b.Servers[1].MaxConn != 0 {
		t.Errorf("server maxconn = %d, %d; want 42, 0", b.Servers[0].MaxConn, b.Servers[1].MaxConn)
	}
	c := cfg.Backend("c")
	if c.Retries != 0 || c.Queue.Timeout != 11*time.Second || c.Timeouts.Queue != 11*time.Second || c.Servers[0].Weight != 0 {
		t.Errorf("backend c = %+v", c)
	}
}

func TestBindExpansion(t *testing.T) {
	tests := []struct {
		name string
		bind string
		want string
	}{
		{"string", `"127.0.0.1:80"`, "127.0.0.1:80"},
		{"list", `["127.0.0.1:80", "127.0.0.2:80"]`, "127.0.0.1:80 127.0.0.2:80"},
		{"empty host", `":80"`, ":80"},
		{"range", `":8000-8003"`, ":8000 :8001 :8002 :8003"},
		{"one-port range", `":8000-8000"`, ":8000"},
		{"ipv6", `"[::1]:80"`, "[::1]:80"},
		{"ipv6 range", `"[2001:db8::1]:80-81"`, "[2001:db8::1]:80 [2001:db8::1]:81"},
		{"ipv6 any", `"[::]:80"`, "[::]:80"},
		{"hostname", `"localhost:80"`, "localhost:80"},
		{"block list", "\n      - 127.0.0.1:80\n      - \"[::1]:81\"", "127.0.0.1:80 [::1]:81"},
		{"largest range", `":1-1024"`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "frontends:\n  f:\n    bind: " + tt.bind + "\n    default_backend: b\nbackends:\n  b:\n    servers: [{address: \"10.0.0.1:80\"}]\n"
			cfg := parseOK(t, t.TempDir(), src)
			var got []string
			for _, a := range cfg.Frontends[0].Bind {
				if a.Network != "tcp" {
					t.Errorf("network = %q", a.Network)
				}
				got = append(got, a.String())
			}
			if tt.want == "" {
				if len(got) != 1024 {
					t.Errorf("got %d listeners, want 1024", len(got))
				}
				return
			}
			if strings.Join(got, " ") != tt.want {
				t.Errorf("got %q, want %q", strings.Join(got, " "), tt.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := testFiles(t)
	path := filepath.Join(dir, "strata.yaml")
	writeFile(t, dir, "strata.yaml", []byte(fullConfig))
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.File != path || cfg.Dir != dir {
		t.Errorf("File, Dir = %q, %q", cfg.File, cfg.Dir)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want ErrNotExist", err)
	}
}

func TestParseDeterministic(t *testing.T) {
	dir := testFiles(t)
	a := parseOK(t, dir, fullConfig)
	b := parseOK(t, dir, fullConfig)
	if !reflect.DeepEqual(a, b) {
		t.Error("two parses of the same file differ")
	}
}

func TestParseSizes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  string
	}{
		{"512", 512, ""},
		{"512B", 512, ""},
		{"4KB", 4000, ""},
		{"16KiB", 16384, ""},
		{"1MiB", 1 << 20, ""},
		{"2mb", 2000000, ""},
		{"1GiB", 1 << 30, ""},
		{"KiB", 0, "invalid size"},
		{"-1KiB", 0, "invalid size"},
		{"1.5KiB", 0, "invalid size"},
		{"4XB", 0, "invalid size"},
		{"99999999999999999999", 0, "too large"},
		{"9999999999999GiB", 0, "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseSize(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("parseSize(%q) = %d, %v; want error containing %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("parseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}
