package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// newKey makes an ECDSA P-256 key and its PEM encoding.
func newKey(t *testing.T) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

// selfSigned makes a self-signed certificate for key, usable as a leaf and
// as a CA.
func selfSigned(t *testing.T, key *ecdsa.PrivateKey, names ...string) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "strata test"},
		DNSNames:              names,
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// writeFile writes data at dir/name, making parent directories.
func writeFile(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeKeyPair writes a matching certificate and key.
func writeKeyPair(t *testing.T, dir, certName, keyName string) {
	t.Helper()
	key, keyPEM := newKey(t)
	writeFile(t, dir, certName, selfSigned(t, key, "example.com", "*.example.com"))
	writeFile(t, dir, keyName, keyPEM)
}

// writeMismatchedPair writes a certificate and a key that does not match it.
func writeMismatchedPair(t *testing.T, dir, certName, keyName string) {
	t.Helper()
	key, _ := newKey(t)
	_, otherPEM := newKey(t)
	writeFile(t, dir, certName, selfSigned(t, key, "example.com"))
	writeFile(t, dir, keyName, otherPEM)
}

// writeCA writes a PEM file holding one CA certificate.
func writeCA(t *testing.T, dir, name string) {
	t.Helper()
	key, _ := newKey(t)
	writeFile(t, dir, name, selfSigned(t, key))
}

// testFiles writes the certificate files the tests' configurations name:
// site.pem/site.key, other.pem/other.key, ca.pem, client.pem/client.key, a
// mismatched pair bad.pem/bad.key, empty-ca.pem with no certificates, and
// garbage.pem.
func testFiles(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeKeyPair(t, dir, "site.pem", "site.key")
	writeKeyPair(t, dir, "other.pem", "other.key")
	writeKeyPair(t, dir, "client.pem", "client.key")
	writeMismatchedPair(t, dir, "bad.pem", "bad.key")
	writeCA(t, dir, "ca.pem")
	writeFile(t, dir, "empty-ca.pem", []byte("# no certificates here\n"))
	writeFile(t, dir, "garbage.pem", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	return dir
}
