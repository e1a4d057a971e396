package main

import (
	"io"
	"path/filepath"
	"testing"

	"github.com/strata-proxy/strata/certs"
)

// TestProxyServesH3ByDefault checks that `strata proxy` with --cert/--key
// in mode http binds QUIC on the --from address, as Caddy does, and that
// --no-h3 and mode tcp do not.
func TestProxyServesH3ByDefault(t *testing.T) {
	dir := t.TempDir()
	ca, err := certs.OpenCA(filepath.Join(dir, "ca"), nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue([]string{"localhost"}, certs.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := certs.WriteFiles(leaf, dir, "site"); err != nil {
		t.Fatal(err)
	}
	cert, key := filepath.Join(dir, "site.crt"), filepath.Join(dir, "site.key")
	for _, tc := range []struct {
		name string
		args []string
		quic bool
	}{
		{"tls http", []string{"--from", "127.0.0.1:8443", "--to", "http://127.0.0.1:8080", "--cert", cert, "--key", key}, true},
		{"no-h3", []string{"--from", "127.0.0.1:8443", "--to", "http://127.0.0.1:8080", "--cert", cert, "--key", key, "--no-h3"}, false},
		{"plain http", []string{"--from", "127.0.0.1:8080", "--to", "http://127.0.0.1:8081"}, false},
		{"tls tcp", []string{"--from", "127.0.0.1:8443", "--mode", "tcp", "--to", "tcp://127.0.0.1:8080", "--cert", cert, "--key", key}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := proxyConfig(tc.args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			b := cfg.Frontends[0].Bind
			if len(b) != 1 || b[0].QUIC != tc.quic {
				t.Fatalf("bind %+v, want one address with QUIC %v", b, tc.quic)
			}
		})
	}
}
