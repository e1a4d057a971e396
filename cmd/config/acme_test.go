package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

const acmeConfig = `global:
  data_dir: state
  acme:
    directory: letsencrypt-staging
    email: ops@example.com
    eab: { key_id: kid-1, mac_key: c2VjcmV0LW1hYy1rZXk }
    key_type: p384
    ca_root: ca.pem
    renew_window: 0.25
    check_interval: 1m
    retry: { min: 1s, max: 1m }
    challenges: { http01: true, tls_alpn01: false, http_port: 8080, tls_port: 8443 }
    on_demand:
      ask: http://127.0.0.1:9000/check
      allow: ["*.customers.example.com"]
      rate: { certificates: 10, per: 1m }
      per_name: { attempts: 2, per: 10m }
    fallback: { directory: "https://acme.zerossl.com/v2/DV90", email: ops@example.com }
frontends:
  web:
    bind: ":8443"
    tls:
      auto: [www.example.com]
      certificates: [{cert: site.pem, key: site.key}]
    routes:
      - host: [example.com, "*.example.com", 10.0.0.1]
        backend: b
      - sni: api.example.com
        backend: b
    default_backend: b
  plain:
    bind: ":8080"
  lan:
    bind: ":9443"
    tls: internal
    default_backend: b
  lan2:
    bind: ":9444"
    tls: { internal: [app.lan, 10.0.0.5] }
    default_backend: b
backends:
  b:
    servers: [{address: "10.0.0.1:443"}]
    tls: { ca: internal, client_certificate: internal }
`

func TestParseACME(t *testing.T) {
	dir := testFiles(t)
	cfg := parseOK(t, dir, acmeConfig)
	a := cfg.Global.ACME
	want := ACME{
		Pos: a.Pos,
		CA: ACMEIssuer{Directory: "https://acme-staging-v02.api.letsencrypt.org/directory", Email: "ops@example.com",
			EABKeyID: "kid-1", EABMACKey: "c2VjcmV0LW1hYy1rZXk", CARoot: dir + "/ca.pem"},
		Fallback:      &ACMEIssuer{Directory: "https://acme.zerossl.com/v2/DV90", Email: "ops@example.com"},
		KeyType:       "p384",
		RenewWindow:   0.25,
		CheckInterval: time.Minute,
		RetryMin:      time.Second,
		RetryMax:      time.Minute,
		HTTP01:        true,
		HTTPPort:      8080,
		TLSPort:       8443,
		OnDemand: &OnDemand{Ask: "http://127.0.0.1:9000/check", Allow: []string{"*.customers.example.com"},
			Certificates: 10, RatePer: time.Minute, Attempts: 2, AttemptsPer: 10 * time.Minute},
	}
	if !reflect.DeepEqual(a, want) {
		t.Errorf("ACME =\n%+v\nwant\n%+v", a, want)
	}
	byName := map[string]*Frontend{}
	for _, f := range cfg.Frontends {
		byName[f.Name] = f
	}
	web := byName["web"].TLS
	if !web.Auto || web.Internal || len(web.Certificates) != 1 {
		t.Errorf("web tls = %+v", web)
	}
	// Listed names first, then exact route names; wildcards and IPs left out.
	if want := []string{"www.example.com", "example.com", "api.example.com"}; !slices.Equal(web.Names, want) {
		t.Errorf("web names = %q, want %q", web.Names, want)
	}
	if lan := byName["lan"].TLS; !lan.Internal || !slices.Equal(lan.Names, []string{"localhost", "127.0.0.1", "::1"}) {
		t.Errorf("lan tls = %+v", lan)
	}
	if lan2 := byName["lan2"].TLS; !slices.Equal(lan2.Names, []string{"app.lan", "10.0.0.5"}) {
		t.Errorf("lan2 names = %q", lan2.Names)
	}
	if p := byName["plain"]; !p.HTTPSRedirect {
		t.Error("plain frontend on the ACME HTTP port does not redirect to https by default")
	}
	if bt := cfg.Backend("b").TLS; !bt.CAInternal || !bt.ClientInternal || bt.CA != "" {
		t.Errorf("backend tls = %+v", bt)
	}
	if !cfg.UsesACME() || !cfg.UsesInternalCA() {
		t.Error("UsesACME or UsesInternalCA is false")
	}
}

func TestParseACMEDefaults(t *testing.T) {
	dir := testFiles(t)
	cfg := parseOK(t, dir, "frontends:\n  s: {bind: \":443\", tls: auto, routes: [{host: a.example.com, backend: b}]}\n  p: {bind: \"127.0.0.1:80\"}\n  q: {bind: \":81\", default_backend: b}\n  r: {bind: \"127.0.0.2:80\", default_backend: b}\n"+okBackend)
	if a := cfg.Global.ACME; !reflect.DeepEqual(a, defaultACME()) {
		t.Errorf("ACME = %+v, want the defaults", a)
	}
	for _, f := range cfg.Frontends {
		if want := f.Name == "p"; f.HTTPSRedirect != want {
			t.Errorf("frontend %s: HTTPSRedirect = %v, want %v", f.Name, f.HTTPSRedirect, want)
		}
	}
	// r has a default_backend: it serves plain HTTP unless told otherwise.
	// Without tls auto anywhere, a port-80 frontend is left alone.
	cfg = parseOK(t, dir, "frontends:\n  p: {bind: \":80\", default_backend: b}\n"+okBackend)
	if cfg.Frontends[0].HTTPSRedirect || cfg.UsesACME() {
		t.Error("port 80 redirects without ACME")
	}
}

func TestParseACMEErrors(t *testing.T) {
	g := func(lines ...string) string {
		return "global:\n  acme:\n" + strings.Join(lines, "\n") + "\n" + "frontends:\n  f: {bind: \":443\", tls: auto, routes: [{host: a.example.com, backend: b}]}\n" + okBackend
	}
	tests := []errorCase{
		{"unknown acme key", g("    emial: a@b.c"), 3, 5, `unknown key "emial"`},
		{"bad directory", g("    directory: acme.example.com"), 3, 16, "is not an http(s) URL"},
		{"bad email", g("    email: nobody"), 3, 12, "is not an email address"},
		{"eab half", g("    eab: {key_id: k}"), 3, 5, "needs both key_id and mac_key"},
		{"eab mac not base64url", g("    eab: {key_id: k, mac_key: \"a b\"}"), 3, 31, "not base64url"},
		{"key type", g("    key_type: rsa1024"), 3, 15, `unknown value "rsa1024"`},
		{"renew window", g("    renew_window: 1.5"), 3, 19, "expected a fraction between 0 and 1"},
		{"retry order", g("    retry: {min: 1m, max: 1s}"), 3, 5, "max 1s is less than min 1m0s"},
		{"no challenge", g("    challenges: {http01: false, tls_alpn01: false}"), 3, 5, "both off"},
		{"port range", g("    challenges: {http_port: 0}"), 3, 29, "must be at least 1"},
		{"on-demand without policy", g("    on_demand: {rate: {certificates: 1, per: 1s}}"), 3, 5, "give ask"},
		{"on-demand ask URL", g("    on_demand: {ask: foo}"), 3, 22, "not an http(s) URL"},
		{"on-demand rate half", g("    on_demand: {allow: [a.example.com], rate: {certificates: 3}}"), 3, 41, "needs both certificates and per"},
		{"fallback without directory", g("    fallback: {email: a@b.c}"), 3, 5, "fallback: directory is required"},
		{"tls bad scalar", fe("    bind: \":443\"", "    tls: yes", "    default_backend: b"), 4, 10, "expected a mapping (certificates, auto, internal, …), auto or internal"},
		{"auto and internal", fe("    bind: \":443\"", "    tls: {auto: [a.example.com], internal: true}", "    default_backend: b"), 4, 34, "mutually exclusive"},
		{"auto without names", fe("    bind: \":443\"", "    tls: auto", "    default_backend: b"), 4, 5, "tls auto has no names"},
		{"auto localhost", fe("    bind: \":443\"", "    tls: {auto: [localhost]}", "    default_backend: b"), 4, 18, "use tls: internal"},
		{"auto IP", fe("    bind: \":443\"", "    tls: {auto: [192.0.2.1]}", "    default_backend: b"), 4, 18, "use tls: internal"},
		{"auto wildcard", fe("    bind: \":443\"", "    tls: {auto: [\"*.example.com\"]}", "    default_backend: b"), 4, 18, "cannot validate wildcards"},
		{"auto route localhost", fe("    bind: \":443\"", "    tls: auto", "    routes: [{host: localhost, backend: b}]"), 5, 14, "use tls: internal"},
		{"auto empty list", fe("    bind: \":443\"", "    tls: {auto: []}", "    default_backend: b"), 4, 11, "expected true or a list of names"},
		{"https_redirect with tls", fe("    bind: \":443\"", "    tls: {internal: true}", "    https_redirect: true", "    default_backend: b"), 5, 5, "https_redirect is for plain HTTP frontends"},
		{"https_redirect off and nowhere", "global: {acme: {email: a@b.c}}\nfrontends:\n  s: {bind: \":443\", tls: {auto: [a.example.com]}, default_backend: b}\n  f: {bind: \":80\", https_redirect: false}\n" + okBackend, 4, 3, "nowhere to send connections"},
		{"https_redirect with default_backend", fe("    bind: \":80\"", "    https_redirect: true", "    default_backend: b"), 4, 5, "default_backend would never be used"},
		{"https_redirect in tcp mode", fe("    bind: \":80\"", "    mode: tcp", "    https_redirect: true", "    default_backend: b"), 5, 5, "https_redirect"},
		{"backend client_certificate value", be("    servers: [{address: \"10.0.0.1:443\"}]", "    tls: {client_certificate: mine}"), 6, 31, `unknown value "mine"`},
		{"backend client_certificate and client_cert", be("    servers: [{address: \"10.0.0.1:443\"}]", "    tls: {client_certificate: internal, client_cert: client.pem, client_key: client.key}"), 6, 11, "mutually exclusive"},
	}
	dir := testFiles(t)
	checkErrorCases(t, dir, tests)
}
