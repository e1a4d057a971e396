package config

import (
	"os"
	"strings"
	"testing"
)

// readmeExamples returns the ```yaml blocks of the configuration reference
// in the repository README, in order. The first is the one integration
// tests run through `strata validate`.
func readmeExamples(t *testing.T) []string {
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
	var blocks []string
	for {
		_, rest, ok := strings.Cut(section, "```yaml\n")
		if !ok {
			break
		}
		block, after, ok := strings.Cut(rest, "\n```")
		if !ok {
			t.Fatal("unterminated ```yaml block in the configuration reference")
		}
		blocks = append(blocks, block+"\n")
		section = after
	}
	if len(blocks) == 0 {
		t.Fatal("configuration reference has no ```yaml block")
	}
	return blocks
}

// TestReadmeExample checks that each documented example is valid, with
// the certificate and error files made at the relative paths they name.
func TestReadmeExample(t *testing.T) {
	examples := readmeExamples(t)
	dir := t.TempDir()
	writeKeyPair(t, dir, "certs/site.pem", "certs/site.key")
	writeKeyPair(t, dir, "certs/client.pem", "certs/client.key")
	writeCA(t, dir, "certs/clients-ca.pem")
	writeCA(t, dir, "certs/backend-ca.pem")
	writeFile(t, dir, "errors/503.html", []byte("<h1>503 Service Unavailable</h1>\n"))
	writeFile(t, dir, "errors/504.html", []byte("<h1>504 Gateway Timeout</h1>\n"))

	for i, example := range examples {
		cfg := parseOK(t, dir, example)
		if len(cfg.Frontends) == 0 || len(cfg.Backends) == 0 {
			t.Fatalf("example %d has %d frontends and %d backends", i+1, len(cfg.Frontends), len(cfg.Backends))
		}
	}
	// The integration tests run the first example through `strata
	// validate`, which builds it; keep it mode tcp until cmd/graph serves
	// mode http, then drop this check.
	for _, f := range parseOK(t, dir, examples[0]).Frontends {
		if f.Mode != ModeTCP {
			t.Errorf("first README example: frontend %s is mode %s; keep that example mode tcp", f.Name, f.Mode)
		}
	}
	// Every key the table documents must appear in an example, so that the
	// examples stay the complete reference they claim to be.
	all := strings.Join(examples, "\n")
	for _, keys := range [][]string{topKeys, globalKeys, logKeys, defaultsKeys, timeoutKeys, frontendKeys,
		frontendTLSKeys, bindKeys, certificateKeys, clientAuthKeys, l4Keys, rateKeys, routeKeys, backendKeys, serverKeys,
		backendTLSKeys, healthKeys, passiveKeys, queueKeys, httpLimitsKeys, httpRuleKeys, headerMatchKeys,
		headersKeys, headerRulesKeys, forwardedKeys, requestIDKeys, redirectKeys, cookieKeys,
		acmeKeys, eabKeys, acmeRetryKeys, challengeKeys, onDemandKeys, onDemandRate, onDemandName, fallbackKeys} {
		for _, k := range keys {
			if !strings.Contains(all, k+":") {
				t.Errorf("README examples never use key %q", k)
			}
		}
	}
}
