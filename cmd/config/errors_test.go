package config

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// okBackend is a valid backends section appended to frontend cases.
const okBackend = "backends:\n  b:\n    servers: [{address: \"10.0.0.1:80\"}]\n"

// fe wraps frontend lines (indented four spaces, starting at line 3) into
// a configuration with the valid backend b.
func fe(lines ...string) string {
	return "frontends:\n  f:\n" + strings.Join(lines, "\n") + "\n" + okBackend
}

// be wraps backend lines (indented four spaces, starting at line 5) into a
// configuration with a valid frontend f on :80 routing to b.
func be(lines ...string) string {
	return "frontends:\n  f: {bind: \":80\", default_backend: b}\nbackends:\n  b:\n" + strings.Join(lines, "\n") + "\n"
}

func TestParseErrors(t *testing.T) {
	tests := []errorCase{
		// Document level.
		{"empty file", "", 1, 1, "empty configuration"},
		{"only a comment", "# nothing\n", 1, 1, "empty configuration"},
		{"null document", "---\n", 2, 1, "empty configuration"},
		{"syntax error", "frontends: [\n", 2, 1, "YAML syntax"},
		{"tab indentation", "global:\n\tmax_connections: 1\n", 2, 1, "YAML syntax"},
		{"two documents", "global: {}\n---\nglobal: {}\n", 2, 1, "only one YAML document"},
		{"root is a list", "- a\n", 1, 1, "configuration: expected a mapping, got a list"},
		{"root is a scalar", "hello\n", 1, 1, "expected a mapping"},
		{"unknown top key, close", "frontend: {}\n" + okBackend, 1, 1, `unknown key "frontend" (did you mean "frontends"?)`},
		{"unknown top key, far", "listeners: {}\n", 1, 1, "valid keys: global, defaults, frontends, backends"},
		{"no frontends", okBackend, 1, 1, "no frontends"},
		{"empty frontends", "frontends: {}\n" + okBackend, 1, 1, "no frontends"},
		{"merge key", "global:\n  <<: {max_connections: 1}\n", 2, 3, "merge keys (<<) are not supported"},
		{"recursive alias", "global: &g\n  log: *g\n", 2, 8, "recursive alias"},
		{"unsupported tag", "global:\n  data_dir: !env DIR\n", 2, 13, "unsupported YAML tag !env"},
		{"non-scalar key", "global:\n  ? [a]\n  : 1\n", 2, 5, "keys must be plain strings"},

		// global.
		{"global wrong type", "global: 5\n", 1, 9, "global: expected a mapping, got 5"},
		{"global unknown key", "global:\n  max_connection: 1\n", 2, 3, `did you mean "max_connections"?`},
		{"duplicate key", "global:\n  max_connections: 1\n  max_connections: 2\n", 3, 3, `duplicate key "max_connections" (first at 2:3)`},
		{"integer is a word", "global:\n  max_connections: abc\n", 2, 20, `max_connections: expected an integer, got "abc"`},
		{"integer is a float", "global:\n  max_connections: 1.5\n", 2, 20, "expected an integer, got 1.5"},
		{"integer is quoted", "global:\n  max_connections: \"5\"\n", 2, 20, "expected an integer"},
		{"negative integer", "global:\n  max_connections: -1\n", 2, 20, "must not be negative"},
		{"missing value", "global:\n  max_connections:\n", 2, 19, "expected an integer, got no value"},
		{"null value", "global:\n  max_connections: ~\n", 2, 20, "expected an integer, got null"},
		{"buffer too small", "global:\n  buffer_size: 512\n", 2, 16, "buffer_size: 512 out of range 1KiB-1MiB"},
		{"buffer too big", "global:\n  buffer_size: 2MiB\n", 2, 16, "out of range 1KiB-1MiB"},
		{"buffer bad unit", "global:\n  buffer_size: 16KX\n", 2, 16, `invalid size "16KX"`},
		{"duration without unit", "global:\n  drain_timeout: 5\n", 2, 18, `duration "5" has no unit`},
		{"duration zero", "global:\n  drain_timeout: 0s\n", 2, 18, "must be greater than 0"},
		{"duration negative", "global:\n  drain_timeout: -1s\n", 2, 18, "must be greater than 0"},
		{"duration garbage", "global:\n  drain_timeout: soon\n", 2, 18, `invalid duration "soon"`},
		{"log format", "global:\n  log: {format: xml}\n", 2, 17, `log.format: unknown value "xml"; valid values: json, text`},
		{"log level", "global:\n  log:\n    level: trace\n", 3, 12, "valid values: debug, info, warn, error"},
		{"log unknown key", "global:\n  log:\n    file: x\n", 3, 5, "valid keys: format, level, output"},
		{"empty data_dir", "global:\n  data_dir: \"\"\n", 2, 13, "must not be empty"},

		// defaults.
		{"defaults timeout unknown", "defaults:\n  timeouts:\n    idle: 5s\n", 3, 5, `unknown key "idle"`},
		{"defaults timeout zero", "defaults:\n  timeouts: {connect: 0s}\n", 2, 23, "timeouts.connect: duration must be greater than 0"},
		{"defaults retries negative", "defaults:\n  retries: -3\n", 2, 12, "retries: must not be negative"},
		{"defaults maxconn word", "defaults:\n  maxconn: many\n", 2, 12, "expected an integer"},

		// frontends: names, binds and listeners.
		{"bad frontend name", "frontends:\n  \"a b\": {bind: \":80\", default_backend: b}\n" + okBackend, 2, 3, `invalid name "a b"`},
		{"duplicate frontend", "frontends:\n  f: {bind: \":80\", default_backend: b}\n  f: {bind: \":81\", default_backend: b}\n" + okBackend, 3, 3, `duplicate key "f"`},
		{"frontend not a mapping", "frontends:\n  f: [1]\n" + okBackend, 2, 6, "frontend f: expected a mapping, got a list"},
		{"frontend unknown key", fe("    bnd: \":80\"", "    default_backend: b"), 3, 5, `unknown key "bnd" (did you mean "bind"?)`},
		{"no bind", fe("    default_backend: b"), 2, 3, "frontend f: no bind address"},
		{"port out of range", fe("    bind: \"127.0.0.1:70000\"", "    default_backend: b"), 3, 11, `bind "127.0.0.1:70000": port 70000 out of range 1-65535`},
		{"port zero", fe("    bind: \":0\"", "    default_backend: b"), 3, 11, "port 0 out of range 1-65535"},
		{"port is a word", fe("    bind: \"localhost:abc\"", "    default_backend: b"), 3, 11, `invalid port "abc"`},
		{"port missing", fe("    bind: [\"127.0.0.1:80\", \"127.0.0.2\"]", "    default_backend: b"), 3, 28, "missing port"},
		{"range reversed", fe("    bind: \":9003-9000\"", "    default_backend: b"), 3, 11, "port range 9003-9000 is reversed"},
		{"range too big", fe("    bind: \":1000-3000\"", "    default_backend: b"), 3, 11, "2001 ports, more than 1024"},
		{"range open", fe("    bind: \":1000-\"", "    default_backend: b"), 3, 11, "missing port"},
		{"ipv6 without brackets", fe("    bind: \"::1:80\"", "    default_backend: b"), 3, 11, "must be in brackets"},
		{"ipv6 bad", fe("    bind: \"[zz::1]:80\"", "    default_backend: b"), 3, 11, "invalid IPv6 address"},
		{"bad host", fe("    bind: \"bad_host!:80\"", "    default_backend: b"), 3, 11, `invalid host "bad_host!"`},
		{"bind is a mapping", fe("    bind: {a: 1}", "    default_backend: b"), 3, 11, "bind: expected a string or a list, got a mapping"},
		{"bind item is a list", fe("    bind: [[\":80\"]]", "    default_backend: b"), 3, 12, "bind: expected a string, got a list"},
		{"overlap same address", "frontends:\n  f: {bind: \"127.0.0.1:80\", default_backend: b}\n  g: {bind: [\":81\", \"127.0.0.1:80\"], default_backend: b}\n" + okBackend,
			3, 21, "listener 127.0.0.1:80 overlaps 127.0.0.1:80 bound at 2:13"},
		{"overlap wildcard after specific", "frontends:\n  f: {bind: \"127.0.0.1:80\", default_backend: b}\n  g: {bind: \"0.0.0.0:80\", default_backend: b}\n" + okBackend,
			3, 13, "listener 0.0.0.0:80 overlaps 127.0.0.1:80 bound at 2:13"},
		{"overlap specific after empty host", fe("    bind: [\":80\", \"[::1]:80\"]", "    default_backend: b"), 3, 19, "listener [::1]:80 overlaps :80 bound at 3:12"},
		{"overlap v6 any with v4", fe("    bind: [\"[::]:80\", \"10.1.1.1:80\"]", "    default_backend: b"), 3, 23, "overlaps [::]:80 bound at 3:12"},
		{"overlap in ranges", fe("    bind: [\":8000-8010\", \"127.0.0.1:8005\"]", "    default_backend: b"), 3, 26, "listener 127.0.0.1:8005 overlaps :8005"},
		{"overlap localhost", fe("    bind: [\"localhost:80\", \"[::1]:80\"]", "    default_backend: b"), 3, 28, "overlaps localhost:80"},
		{"overlap mapped v4", fe("    bind: [\"10.0.0.1:80\", \"[::ffff:10.0.0.1]:80\"]", "    default_backend: b"), 3, 27, "invalid IPv6 address"},

		// frontends: modes, tls, routing.
		{"unknown mode", fe("    bind: \":80\"", "    mode: udp", "    default_backend: b"), 4, 11, `mode: unknown value "udp"; valid values: tcp, http`},
		{"proxy_protocol not bool", fe("    bind: \":80\"", "    proxy_protocol: 1", "    default_backend: b"), 4, 21, "proxy_protocol: expected true or false, got 1"},
		{"frontend max_connections negative", fe("    bind: \":80\"", "    max_connections: -5", "    default_backend: b"), 4, 22, "must not be negative"},
		{"no destination", fe("    bind: \":80\""), 2, 3, "nowhere to send connections"},
		{"unknown default backend", fe("    bind: \":80\"", "    default_backend: zzz"), 4, 22, `unknown backend "zzz"; backends are: b`},
		{"unknown default backend, close", fe("    bind: \":80\"", "    default_backend: bb"), 4, 22, `unknown backend "bb" (did you mean "b"?)`},
		{"no backends at all", "frontends:\n  f: {bind: \":80\", default_backend: b}\n", 2, 37, "no backends are defined"},
		{"route to unknown backend", fe("    bind: \":80\"", "    routes:", "      - dst_port: 80", "        backend: nope"), 6, 18, `unknown backend "nope"`},
		{"route without backend", fe("    bind: \":80\"", "    routes:", "      - dst_port: 80"), 5, 9, "route: backend is required (or redirect)"},
		{"route matching nothing", fe("    bind: \":80\"", "    routes:", "      - backend: b"), 5, 9, "route: matches nothing"},
		{"route unknown key", fe("    bind: \":80\"", "    routes:", "      - uri: /a", "        backend: b"), 5, 9, "valid keys: sni, dst_port, host, path_prefix, header, backend, redirect"},
		{"routes not a list", fe("    bind: \":80\"", "    routes: {backend: b}"), 4, 13, "routes: expected a list, got a mapping"},
		{"sni without tls", fe("    bind: \":80\"", "    routes:", "      - sni: a.example.com", "        backend: b"), 5, 9, "route: sni needs tls or passthrough"},
		{"bad sni pattern", fe("    bind: \":80\"", "    mode: tcp", "    passthrough: true", "    routes:", "      - sni: a.*.com", "        backend: b"), 7, 14, `invalid server name "a.*.com"`},
		{"dst_port not bound", fe("    bind: \":80\"", "    routes:", "      - dst_port: [80, 81]", "        backend: b"), 5, 24, "frontend f does not listen on port 81"},
		{"dst_port out of range", fe("    bind: \":80\"", "    routes:", "      - dst_port: 65536", "        backend: b"), 5, 19, "dst_port: 65536 out of range 1-65535"},
		{"passthrough in http mode", fe("    bind: \":80\"", "    passthrough: true", "    default_backend: b"), 4, 5, "passthrough needs mode: tcp"},
		{"tls with passthrough", fe("    bind: \":80\"", "    mode: tcp", "    tls:", "      certificates: [{cert: site.pem, key: site.key}]", "    passthrough: true", "    default_backend: b"),
			7, 5, "passthrough and tls are mutually exclusive"},
		{"tls without certificates", fe("    bind: \":80\"", "    tls: {min_version: \"1.3\"}", "    default_backend: b"), 4, 5, "tls: no certificates"},
		{"tls is a string", fe("    bind: \":80\"", "    tls: yes", "    default_backend: b"), 4, 10, "tls: expected a mapping"},
		{"certificate missing file", fe("    bind: \":80\"", "    tls:", "      certificates: [{cert: nope.pem, key: site.key}]", "    default_backend: b"),
			5, 29, "certificate nope.pem: no such file or directory"},
		{"certificate missing key file", fe("    bind: \":80\"", "    tls:", "      certificates: [{cert: site.pem, key: nope.key}]", "    default_backend: b"),
			5, 29, "certificate site.pem: key nope.key: no such file or directory"},
		{"certificate key mismatch", fe("    bind: \":80\"", "    tls:", "      certificates:", "        - cert: bad.pem", "          key: bad.key", "    default_backend: b"),
			6, 17, "certificate bad.pem: private key does not match public key"},
		{"certificate garbage", fe("    bind: \":80\"", "    tls:", "      certificates: [{cert: garbage.pem, key: site.key}]", "    default_backend: b"),
			5, 29, "certificate garbage.pem: "},
		{"certificate is a directory", fe("    bind: \":80\"", "    tls:", "      certificates: [{cert: ., key: site.key}]", "    default_backend: b"),
			5, 29, "certificate .: not a regular file"},
		{"certificate without key", fe("    bind: \":80\"", "    tls:", "      certificates: [{cert: site.pem}]", "    default_backend: b"),
			5, 22, "certificate: needs both cert and key"},
		{"min_version", fe("    bind: \":80\"", "    tls:", "      certificates: [{cert: site.pem, key: site.key}]", "      min_version: \"1.1\"", "    default_backend: b"),
			6, 20, `min_version: unknown value "1.1"; valid values: 1.2, 1.3`},
		{"client_auth without ca", fe("    bind: \":80\"", "    tls:", "      certificates: [{cert: site.pem, key: site.key}]", "      client_auth: {mode: require}", "    default_backend: b"),
			6, 7, "client_auth: ca is required"},
		{"client_auth mode", fe("    bind: \":80\"", "    tls:", "      certificates: [{cert: site.pem, key: site.key}]", "      client_auth: {ca: ca.pem, mode: optional}", "    default_backend: b"),
			6, 39, `client_auth.mode: unknown value "optional"`},
		{"client_auth ca empty", fe("    bind: \":80\"", "    tls:", "      certificates: [{cert: site.pem, key: site.key}]", "      client_auth: {ca: empty-ca.pem}", "    default_backend: b"),
			6, 25, "ca empty-ca.pem: no PEM certificates found"},
		{"alpn not a list", fe("    bind: \":80\"", "    tls:", "      certificates: [{cert: site.pem, key: site.key}]", "      alpn: h2", "    default_backend: b"),
			6, 13, "alpn: expected a list"},

		// frontends: l4.
		{"bad cidr", fe("    bind: \":80\"", "    l4:", "      allow: [10.0.0.0/33]", "    default_backend: b"), 5, 15, `allow: invalid CIDR "10.0.0.0/33"`},
		{"bad ip", fe("    bind: \":80\"", "    l4:", "      deny: [10.0.0.300]", "    default_backend: b"), 5, 14, `deny: invalid CIDR or IP address "10.0.0.300"`},
		{"rate missing per", fe("    bind: \":80\"", "    l4:", "      rate: {connections: 10}", "    default_backend: b"), 5, 7, "rate: needs both connections and per"},
		{"rate zero", fe("    bind: \":80\"", "    l4:", "      rate: {connections: 0, per: 1s}", "    default_backend: b"), 5, 27, "rate.connections: must be at least 1, got 0"},
		{"max_per_source negative", fe("    bind: \":80\"", "    l4:", "      max_per_source: -1", "    default_backend: b"), 5, 23, "must not be negative"},
		{"frontend timeout unknown", fe("    bind: \":80\"", "    timeouts: {idle: 1s}", "    default_backend: b"), 4, 16, `unknown key "idle"`},

		// backends.
		{"backend not a mapping", be("    servers"), 5, 5, "backend b: expected a mapping"},
		{"backend no servers", be("    balance: first"), 4, 3, "backend b: no servers"},
		{"backend empty servers", be("    servers: []"), 4, 3, "backend b: no servers"},
		{"unknown balance", be("    balance: weighted", "    servers: [{address: \"10.0.0.1:80\"}]"), 5, 14,
			`balance: unknown value "weighted"; valid values: roundrobin, leastconn, random, source, first`},
		{"server unknown key", be("    servers:", "      - adress: 10.0.0.1:80"), 6, 9, `unknown key "adress" (did you mean "address"?)`},
		{"server without address", be("    servers:", "      - name: x"), 6, 9, "server: address is required"},
		{"server without host", be("    servers:", "      - address: \":80\""), 6, 18, `address ":80": missing host`},
		{"server port out of range", be("    servers:", "      - address: 10.0.0.1:99999"), 6, 18, "port 99999 out of range 1-65535"},
		{"server not a mapping", be("    servers:", "      - 10.0.0.1:80"), 6, 9, "server: expected a mapping"},
		{"duplicate server name", be("    servers:", "      - {address: \"10.0.0.1:80\", name: s}", "      - {address: \"10.0.0.2:80\", name: s}"),
			7, 9, `backend b: duplicate server name "s" (first at 6:9)`},
		{"duplicate server address", be("    servers:", "      - address: 10.0.0.1:80", "      - address: 10.0.0.1:80"),
			7, 9, `duplicate server name "10.0.0.1:80"`},
		{"weight too big", be("    servers:", "      - {address: \"10.0.0.1:80\", weight: 300}"), 6, 42, "weight: 300 out of range 0-256"},
		{"weight negative", be("    servers:", "      - {address: \"10.0.0.1:80\", weight: -1}"), 6, 42, "weight: must not be negative"},
		{"server maxconn negative", be("    servers:", "      - {address: \"10.0.0.1:80\", maxconn: -1}"), 6, 43, "must not be negative"},
		{"backup not bool", be("    servers:", "      - {address: \"10.0.0.1:80\", backup: maybe}"), 6, 42, `backup: expected true or false, got "maybe"`},
		{"backend retries negative", be("    retries: -1", "    servers: [{address: \"10.0.0.1:80\"}]"), 5, 14, "retries: must not be negative"},
		{"client_cert without key", be("    servers: [{address: \"10.0.0.1:80\"}]", "    tls:", "      client_cert: client.pem"), 7, 7, "tls: client_cert needs client_key"},
		{"client_key without cert", be("    servers: [{address: \"10.0.0.1:80\"}]", "    tls:", "      client_key: client.key"), 7, 7, "tls: client_key needs client_cert"},
		{"client cert mismatch", be("    servers: [{address: \"10.0.0.1:80\"}]", "    tls:", "      client_cert: bad.pem", "      client_key: bad.key"),
			7, 20, "client_cert bad.pem: private key does not match public key"},
		{"backend ca missing", be("    servers: [{address: \"10.0.0.1:80\"}]", "    tls: {ca: missing.pem}"), 6, 15, "ca missing.pem: no such file or directory"},
		{"backend ca empty", be("    servers: [{address: \"10.0.0.1:80\"}]", "    tls: {ca: empty-ca.pem}"), 6, 15, "ca empty-ca.pem: no PEM certificates found"},
		{"backend sni is an IP", be("    servers: [{address: \"10.0.0.1:80\"}]", "    tls: {sni: 10.0.0.1}"), 6, 16, `sni: "10.0.0.1" is not a host name`},
		{"backend verify not bool", be("    servers: [{address: \"10.0.0.1:80\"}]", "    tls: {verify: no}"), 6, 19, "verify: expected true or false"},
		{"health type", be("    servers: [{address: \"10.0.0.1:80\"}]", "    health: {type: grpc}"), 6, 20, `health.type: unknown value "grpc"; valid values: tcp, tls, http`},
		{"tls health without tls", be("    servers: [{address: \"10.0.0.1:80\"}]", "    health: {type: tls}"), 6, 20, "tls checks need tls on backend b"},
		{"health rise zero", be("    servers: [{address: \"10.0.0.1:80\"}]", "    health: {rise: 0}"), 6, 20, "health.rise: must be at least 1"},
		{"health interval", be("    servers: [{address: \"10.0.0.1:80\"}]", "    health: {interval: 2}"), 6, 24, `health.interval: duration "2" has no unit`},
		{"passive failures zero", be("    servers: [{address: \"10.0.0.1:80\"}]", "    passive: {failures: 0}"), 6, 25, "passive.failures: must be at least 1"},
		{"queue max negative", be("    servers: [{address: \"10.0.0.1:80\"}]", "    queue: {max: -1}"), 6, 18, "queue.max: must not be negative"},
		{"queue timeout zero", be("    servers: [{address: \"10.0.0.1:80\"}]", "    queue: {timeout: 0s}"), 6, 22, "queue.timeout: duration must be greater than 0"},
		{"bad backend name", "frontends:\n  f: {bind: \":80\", default_backend: b}\nbackends:\n  b/c: {servers: [{address: \"10.0.0.1:80\"}]}\n", 4, 3, `invalid name "b/c"`},
	}
	dir := testFiles(t)
	checkErrorCases(t, dir, tests)
}

// errorCase is an invalid configuration and the error expected in it.
type errorCase struct {
	name      string
	src       string
	line, col int
	msg       string
}

// checkErrorCases parses each case's src in dir and wants an error at its
// line and column whose message contains its msg.
func checkErrorCases(t *testing.T, dir string, tests []errorCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := parseErrors(t, dir, tt.src)
			for _, e := range es {
				if e.Line == tt.line && e.Col == tt.col && strings.Contains(e.Msg, tt.msg) {
					return
				}
			}
			t.Errorf("no error at %d:%d containing %q; got:\n%v", tt.line, tt.col, tt.msg, es)
		})
	}
}

// parseErrors parses src, which must be invalid, and checks the invariants
// every error list holds.
func parseErrors(t *testing.T, dir, src string) Errors {
	t.Helper()
	file := filepath.Join(dir, "strata.yaml")
	cfg, err := Parse(file, []byte(src))
	if err == nil {
		t.Fatalf("Parse succeeded (%+v), want errors", cfg)
	}
	if cfg != nil {
		t.Errorf("Parse returned a config with its errors")
	}
	var es Errors
	if !errors.As(err, &es) || len(es) == 0 {
		t.Fatalf("Parse error is %T %v, want non-empty Errors", err, err)
	}
	for _, e := range es {
		if e.File != file || e.Line < 1 || e.Col < 1 || e.Msg == "" {
			t.Errorf("malformed error %#v", e)
		}
		if !strings.HasPrefix(e.Error(), file+":") {
			t.Errorf("Error() = %q, want FILE:LINE:COL: prefix", e.Error())
		}
	}
	if !slices.IsSortedFunc(es, func(a, b *Error) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Col - b.Col
	}) {
		t.Errorf("errors not sorted by position:\n%v", es)
	}
	return es
}

func TestErrorsFormat(t *testing.T) {
	es := Errors{{File: "a.yaml", Line: 3, Col: 7, Msg: "first"}, {File: "a.yaml", Line: 9, Col: 1, Msg: "second"}}
	if got, want := es.Error(), "a.yaml:3:7: first\na.yaml:9:1: second"; got != want {
		t.Errorf("Errors.Error() = %q, want %q", got, want)
	}
}

// TestAllErrorsReported checks that Parse does not stop at the first problem.
func TestAllErrorsReported(t *testing.T) {
	es := parseErrors(t, t.TempDir(), "global:\n  max_connections: -1\n  buffer_size: 1\nfrontends:\n  f: {bind: \":0\", default_backend: x}\n")
	if len(es) != 4 {
		t.Errorf("got %d errors, want 4:\n%v", len(es), es)
	}
}

// TestValidVariants are configurations close to an error that must parse.
func TestValidVariants(t *testing.T) {
	tests := []struct {
		name string
		src  string
	}{
		{"v4 any and v6 specific", fe("    bind: [\"0.0.0.0:80\", \"[::1]:80\"]", "    default_backend: b")},
		{"different ports", fe("    bind: [\":80\", \":81\", \"127.0.0.1:82-90\"]", "    default_backend: b")},
		{"different specific addresses", fe("    bind: [\"127.0.0.1:80\", \"127.0.0.2:80\", \"[::1]:80\", \"example.com:80\"]", "    default_backend: b")},
		{"tunnel zero", "defaults:\n  timeouts: {tunnel: 0s}\n" + fe("    bind: \":80\"", "    default_backend: b")},
		{"routes only", fe("    bind: \":80\"", "    routes: [{dst_port: 80, backend: b}]")},
		{"sni with tls", fe("    bind: \":443\"", "    tls: {certificates: [{cert: site.pem, key: site.key}]}", "    routes: [{sni: \"*.example.com\", backend: b}]")},
		{"absolute cert paths", ""},
		{"anchors and aliases", "frontends:\n  f: &f {bind: \":80\", default_backend: b}\n  g: {bind: \":81\", default_backend: b}\nbackends:\n  b: &b {servers: [{address: \"10.0.0.1:80\"}]}\n  c: *b\n"},
		{"hex and underscores", "global: {max_connections: 0x10, buffer_size: 1024}\n" + fe("    bind: \":80\"", "    default_backend: b")},
		{"null sections", "global:\ndefaults:\n" + fe("    bind: \":80\"", "    default_backend: b")},
	}
	dir := testFiles(t)
	tests[6].src = fe("    bind: \":443\"", "    tls: {certificates: [{cert: "+filepath.Join(dir, "site.pem")+", key: "+filepath.Join(dir, "site.key")+"}]}", "    default_backend: b")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parseOK(t, dir, tt.src)
		})
	}
}

func TestEmptyRoutes(t *testing.T) {
	dir := t.TempDir()
	tests := []errorCase{
		{"empty routes list", fe("    bind: \":80\"", "    routes: []"), 2, 3, "nowhere to send connections"},
		{"empty sni list", fe("    bind: \":80\"", "    routes: [{sni: [], backend: b}]", "    default_backend: b"), 4, 14, "route: matches nothing"},
	}
	checkErrorCases(t, dir, tests)
}
