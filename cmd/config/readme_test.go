package config

import (
	"os"
	"strings"
	"testing"
)

// readmeExample returns the first ```yaml block after the configuration
// reference marker in the repository README.
func readmeExample(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "<!-- BEGIN CONFIG REFERENCE (owned by cmd/config) -->")
	if !ok {
		t.Fatal("README.md has no configuration reference marker")
	}
	section, _, _ = strings.Cut(section, "<!-- END CONFIG REFERENCE -->")
	_, block, ok := strings.Cut(section, "```yaml\n")
	if !ok {
		t.Fatal("configuration reference has no ```yaml block")
	}
	block, _, ok = strings.Cut(block, "\n```")
	if !ok {
		t.Fatal("unterminated ```yaml block in the configuration reference")
	}
	return block + "\n"
}

// TestReadmeExample checks that the documented example is valid, with
// certificate files made at the relative paths it names.
func TestReadmeExample(t *testing.T) {
	example := readmeExample(t)
	dir := t.TempDir()
	writeKeyPair(t, dir, "certs/site.pem", "certs/site.key")
	writeKeyPair(t, dir, "certs/client.pem", "certs/client.key")
	writeCA(t, dir, "certs/clients-ca.pem")
	writeCA(t, dir, "certs/backend-ca.pem")

	cfg := parseOK(t, dir, example)
	if len(cfg.Frontends) == 0 || len(cfg.Backends) == 0 {
		t.Fatalf("example has %d frontends and %d backends", len(cfg.Frontends), len(cfg.Backends))
	}
	// Every key the table documents must appear in the example, so that the
	// example stays the complete reference it claims to be.
	for _, keys := range [][]string{topKeys, globalKeys, logKeys, defaultsKeys, timeoutKeys, frontendKeys,
		frontendTLSKeys, certificateKeys, clientAuthKeys, l4Keys, rateKeys, routeKeys, backendKeys, serverKeys,
		backendTLSKeys, healthKeys, passiveKeys, queueKeys} {
		for _, k := range keys {
			if !strings.Contains(example, k+":") {
				t.Errorf("README example never uses key %q", k)
			}
		}
	}
}
