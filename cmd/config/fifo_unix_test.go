//go:build unix

package config

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestCertificateFIFO checks that a certificate path naming a FIFO is
// refused instead of blocking the parse.
func TestCertificateFIFO(t *testing.T) {
	dir := testFiles(t)
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.pem"), 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	es := parseErrors(t, dir, fe("    bind: \":443\"", "    tls: {certificates: [{cert: fifo.pem, key: site.key}]}", "    default_backend: b"))
	if len(es) != 1 || !strings.Contains(es[0].Msg, "certificate fifo.pem: not a regular file") {
		t.Errorf("got %v", es)
	}
}
