package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned makes a self-signed certificate for key with the given subject
// common name and DNS names.
func selfSigned(t *testing.T, key crypto.Signer, cn string, dns ...string) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     dns,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestLoadPair(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	dir := t.TempDir()
	good := writePair(t, dir, "good", issue(t, ca, IssueOptions{}, "good.test"))
	other := writePair(t, dir, "other", issue(t, ca, IssueOptions{}, "other.test"))

	write := func(name string, data []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	garbage := write("garbage.pem", []byte("this is not PEM\n"))

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaCert := write("rsa.crt", selfSigned(t, rsaKey, "rsa.test", "rsa.test"))
	rsaPKCS1 := write("rsa.key", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}))

	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	ecCert := write("ec.crt", selfSigned(t, ecKey, "ec.test", "ec.test"))
	// SEC 1 keys often come with an EC PARAMETERS block first.
	ecSEC1 := write("ec.key", append([]byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})...))

	tests := []struct {
		name      string
		cert, key string
		wantCN    string // on success
		wantErr   []string
		wantIs    error
	}{
		{name: "good PKCS#8", cert: good.Cert, key: good.Key, wantCN: "good.test"},
		{name: "PKCS#1 RSA", cert: rsaCert, key: rsaPKCS1, wantCN: "rsa.test"},
		{name: "SEC 1 EC", cert: ecCert, key: ecSEC1, wantCN: "ec.test"},
		{name: "mismatched key", cert: good.Cert, key: other.Key,
			wantErr: []string{"certs: " + other.Key + ": private key does not match the certificate in " + good.Cert}, wantIs: ErrKeyMismatch},
		{name: "garbage cert", cert: garbage, key: good.Key,
			wantErr: []string{"certs: " + garbage + ": no CERTIFICATE block"}},
		{name: "garbage key", cert: good.Cert, key: garbage,
			wantErr: []string{"certs: " + garbage + ": no PRIVATE KEY block"}},
		{name: "swapped files", cert: good.Key, key: good.Cert,
			wantErr: []string{good.Key, "no CERTIFICATE block", "swapped"}},
		{name: "missing cert", cert: filepath.Join(dir, "nope.crt"), key: good.Key,
			wantErr: []string{"nope.crt"}, wantIs: os.ErrNotExist},
		{name: "missing key", cert: good.Cert, key: filepath.Join(dir, "nope.key"),
			wantErr: []string{"nope.key"}, wantIs: os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := LoadPair(tt.cert, tt.key)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("LoadPair: %v", err)
				}
				if c.Leaf == nil || c.Leaf.Subject.CommonName != tt.wantCN {
					t.Fatalf("Leaf = %v, want CN %q", c.Leaf, tt.wantCN)
				}
				return
			}
			if err == nil {
				t.Fatalf("LoadPair succeeded, want error containing %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %q is not %v", err, tt.wantIs)
			}
		})
	}
}

func TestLoadPool(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "root.pem")
	if err := os.WriteFile(root, ca.RootPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	p := writePair(t, dir, "leaf", issue(t, ca, IssueOptions{}, "leaf.test"))

	pool, err := LoadPool(root)
	if err != nil {
		t.Fatalf("LoadPool: %v", err)
	}
	c, err := LoadPair(p.Cert, p.Key)
	if err != nil {
		t.Fatal(err)
	}
	inter := x509.NewCertPool()
	inter.AddCert(mustParse(t, c.Certificate[1]))
	if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, DNSName: "leaf.test"}); err != nil {
		t.Fatalf("leaf does not verify against the loaded pool: %v", err)
	}

	if _, err := LoadPool(p.Key); err == nil || !strings.Contains(err.Error(), "no CERTIFICATE block") {
		t.Fatalf("LoadPool(key file) = %v, want no CERTIFICATE block", err)
	}
}

func TestWriteFilesPermissions(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	dir := t.TempDir()
	c := issue(t, ca, IssueOptions{}, "perm.test")
	p := writePair(t, dir, "perm", c)
	fi, err := os.Stat(p.Key)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key mode = %v, want 0600", perm)
	}
	got, err := LoadPair(p.Cert, p.Key)
	if err != nil {
		t.Fatal(err)
	}
	if serial(got) != serial(c) || len(got.Certificate) != 2 {
		t.Errorf("round trip: serial %s, chain %d; want %s, 2", serial(got), len(got.Certificate), serial(c))
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("directory holds %d entries, want 2 (no temporary files left)", len(entries))
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
