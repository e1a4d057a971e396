package config

import (
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

const httpConfig = `global:
  buffer_size: 32KiB
defaults:
  http_limits: {max_header_bytes: 32KiB, max_uri_bytes: 4KiB}
frontends:
  site:
    bind: ":8080"
    timeouts: {http_request: 3s, keep_alive: 20s, server: 30s}
    http_limits:
      max_header_count: 50
      max_body_bytes: 1MiB
    http_rules:
      - action: allow
        src: 10.0.0.0/8
      - action: deny
        method: [TRACE, PROPFIND]
        host: ["Admin.Example.com.", "*.internal.example.com", "[::1]", 127.0.0.1]
        path_prefix: [/admin/, /a%20b]
        header: {name: X-Debug}
      - action: deny
        header: {name: X-Canary, value: "1"}
        status: 451
    routes:
      - host: old.example.com
        redirect: {status: 308, host: "new.example.com:8443"}
      - path_prefix: /blog/
        redirect: {scheme: https, prefix: /news/}
      - path_prefix: /
        header: {name: x-canary, value: on}
        backend: canary
      - host: api.example.com
        redirect: {path: /moved}
    default_backend: api
    headers:
      request:
        delete: [X-Secret, X-Other]
        set: {X-B: "2", X-A: "1"}
        add: {Via: 1.1 strata, X-A: more}
      response:
        delete: Server
        add: {X-Served-By: strata}
    forwarded: {trusted: [10.0.0.0/8, "::1"], x_forwarded: false, forwarded: true}
    request_id: {header: X-Trace, generate: false}
    errors:
      503: errors/503.html
      0x1AD: errors/429.txt
backends:
  api:
    balance: header(X-User)
    cookie: {name: SRV}
    servers: [{address: "10.0.0.1:80", name: a}, {address: "10.0.0.2:80"}]
    health: {type: http, expect_status: 204, host: "api.internal:8080", method: HEAD, path: "/health?deep=1"}
  canary:
    balance: uri
    cookie: {name: canary_srv, insert: false}
    tls: {verify: false}
    servers: [{address: "canary.internal:443"}]
    health: {type: http}
`

func TestParseHTTP(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "errors/503.html", []byte("<h1>busy</h1>\n"))
	writeFile(t, dir, "errors/429.txt", make([]byte, maxErrorFile))
	cfg := parseOK(t, dir, httpConfig)

	wantLimits := HTTPLimits{MaxHeaderBytes: 32 << 10, MaxHeaderCount: 101, MaxURIBytes: 4 << 10}
	if cfg.Defaults.HTTPLimits != wantLimits {
		t.Errorf("Defaults.HTTPLimits = %+v, want %+v", cfg.Defaults.HTTPLimits, wantLimits)
	}
	site := cfg.Frontends[0]
	wantLimits.MaxHeaderCount, wantLimits.MaxBodyBytes = 50, 1<<20
	if site.HTTPLimits != wantLimits {
		t.Errorf("site.HTTPLimits = %+v, want %+v", site.HTTPLimits, wantLimits)
	}
	if tm := site.Timeouts; tm.HTTPRequest != 3*time.Second || tm.KeepAlive != 20*time.Second || tm.Server != 30*time.Second || tm.Client != time.Minute {
		t.Errorf("site.Timeouts = %+v", tm)
	}
	wantRules := []HTTPRule{
		{Pos: Pos{13, 9}, Action: RuleAllow, Src: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
		{Pos: Pos{15, 9}, Action: RuleDeny, Method: []string{"TRACE", "PROPFIND"},
			Host:       []string{"admin.example.com", "*.internal.example.com", "::1", "127.0.0.1"},
			PathPrefix: []string{"/admin/", "/a%20b"}, Header: &HeaderMatch{Name: "X-Debug"}, Status: 403},
		{Pos: Pos{20, 9}, Action: RuleDeny, Header: &HeaderMatch{Name: "X-Canary", Value: "1", HasValue: true}, Status: 451},
	}
	if !reflect.DeepEqual(site.HTTPRules, wantRules) {
		t.Errorf("site.HTTPRules = %+v\nwant %+v", site.HTTPRules, wantRules)
	}
	wantRoutes := []Route{
		{Pos: Pos{24, 9}, Host: []string{"old.example.com"}, Redirect: &Redirect{Pos: Pos{25, 9}, Status: 308, Host: "new.example.com:8443"}},
		{Pos: Pos{26, 9}, PathPrefix: []string{"/blog/"}, Redirect: &Redirect{Pos: Pos{27, 9}, Status: 302, Scheme: "https", Prefix: "/news/"}},
		{Pos: Pos{28, 9}, PathPrefix: []string{"/"}, Header: &HeaderMatch{Name: "x-canary", Value: "on", HasValue: true}, Backend: "canary"},
		{Pos: Pos{31, 9}, Host: []string{"api.example.com"}, Redirect: &Redirect{Pos: Pos{32, 9}, Status: 302, Path: "/moved"}},
	}
	if !reflect.DeepEqual(site.Routes, wantRoutes) {
		t.Errorf("site.Routes = %+v\nwant %+v", site.Routes, wantRoutes)
	}
	wantHeaders := Headers{
		Request: HeaderRules{
			Delete: []string{"X-Secret", "X-Other"},
			Set:    []HeaderField{{"X-B", "2"}, {"X-A", "1"}},
			Add:    []HeaderField{{"Via", "1.1 strata"}, {"X-A", "more"}},
		},
		Response: HeaderRules{Delete: []string{"Server"}, Add: []HeaderField{{"X-Served-By", "strata"}}},
	}
	if !reflect.DeepEqual(site.Headers, wantHeaders) {
		t.Errorf("site.Headers = %+v\nwant %+v", site.Headers, wantHeaders)
	}
	wantFwd := Forwarded{Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}, Forwarded: true}
	if !reflect.DeepEqual(site.Forwarded, wantFwd) {
		t.Errorf("site.Forwarded = %+v, want %+v", site.Forwarded, wantFwd)
	}
	if site.RequestID != (RequestID{Header: "X-Trace"}) {
		t.Errorf("site.RequestID = %+v", site.RequestID)
	}
	wantErrors := map[int]string{503: filepath.Join(dir, "errors/503.html"), 429: filepath.Join(dir, "errors/429.txt")}
	if !reflect.DeepEqual(site.ErrorFiles, wantErrors) {
		t.Errorf("site.ErrorFiles = %v, want %v", site.ErrorFiles, wantErrors)
	}

	api := cfg.Backend("api")
	if api.Balance != BalanceHeader || api.HashHeader != "X-User" || *api.Cookie != (Cookie{Name: "SRV", Insert: true}) {
		t.Errorf("api = %+v cookie %+v", api, api.Cookie)
	}
	wantHealth := &Health{Type: HealthHTTP, Interval: 2 * time.Second, Timeout: 2 * time.Second, Rise: 2, Fall: 3,
		Method: "HEAD", Path: "/health?deep=1", ExpectStatus: []int{204}, Host: "api.internal:8080"}
	if !reflect.DeepEqual(api.Health, wantHealth) {
		t.Errorf("api.Health = %+v, want %+v", api.Health, wantHealth)
	}
	canary := cfg.Backend("canary")
	if canary.Balance != BalanceURI || canary.HashHeader != "" || *canary.Cookie != (Cookie{Name: "canary_srv"}) {
		t.Errorf("canary = %+v cookie %+v", canary, canary.Cookie)
	}
	wantHealth = &Health{Type: HealthHTTP, Interval: 2 * time.Second, Timeout: 2 * time.Second, Rise: 2, Fall: 3,
		Method: "GET", Path: "/", ExpectStatus: []int{200}}
	if !reflect.DeepEqual(canary.Health, wantHealth) {
		t.Errorf("canary.Health = %+v, want %+v", canary.Health, wantHealth)
	}
}

// TestHTTPDefaultsInTCP checks that a mode tcp frontend carries the
// inherited timeouts and limits but none of the HTTP-only defaults.
func TestHTTPDefaultsInTCP(t *testing.T) {
	cfg := parseOK(t, t.TempDir(), fe("    bind: \":80\"", "    mode: tcp", "    default_backend: b"))
	f := cfg.Frontends[0]
	if f.Timeouts.HTTPRequest != 10*time.Second || f.HTTPLimits != cfg.Defaults.HTTPLimits {
		t.Errorf("tcp frontend lost inherited values: %+v", f)
	}
	if !reflect.DeepEqual(f.Forwarded, Forwarded{}) || f.RequestID != (RequestID{}) || f.HTTPRules != nil || f.ErrorFiles != nil {
		t.Errorf("tcp frontend has HTTP defaults: %+v", f)
	}
}

// TestHTTPLimitsFollowBuffer checks that the default head limits shrink to
// a small buffer instead of exceeding it.
func TestHTTPLimitsFollowBuffer(t *testing.T) {
	cfg := parseOK(t, t.TempDir(), "global: {buffer_size: 4KiB}\n"+fe("    bind: \":80\"", "    default_backend: b"))
	want := HTTPLimits{MaxHeaderBytes: 4 << 10, MaxHeaderCount: 101, MaxURIBytes: 4 << 10}
	if got := cfg.Frontends[0].HTTPLimits; got != want {
		t.Errorf("HTTPLimits = %+v, want %+v", got, want)
	}
}

// hfe wraps lines of a mode http frontend on :80 with default_backend b
// into a configuration; the lines start at line 5, indented four spaces.
func hfe(lines ...string) string {
	return fe(append([]string{"    bind: \":80\"", "    default_backend: b"}, lines...)...)
}

// tfe is hfe for a mode tcp frontend; the lines start at line 6.
func tfe(lines ...string) string {
	return fe(append([]string{"    bind: \":80\"", "    mode: tcp", "    default_backend: b"}, lines...)...)
}

// sb is a valid server list for be.
const sb = "    servers: [{address: \"10.0.0.1:80\"}]"

func TestParseHTTPErrors(t *testing.T) {
	tests := []errorCase{
		// Keys of the wrong mode.
		{"http_rules in tcp", tfe("    http_rules: []"), 6, 5, "frontend f: http_rules needs mode: http (mode is tcp)"},
		{"headers in tcp", tfe("    headers: {}"), 6, 5, "frontend f: headers needs mode: http"},
		{"forwarded in tcp", tfe("    forwarded: {}"), 6, 5, "frontend f: forwarded needs mode: http"},
		{"request_id in tcp", tfe("    request_id: {}"), 6, 5, "frontend f: request_id needs mode: http"},
		{"errors in tcp", tfe("    errors: {}"), 6, 5, "frontend f: errors needs mode: http"},
		{"http_limits in tcp", tfe("    http_limits: {}"), 6, 5, "frontend f: http_limits needs mode: http"},
		{"http_request timeout in tcp", tfe("    timeouts: {client: 5s, http_request: 5s}"), 6, 28, "frontend f: timeouts.http_request needs mode: http"},
		{"keep_alive timeout in tcp", tfe("    timeouts:", "      keep_alive: 5s"), 7, 7, "frontend f: timeouts.keep_alive needs mode: http"},
		{"route host in tcp", tfe("    routes:", "      - host: a.example.com", "        backend: b"), 7, 9, "frontend f: routes[0].host needs mode: http"},
		{"route path_prefix in tcp", tfe("    routes:", "      - dst_port: 80", "        backend: b", "      - path_prefix: /", "        backend: b"),
			9, 9, "routes[1].path_prefix needs mode: http"},
		{"route header in tcp", tfe("    routes: [{dst_port: 80, header: {name: X}, backend: b}]"), 6, 29, "routes[0].header needs mode: http"},
		{"route redirect in tcp", tfe("    routes: [{dst_port: 80, redirect: {scheme: https}}]"), 6, 29, "routes[0].redirect needs mode: http"},
		{"uri backend from tcp", "frontends:\n  f: {bind: \":80\", mode: tcp, default_backend: b}\nbackends:\n  b: {balance: uri, servers: [{address: \"10.0.0.1:80\"}]}\n",
			2, 48, "backend b balances by uri, which needs mode: http (frontend f is mode tcp)"},
		{"header backend from tcp route", "frontends:\n  f:\n    bind: \":80\"\n    mode: tcp\n    routes: [{dst_port: 80, backend: b}]\n" +
			"backends:\n  b: {balance: header(X-User), servers: [{address: \"10.0.0.1:80\"}]}\n", 5, 38, "backend b balances by header(X-User), which needs mode: http"},
		{"h2 backend from tcp", "frontends:\n  f: {bind: \":80\", mode: tcp, default_backend: b}\nbackends:\n  b: {proto: h2, servers: [{address: \"10.0.0.1:80\"}]}\n",
			2, 48, "backend b speaks proto h2, which needs mode: http (frontend f is mode tcp)"},
		{"cookie backend from tcp", "frontends:\n  f: {bind: \":80\", mode: tcp, default_backend: b}\nbackends:\n  b: {cookie: {name: S}, servers: [{address: \"10.0.0.1:80\"}]}\n",
			2, 48, "backend b has cookie persistence, which needs mode: http"},

		// http_limits.
		{"max_header_bytes over buffer", hfe("    http_limits: {max_header_bytes: 32KiB}"), 5, 37, "max_header_bytes: 32KiB is more than global.buffer_size (16KiB)"},
		{"max_header_bytes tiny", hfe("    http_limits: {max_header_bytes: 100}"), 5, 37, "http_limits.max_header_bytes: 100 out of range 1KiB-1MiB"},
		{"max_header_count zero", hfe("    http_limits: {max_header_count: 0}"), 5, 37, "http_limits.max_header_count: must be at least 1, got 0"},
		{"max_header_count huge", hfe("    http_limits: {max_header_count: 40000}"), 5, 37, "http_limits.max_header_count: 40000 out of range 1-32767"},
		{"max_uri_bytes over head", hfe("    http_limits:", "      max_header_bytes: 2KiB", "      max_uri_bytes: 4KiB"), 7, 22,
			"http_limits: max_uri_bytes (4KiB) is more than max_header_bytes (2KiB)"},
		{"max_header_bytes under default uri", hfe("    http_limits: {max_header_bytes: 4KiB}"), 5, 37, "http_limits.max_header_bytes: 4KiB is less than max_uri_bytes (8KiB, inherited or the default); lower max_uri_bytes too"},
		{"max_uri_bytes tiny", hfe("    http_limits: {max_uri_bytes: 10}"), 5, 34, "http_limits.max_uri_bytes: 10 out of range 64-1MiB"},
		{"max_body_bytes negative", hfe("    http_limits: {max_body_bytes: -1}"), 5, 35, `invalid size "-1"`},
		{"defaults http_limits unknown key", "defaults:\n  http_limits: {max_headers: 10}\n" + hfe(), 2, 17, `http_limits: unknown key "max_headers" (did you mean "max_header_bytes"?)`},
		{"defaults http_limits over buffer", "global: {buffer_size: 8KiB}\ndefaults:\n  http_limits: {max_header_bytes: 16KiB}\n" + hfe(), 3, 35, "is more than global.buffer_size (8KiB)"},

		// http_rules.
		{"rules not a list", hfe("    http_rules: {action: deny}"), 5, 17, "http_rules: expected a list, got a mapping"},
		{"rule without action", hfe("    http_rules:", "      - src: 10.0.0.0/8"), 6, 9, "http_rules[0]: action is required (allow or deny)"},
		{"rule bad action", hfe("    http_rules:", "      - action: reject"), 6, 17, `http_rules[0].action: unknown value "reject"; valid values: allow, deny`},
		{"rule unknown key", hfe("    http_rules:", "      - {action: deny, path: /x}"), 6, 24, `http_rules[0]: unknown key "path"`},
		{"rule bad src", hfe("    http_rules:", "      - {action: deny, src: [10.0.0.0/40]}"), 6, 30, `http_rules[0].src: invalid CIDR "10.0.0.0/40"`},
		{"rule lower-case method", hfe("    http_rules:", "      - {action: deny, method: [GET, post]}"), 6, 38, "http_rules[0].method: methods are case-sensitive; write POST, not post"},
		{"rule bad method", hfe("    http_rules:", "      - {action: deny, method: \"GE T\"}"), 6, 32, `http_rules[0].method: "GE T" is not a valid method`},
		{"rule host with port", hfe("    http_rules:", "      - {action: deny, host: \"a.example.com:80\"}"), 6, 30, "without a port or a scheme"},
		{"rule host with scheme", hfe("    http_rules:", "      - {action: deny, host: \"https://a.example.com\"}"), 6, 30, `invalid host "https://a.example.com"`},
		{"rule host double wildcard", hfe("    http_rules:", "      - {action: deny, host: \"*.*.example.com\"}"), 6, 30, `invalid host "*.*.example.com"`},
		{"rule path without slash", hfe("    http_rules:", "      - {action: deny, path_prefix: admin}"), 6, 37, `http_rules[0].path_prefix: "admin" must start with /`},
		{"rule path with query", hfe("    http_rules:", "      - {action: deny, path_prefix: \"/a?b\"}"), 6, 37, "must not contain a query (?)"},
		{"rule path with space", hfe("    http_rules:", "      - {action: deny, path_prefix: \"/a b\"}"), 6, 37, "must be visible ASCII"},
		{"rule path bad escape", hfe("    http_rules:", "      - {action: deny, path_prefix: \"/a%zz\"}"), 6, 37, "'%' that does not start a %XX escape"},
		{"rule header bad name", hfe("    http_rules:", "      - {action: deny, header: {name: \"X Y\"}}"), 6, 39, `http_rules[0].header.name: "X Y" is not a valid header field name`},
		{"rule header without name", hfe("    http_rules:", "      - {action: deny, header: {value: x}}"), 6, 32, "http_rules[0].header: name is required"},
		{"rule header value CR", hfe("    http_rules:", "      - {action: deny, header: {name: X, value: \"a\\rb\"}}"), 6, 49, "contains a line break (CR or LF)"},
		{"rule header value NUL", hfe("    http_rules:", "      - {action: deny, header: {name: X, value: \"a\\0b\"}}"), 6, 49, "contains a NUL byte"},
		{"rule header value control", hfe("    http_rules:", "      - {action: deny, header: {name: X, value: \"a\\x01\"}}"), 6, 49, "contains the control byte 0x01"},
		{"rule header value spaces", hfe("    http_rules:", "      - {action: deny, header: {name: X, value: \" a\"}}"), 6, 49, "has leading or trailing whitespace"},
		{"rule status on allow", hfe("    http_rules:", "      - {action: allow, status: 403}"), 6, 25, "http_rules[0]: status applies to deny only"},
		{"rule status not an error", hfe("    http_rules:", "      - {action: deny, status: 200}"), 6, 32, "http_rules[0].status: 200 out of range 400-599"},

		// headers.
		{"headers unknown key", hfe("    headers: {req: {}}"), 5, 15, `headers: unknown key "req"`},
		{"header rules unknown key", hfe("    headers:", "      response: {remove: [Server]}"), 6, 18, `headers.response: unknown key "remove"`},
		{"set Content-Length", hfe("    headers:", "      request: {set: {Content-Length: \"0\"}}"), 6, 23, "headers.request.set: Content-Length cannot be written"},
		{"add transfer-encoding", hfe("    headers:", "      response: {add: {transfer-encoding: chunked}}"), 6, 24, "headers.response.add: Transfer-Encoding cannot be written"},
		{"set Connection", hfe("    headers:", "      response:", "        set:", "          connection: close"), 8, 11, "Connection cannot be written"},
		{"set twice", hfe("    headers:", "      request:", "        set: {X-A: \"1\", x-a: \"2\"}"), 7, 25, "headers.request.set: x-a is set twice (first at 7:15)"},
		{"set and delete", hfe("    headers:", "      request:", "        delete: [X-A]", "        set: {x-a: \"2\"}"), 8, 15, "headers.request.set: x-a is also deleted"},
		{"delete Host", hfe("    headers:", "      request: {delete: [X-A, host]}"), 6, 31, "headers.request.delete: Host cannot be deleted"},
		{"add Host", hfe("    headers:", "      request: {add: {Host: a.example.com}}"), 6, 23, "headers.request.add: a request has one Host; set it instead"},
		{"set bad name", hfe("    headers:", "      request: {set: {\"X A\": b}}"), 6, 23, `headers.request.set: "X A" is not a valid header field name`},
		{"set value LF", hfe("    headers:", "      response: {set: {X-A: \"a\\nSet-Cookie: x\"}}"), 6, 29, "headers.response.set.X-A: value \"a\\nSet-Cookie: x\" contains a line break"},
		{"set value not a string", hfe("    headers:", "      response: {set: {X-A: [a]}}"), 6, 29, "headers.response.set.X-A: expected a string, got a list"},
		{"delete bad name", hfe("    headers:", "      response: {delete: \"a:b\"}"), 6, 26, `headers.response.delete: "a:b" is not a valid header field name`},
		{"set not a mapping", hfe("    headers:", "      response: {set: [X-A]}"), 6, 23, "headers.response.set: expected a mapping, got a list"},

		// forwarded and request_id.
		{"forwarded bad cidr", hfe("    forwarded: {trusted: [10.0.0.0/8, nope]}"), 5, 39, `forwarded.trusted: invalid CIDR or IP address "nope"`},
		{"forwarded not bool", hfe("    forwarded: {x_forwarded: sometimes}"), 5, 30, `forwarded.x_forwarded: expected true or false, got "sometimes"`},
		{"forwarded unknown key", hfe("    forwarded: {trust: [10.0.0.0/8]}"), 5, 17, `forwarded: unknown key "trust" (did you mean "trusted"?)`},
		{"request_id bad header", hfe("    request_id: {header: \"X Request\"}"), 5, 26, `request_id.header: "X Request" is not a valid header field name`},
		{"request_id framing header", hfe("    request_id: {header: Content-Length}"), 5, 26, "request_id.header: Content-Length cannot be written"},
		{"request_id generate", hfe("    request_id: {generate: 1}"), 5, 28, "request_id.generate: expected true or false, got 1"},

		// errors.
		{"errors not a mapping", hfe("    errors: [503.html]"), 5, 13, "errors: expected a mapping, got a list"},
		{"errors status not an error", hfe("    errors: {200: ok.html}"), 5, 14, "errors status: 200 out of range 400-599"},
		{"errors status quoted", hfe("    errors: {\"503\": e503.html}"), 5, 14, `errors status: expected an integer, got "503"`},
		{"errors status twice", hfe("    errors:", "      503: e503.html", "      0x1F7: e503.html"), 7, 7, "errors: status 503 is given twice (first at 6:7)"},
		{"errors missing file", hfe("    errors: {503: nope.html}"), 5, 19, "error file nope.html: no such file or directory"},
		{"errors file too big", hfe("    errors: {503: big.html}"), 5, 19, "error file big.html: larger than 64KiB"},
		{"errors file is a directory", hfe("    errors: {503: .}"), 5, 19, "error file .: not a regular file"},
		{"errors file empty path", hfe("    errors: {503: \"\"}"), 5, 19, "errors.503: must not be empty"},

		// routes.
		{"backend and redirect", hfe("    routes:", "      - path_prefix: /", "        backend: b", "        redirect: {scheme: https}"),
			8, 9, "route: backend and redirect are mutually exclusive"},
		{"neither backend nor redirect", hfe("    routes:", "      - path_prefix: /"), 6, 9, "route: backend is required (or redirect)"},
		{"route matches nothing in http", hfe("    routes:", "      - backend: b"), 6, 9, "route: matches nothing; give host, path_prefix, header, sni or dst_port"},
		{"route empty host list", hfe("    routes: [{host: [], backend: b}]"), 5, 14, "route: matches nothing"},
		{"route bad host", hfe("    routes: [{host: a_b.example.com:8080, backend: b}]"), 5, 21, `routes[0].host: invalid host "a_b.example.com:8080"`},
		{"route bad path_prefix", hfe("    routes: [{path_prefix: [/a, b], backend: b}]"), 5, 33, `routes[0].path_prefix: "b" must start with /`},
		{"route header empty", hfe("    routes: [{header: {}, backend: b}]"), 5, 23, "routes[0].header: name is required"},
		{"route header value key", hfe("    routes: [{header: {name: X-A, val: \"1\"}, backend: b}]"), 5, 35, `routes[0].header: unknown key "val"; valid keys: name, value`},
		{"redirect changes nothing", hfe("    routes:", "      - path_prefix: /", "        redirect: {status: 301}"), 7, 9,
			"routes[0].redirect: changes nothing; give at least one of scheme, host, path or prefix"},
		{"redirect null", hfe("    routes:", "      - path_prefix: /", "        redirect:"), 7, 9, "routes[0].redirect: changes nothing"},
		{"redirect status 304", hfe("    routes: [{path_prefix: /, redirect: {status: 304, scheme: https}}]"), 5, 50, "routes[0].redirect.status: 304 is not a redirect status; valid values: 301, 302, 303, 307, 308"},
		{"redirect status 200", hfe("    routes: [{path_prefix: /, redirect: {status: 200, scheme: https}}]"), 5, 50, "routes[0].redirect.status: 200 out of range 300-399"},
		{"redirect scheme", hfe("    routes: [{path_prefix: /, redirect: {scheme: ftp}}]"), 5, 50, `routes[0].redirect.scheme: unknown value "ftp"; valid values: http, https`},
		{"redirect host with scheme", hfe("    routes: [{path_prefix: /, redirect: {host: \"https://a.example.com\"}}]"), 5, 48, `routes[0].redirect.host: invalid host "https://a.example.com": write it without a scheme or a path`},
		{"redirect host bad port", hfe("    routes: [{path_prefix: /, redirect: {host: \"a.example.com:99999\"}}]"), 5, 48, "port 99999 out of range 1-65535"},
		{"redirect relative path", hfe("    routes: [{path_prefix: /, redirect: {path: new}}]"), 5, 48, `routes[0].redirect.path: "new" must start with /`},
		{"redirect path with fragment", hfe("    routes: [{path_prefix: /, redirect: {path: \"/a#b\"}}]"), 5, 48, "must not contain a fragment (#)"},
		{"redirect path and prefix", hfe("    routes: [{path_prefix: /old/, redirect: {path: /a, prefix: /b/}}]"), 5, 56,
			"routes[0].redirect: path and prefix are mutually exclusive"},
		{"redirect prefix without path_prefix", hfe("    routes: [{host: a.example.com, redirect: {prefix: /b/}}]"), 5, 47,
			"routes[0].redirect: prefix replaces the matched path_prefix, and this route has none"},
		{"redirect unknown key", hfe("    routes: [{path_prefix: /, redirect: {code: 301, scheme: https}}]"), 5, 42, `routes[0].redirect: unknown key "code"`},

		// backends.
		{"balance header without name", be("    balance: header", sb), 5, 14, "balance: header needs a field name, as in header(X-User)"},
		{"balance header bad name", be("    balance: header(X User)", sb), 5, 14, `balance: "X User" is not a valid header field name`},
		{"balance header empty name", be("    balance: header()", sb), 5, 14, `balance: "" is not a valid header field name`},
		{"balance header unclosed", be("    balance: header(X-User", sb), 5, 14, `balance: "header(X-User" is missing its closing ')'`},
		{"balance hdr", be("    balance: hdr(X-User)", sb), 5, 14, `balance: unknown value "hdr(X-User)" (did you mean "header(X-User)"?)`},
		{"balance unknown lists http", be("    balance: url_param", sb), 5, 14, "valid values: roundrobin, leastconn, random, source, first, uri, header(NAME)"},
		{"proto unknown", be(sb, "    proto: h3c"), 6, 12, `proto: unknown value "h3c"; valid values: h1, h2`},
		{"proto not a string", be(sb, "    proto: [h2]"), 6, 12, "proto: expected a string"},
		{"proto h2 without h2 alpn", be(sb, "    tls: {verify: false, alpn: [http/1.1]}", "    proto: h2"), 7, 12,
			`proto: h2 over TLS needs "h2" in tls.alpn (it is ["http/1.1"]); add it or drop tls.alpn`},
		{"cookie without name", be(sb, "    cookie: {insert: true}"), 6, 5, "cookie: name is required"},
		{"cookie null", be(sb, "    cookie:"), 6, 5, "cookie: name is required"},
		{"cookie bad name", be(sb, "    cookie: {name: \"my cookie\"}"), 6, 20, `cookie.name: "my cookie" is not a valid cookie name`},
		{"cookie insert not bool", be(sb, "    cookie: {name: SRV, insert: yes}"), 6, 33, `cookie.insert: expected true or false, got "yes"`},
		{"cookie and bad server name", be("    cookie: {name: SRV}", "    servers:", "      - {address: \"10.0.0.1:80\", name: \"a;b\"}"), 7, 9,
			`backend b: server name "a;b" cannot be a cookie value`},
		{"health path without http", be(sb, "    health: {type: tcp, path: /}"), 6, 25, "health.path needs type: http"},
		{"health method without type", be(sb, "    health: {method: GET}"), 6, 14, "health.method needs type: http"},
		{"health path relative", be(sb, "    health: {type: http, path: health}"), 6, 32, `health.path: "health" must start with /`},
		{"health method lower-case", be(sb, "    health: {type: http, method: get}"), 6, 34, "health.method: methods are case-sensitive; write GET, not get"},
		{"health expect_status 100", be(sb, "    health: {type: http, expect_status: 100}"), 6, 41, "health.expect_status: 100 out of range 200-599"},
		{"health expect_status list", be(sb, "    health: {type: http, expect_status: [200, 700]}"), 6, 47, "health.expect_status: 700 out of range 200-599"},
		{"health expect_status empty", be(sb, "    health: {type: http, expect_status: []}"), 6, 26, "health.expect_status: give at least one status"},
		{"health expect_status word", be(sb, "    health: {type: http, expect_status: ok}"), 6, 41, `health.expect_status: expected an integer, got "ok"`},
		{"health host with scheme", be(sb, "    health: {type: http, host: \"http://a\"}"), 6, 32, "health.host: invalid host \"http://a\": write it without a scheme or a path"},
	}
	dir := testFiles(t)
	writeFile(t, dir, "e503.html", []byte("busy\n"))
	writeFile(t, dir, "big.html", make([]byte, maxErrorFile+1))
	checkErrorCases(t, dir, tests)
}

// TestValidHTTPVariants are mode http configurations close to an error
// that must parse.
func TestValidHTTPVariants(t *testing.T) {
	tests := []struct {
		name string
		src  string
	}{
		{"redirect-only frontend", fe("    bind: \":80\"", "    routes: [{path_prefix: /, redirect: {scheme: https}}]")},
		{"redirect prefix with path_prefix", hfe("    routes: [{path_prefix: /old/, redirect: {prefix: /}}]")},
		{"header present", hfe("    routes: [{header: {name: X-Canary}, backend: b}]")},
		{"deny everything", hfe("    http_rules: [{action: allow, src: 10.0.0.0/8}, {action: deny}]")},
		{"custom method", hfe("    http_rules: [{action: deny, method: [PROPFIND, M-SEARCH]}]")},
		{"null sections", hfe("    http_rules:", "    headers:", "    forwarded:", "    request_id:", "    errors:", "    http_limits:")},
		{"value with tab and UTF-8", hfe("    headers: {response: {set: {X-Note: \"a\\tb ünïcode\"}}}")},
		{"add and delete one name", hfe("    headers: {request: {delete: X-A, add: {X-A: \"1\"}}}")},
		{"set and add one name", hfe("    headers: {request: {set: {X-A: \"1\"}, add: {X-A: \"2\"}}}")},
		{"set Host", hfe("    headers: {request: {set: {Host: internal.example.com}}}")},
		{"delete Host in response", hfe("    headers: {response: {delete: Host}}")},
		{"http timeouts in defaults with tcp frontend", "defaults:\n  timeouts: {http_request: 1s, keep_alive: 1s}\n  http_limits: {max_body_bytes: 1KiB}\n" + tfe()},
		{"limits equal", hfe("    http_limits: {max_header_bytes: 8KiB, max_uri_bytes: 8KiB}")},
		{"smallest limits", hfe("    http_limits: {max_header_bytes: 1KiB, max_uri_bytes: 64, max_header_count: 1}")},
		{"http health without tls", be(sb, "    health: {type: http, expect_status: [200, 301], host: \"[::1]:8080\"}")},
		{"http health with tls", be(sb, "    tls: {verify: false}", "    health: {type: http, path: /, method: OPTIONS, host: 10.0.0.1}")},
		{"plain backend shared by tcp and http", "frontends:\n  t: {bind: \":80\", mode: tcp, default_backend: b}\n  h: {bind: \":81\", default_backend: b}\n" + okBackend},
		{"http backend only from http", "frontends:\n  t: {bind: \":80\", mode: tcp, default_backend: b}\n  h: {bind: \":81\", default_backend: c}\n" +
			okBackend + "  c: {balance: \"header(X-User)\", cookie: {name: S, insert: false}, servers: [{address: \"10.0.0.1:80\", name: \"[s]:1\"}]}\n"},
		{"proto h2 cleartext", be(sb, "    proto: h2")},
		{"proto h2 over tls", be(sb, "    tls: {verify: false}", "    proto: h2", "    health: {type: http}")},
		{"proto h2 with h2 alpn", be(sb, "    tls: {verify: false, alpn: [h2, http/1.1]}", "    proto: h2")},
		{"proto h1", be(sb, "    tls: {verify: false, alpn: [http/1.1]}", "    proto: h1")},
		{"route host IP and wildcard", hfe("    routes: [{host: [\"10.0.0.1\", \"[2001:db8::1]\", \"*.example.com\", EXAMPLE.org.], backend: b}]")},
		{"sni and host together", hfe("    tls: {certificates: [{cert: site.pem, key: site.key}]}", "    routes: [{sni: a.example.com, host: b.example.com, backend: b}]")},
		{"errors at both ends", hfe("    errors: {400: e503.html, 599: e503.html}")},
		{"redirect host with port", hfe("    routes: [{path_prefix: /, redirect: {host: \"[::1]:8443\", status: 307}}]")},
	}
	dir := testFiles(t)
	writeFile(t, dir, "e503.html", []byte("busy\n"))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parseOK(t, dir, tt.src)
		})
	}
}
