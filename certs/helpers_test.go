package certs

import (
	"crypto/tls"
	"path/filepath"
	"testing"
	"time"
)

// newTestCA opens a fresh internal CA in a temporary directory.
func newTestCA(t *testing.T) *CA {
	t.Helper()
	ca, err := OpenCA(filepath.Join(t.TempDir(), "ca"), nil)
	if err != nil {
		t.Fatalf("OpenCA: %v", err)
	}
	return ca
}

// issue makes a server certificate for names.
func issue(t *testing.T, ca *CA, opts IssueOptions, names ...string) *tls.Certificate {
	t.Helper()
	c, err := ca.Issue(names, opts)
	if err != nil {
		t.Fatalf("Issue(%v): %v", names, err)
	}
	return c
}

// writePair writes c as dir/base.crt and dir/base.key and returns the Pair.
func writePair(t *testing.T, dir, base string, c *tls.Certificate) Pair {
	t.Helper()
	if err := WriteFiles(c, dir, base); err != nil {
		t.Fatalf("WriteFiles: %v", err)
	}
	return Pair{Cert: filepath.Join(dir, base+".crt"), Key: filepath.Join(dir, base+".key")}
}

// serial returns the serial number of c's leaf, or "<nil>".
func serial(c *tls.Certificate) string {
	if c == nil {
		return "<nil>"
	}
	return leafOf(c).SerialNumber.Text(16)
}

// waitFor polls cond every 10 ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
