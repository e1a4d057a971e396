package graph

import (
	"crypto/tls"
	"path/filepath"
	"testing"

	"github.com/strata-proxy/strata/certs"
)

// TestCertificateSource: a static certificate wins for the names it
// covers; every other name, and a hello without SNI, gets the internal
// CA's certificate.
func TestCertificateSource(t *testing.T) {
	dir := t.TempDir()
	ca, err := certs.OpenCA(filepath.Join(dir, "ca"), nil)
	if err != nil {
		t.Fatal(err)
	}
	static, err := ca.Issue([]string{"static.test"}, certs.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := certs.WriteFiles(static, dir, "static"); err != nil {
		t.Fatal(err)
	}
	store, err := certs.NewStore([]certs.Pair{{Cert: filepath.Join(dir, "static.crt"), Key: filepath.Join(dir, "static.key")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	src := &certificateSource{store: store, internal: ca.Managed([]string{"app.lan", "127.0.0.1"}, certs.IssueOptions{})}
	for _, tc := range []struct{ sni, want string }{
		{"static.test", "static.test"},
		{"app.lan", "app.lan"},
		{"", "app.lan"},
	} {
		c, err := src.GetCertificate(&tls.ClientHelloInfo{ServerName: tc.sni})
		if err != nil {
			t.Fatalf("SNI %q: %v", tc.sni, err)
		}
		if got := c.Leaf.DNSNames[0]; got != tc.want {
			t.Errorf("SNI %q got the certificate for %s, want %s", tc.sni, got, tc.want)
		}
	}
}
