package config

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// FuzzParse checks that Parse never panics, that a configuration it
// accepts parses to the same value again, and that every error it reports
// is well formed and points inside the input.
func FuzzParse(f *testing.F) {
	f.Add([]byte(fullConfig))
	f.Add([]byte(fe("    bind: [\":80\", \"[::1]:8000-8003\"]", "    default_backend: b")))
	f.Add([]byte(be("    servers: [{address: \"a.internal:80\", weight: 300}]", "    health: {type: tls}")))
	f.Add([]byte(httpConfig))
	f.Add([]byte(acmeConfig))
	f.Add([]byte(hfe("    routes: [{path_prefix: /, redirect: {scheme: https, prefix: /x}}]", "    headers: {request: {set: {Host: a}}}")))
	f.Add([]byte(fe("    bind: [{address: \":443\", quic: true}, {address: \"[::1]:8000-8001\"}, \":80\"]", "    default_backend: b",
		"    tls: {certificates: [{cert: site.pem, key: site.key}], zero_rtt: true}")))
	f.Fuzz(func(t *testing.T, data []byte) {
		const file = "fuzz.yaml"
		cfg, err := Parse(file, data)
		if err == nil {
			again, err := Parse(file, data)
			if err != nil {
				t.Fatalf("second parse failed: %v", err)
			}
			if !reflect.DeepEqual(cfg, again) {
				t.Fatalf("two parses of the same input differ")
			}
			return
		}
		if cfg != nil {
			t.Fatalf("Parse returned both a config and %v", err)
		}
		var es Errors
		if !errors.As(err, &es) || len(es) == 0 {
			t.Fatalf("error is %T %v, want non-empty Errors", err, err)
		}
		lines := countLines(data)
		for _, e := range es {
			if e.File != file || e.Line < 1 || e.Col < 1 || e.Msg == "" {
				t.Fatalf("malformed error %#v", e)
			}
			if e.Line > lines+1 {
				t.Fatalf("error %v is past the end of a %d-line input", e, lines)
			}
		}
		_, err2 := Parse(file, data)
		if err2 == nil || err2.Error() != err.Error() {
			t.Fatalf("errors differ between parses:\n%v\n---\n%v", err, err2)
		}
	})
}

// countLines counts lines the way YAML does: "\r\n", "\r", "\n" and the
// Unicode breaks NEL, LS and PS each end a line.
func countLines(data []byte) int {
	s := string(bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n")))
	n := 1
	for _, r := range s {
		switch r {
		case '\n', '\r', '\u0085', '\u2028', '\u2029':
			n++
		}
	}
	return n
}
