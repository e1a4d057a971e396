package config

import (
	"strings"
	"testing"
)

// qtls is a tls section with a valid certificate, for quic cases.
const qtls = "    tls: {certificates: [{cert: site.pem, key: site.key}]}"

func TestParseQUIC(t *testing.T) {
	dir := testFiles(t)
	cfg := parseOK(t, dir, fe(
		"    bind: [{address: \"127.0.0.1:8443-8444\", quic: true}, \":9443\", {address: \":9444\"}]",
		"    default_backend: b",
		"    tls: {certificates: [{cert: site.pem, key: site.key}], zero_rtt: true}"))
	f := cfg.Frontends[0]
	var got []string
	for _, a := range f.Bind {
		s := a.String()
		if a.QUIC {
			s += "+quic"
		}
		got = append(got, s)
	}
	if want := "127.0.0.1:8443+quic 127.0.0.1:8444+quic :9443 :9444"; strings.Join(got, " ") != want {
		t.Errorf("binds %q, want %q", strings.Join(got, " "), want)
	}
	if !f.TLS.ZeroRTT {
		t.Error("zero_rtt: true was not read")
	}
	cfg = parseOK(t, dir, be("    servers: [{address: \"10.0.0.1:443\"}]", "    tls: {sni: a.internal}", "    h3: true"))
	if !cfg.Backends[0].H3 {
		t.Error("backend h3: true was not read")
	}
	if f.Bind[0].Pos != (Pos{3, 22}) {
		t.Errorf("the quic bind's position is %v, want its address at 3:22", f.Bind[0].Pos)
	}
}

func TestParseQUICErrors(t *testing.T) {
	tests := []struct {
		name      string
		src       string
		line, col int
		msg       string
	}{
		{"quic in tcp", fe("    bind: [{address: \":443\", quic: true}]", "    mode: tcp", "    default_backend: b", qtls), 3, 22,
			"frontend f: bind :443: quic needs mode: http (mode is tcp)"},
		{"quic without tls", fe("    bind: [{address: \":443\", quic: true}]", "    default_backend: b"), 3, 22,
			"frontend f: bind :443: quic needs tls: QUIC is always encrypted"},
		{"quic with proxy_protocol", fe("    bind: [{address: \":443\", quic: true}]", "    proxy_protocol: true", "    default_backend: b", qtls), 3, 22,
			"quic cannot be used with proxy_protocol"},
		{"zero_rtt without quic", fe("    bind: \":443\"", "    default_backend: b",
			"    tls: {certificates: [{cert: site.pem, key: site.key}], zero_rtt: true}"), 5, 60,
			"frontend f: zero_rtt needs a bind entry with quic: true"},
		{"bind mapping without address", fe("    bind: [{quic: true}]", "    default_backend: b", qtls), 3, 12,
			"bind: address is required in the mapping form"},
		{"bind mapping unknown key", fe("    bind: [{address: \":443\", udp: true}]", "    default_backend: b", qtls), 3, 30,
			`bind: unknown key "udp"`},
		{"quic not bool", fe("    bind: [{address: \":443\", quic: yes}]", "    default_backend: b", qtls), 3, 36,
			`quic: expected true or false, got "yes"`},
		{"h3 backend without tls", be("    servers: [{address: \"10.0.0.1:443\"}]", "    h3: true"), 6, 5,
			"backend b: h3 needs tls: HTTP/3 runs over QUIC"},
		{"h3 not bool", be("    servers: [{address: \"10.0.0.1:443\"}]", "    tls: {sni: a.internal}", "    h3: 1"), 7, 9,
			"h3: expected true or false"},
		{"h3 backend from tcp", "frontends:\n  f: {bind: \":80\", mode: tcp, default_backend: b}\nbackends:\n  b: {h3: true, tls: {sni: a.internal}, servers: [{address: \"10.0.0.1:443\"}]}\n",
			2, 48, "backend b speaks HTTP/3 (h3: true), which needs mode: http (frontend f is mode tcp)"},
		{"bad address in mapping", fe("    bind: [{address: \":99999\", quic: true}]", "    default_backend: b", qtls), 3, 22,
			`bind ":99999"`},
	}
	dir := testFiles(t)
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
