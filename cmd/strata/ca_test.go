package main

import (
	"bytes"
	"crypto/x509"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-proxy/strata/certs"
)

func TestCACommands(t *testing.T) {
	dir := t.TempDir()
	data, out := filepath.Join(dir, "data"), filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"ca", "root", "--data", data}, &stdout, &stderr); code != 0 {
		t.Fatalf("ca root: exit %d: %s", code, stderr.String())
	}
	root := stdout.Bytes()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(root) {
		t.Fatalf("ca root printed no certificate: %q", root)
	}
	stdout.Reset()
	if code := run([]string{"ca", "issue", "api.internal", "10.0.0.7", "--out", out, "--client", "--data", data}, &stdout, &stderr); code != 0 {
		t.Fatalf("ca issue: exit %d: %s", code, stderr.String())
	}
	crt, key := filepath.Join(out, "api.internal.crt"), filepath.Join(out, "api.internal.key")
	if got := strings.Fields(stdout.String()); len(got) != 2 || got[0] != crt || got[1] != key {
		t.Fatalf("ca issue printed %q", stdout.String())
	}
	c, err := certs.LoadPair(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	inter := x509.NewCertPool()
	for _, der := range c.Certificate[1:] {
		ic, _ := x509.ParseCertificate(der)
		inter.AddCert(ic)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := c.Leaf.Verify(x509.VerifyOptions{DNSName: "api.internal", Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Fatalf("issued certificate does not verify against the printed root for %v: %v", usage, err)
		}
	}
	// The root is stable: a second run prints the same one.
	stdout.Reset()
	run([]string{"ca", "root", "--data", data}, &stdout, &stderr)
	if !bytes.Equal(stdout.Bytes(), root) {
		t.Fatal("ca root changed between runs")
	}
	for _, bad := range [][]string{{"ca"}, {"ca", "sign"}, {"ca", "issue", "--out", out}, {"ca", "issue", "a.internal"}, {"ca", "root", "extra"}} {
		if code := run(bad, &stdout, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2", bad, code)
		}
	}
	if code := run([]string{"ca", "issue", "bad name!", "--out", out, "--data", data}, &stdout, &stderr); code != 1 {
		t.Errorf("invalid name: exit %d, want 1", code)
	}
}
