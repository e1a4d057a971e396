package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrKeyMismatch is wrapped by the error LoadPair returns when the private
// key does not belong to the certificate.
var ErrKeyMismatch = errors.New("private key does not match the certificate")

// LoadPair loads a PEM certificate chain (leaf first) from certFile and its
// private key (PKCS#8, PKCS#1 or SEC 1 EC) from keyFile, checks that the key
// belongs to the leaf, and returns the pair with Leaf filled in.
//
// Errors name the file and the reason, for example
// "certs: site.pem: no CERTIFICATE block".
func LoadPair(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	return parsePair(certPEM, keyPEM, certFile, keyFile)
}

// parsePair is LoadPair without the file system; the names are for errors.
func parsePair(certPEM, keyPEM []byte, certName, keyName string) (*tls.Certificate, error) {
	chain, err := parseCerts(certPEM, certName)
	if err != nil {
		return nil, err
	}
	key, err := parseKey(keyPEM, keyName)
	if err != nil {
		return nil, err
	}
	leaf := chain[0]
	if !keyMatches(leaf, key) {
		return nil, fmt.Errorf("certs: %s: %w in %s", keyName, ErrKeyMismatch, certName)
	}
	c := &tls.Certificate{PrivateKey: key, Leaf: leaf}
	for _, x := range chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c, nil
}

// LoadPool reads every certificate in the PEM file caFile into a new pool,
// for verifying peers (backends, or clients presenting certificates).
func LoadPool(caFile string) (*x509.CertPool, error) {
	data, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	roots, err := parseCerts(data, caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range roots {
		pool.AddCert(c)
	}
	return pool, nil
}

// parseCerts parses every CERTIFICATE block of data, in order; name is the
// file name for errors.
func parseCerts(data []byte, name string) ([]*x509.Certificate, error) {
	var (
		certs  []*x509.Certificate
		others []string
	)
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			others = append(others, block.Type)
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certs: %s: certificate %d: %w", name, len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		if len(others) > 0 {
			return nil, fmt.Errorf("certs: %s: no CERTIFICATE block (found %s: are the certificate and key files swapped?)", name, others[0])
		}
		return nil, fmt.Errorf("certs: %s: no CERTIFICATE block", name)
	}
	return certs, nil
}

// parseKey returns the first private key in data; name is the file name for
// errors.
func parseKey(data []byte, name string) (crypto.Signer, error) {
	var others []string
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, fmt.Errorf("certs: %s: encrypted private keys are not supported; decrypt it (openssl pkey -in %s -out plain.key)", name, name)
		default:
			others = append(others, block.Type)
			continue
		}
		if _, ok := block.Headers["Proc-Type"]; ok {
			return nil, fmt.Errorf("certs: %s: encrypted private keys are not supported; decrypt it (openssl pkey -in %s -out plain.key)", name, name)
		}
		if err != nil {
			return nil, fmt.Errorf("certs: %s: %s: %w", name, block.Type, err)
		}
		switch k := key.(type) {
		case *ecdsa.PrivateKey:
			return k, nil
		case *rsa.PrivateKey:
			return k, nil
		case ed25519.PrivateKey:
			return k, nil
		default:
			return nil, fmt.Errorf("certs: %s: unsupported private key type %T", name, key)
		}
	}
	for _, t := range others {
		if t == "CERTIFICATE" {
			return nil, fmt.Errorf("certs: %s: no PRIVATE KEY block (found CERTIFICATE: are the certificate and key files swapped?)", name)
		}
	}
	return nil, fmt.Errorf("certs: %s: no PRIVATE KEY block", name)
}

// keyMatches reports whether key is the private half of leaf's public key.
func keyMatches(leaf *x509.Certificate, key crypto.Signer) bool {
	pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(key.Public())
}

// encodeChain returns the PEM encoding of a certificate chain.
func encodeChain(ders [][]byte) []byte {
	var buf bytes.Buffer
	for _, der := range ders {
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	return buf.Bytes()
}

// encodeKey returns the PKCS#8 PEM encoding of a private key.
func encodeKey(key crypto.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("certs: encoding private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// WriteFiles writes cert's chain to dir/base.crt (0644) and its private key
// to dir/base.key (0600), each atomically (temporary file, then rename), so
// that a reader such as a [Store] never sees a half-written file. The key is
// written first: a reader that sees the new certificate also finds its key.
func WriteFiles(cert *tls.Certificate, dir, base string) error {
	if cert == nil || len(cert.Certificate) == 0 || cert.PrivateKey == nil {
		return errors.New("certs: WriteFiles: certificate without chain or key")
	}
	keyPEM, err := encodeKey(cert.PrivateKey)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, base+".key"), keyPEM, 0o600); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, base+".crt"), encodeChain(cert.Certificate), 0o644)
}

// writeFileAtomic replaces path with data: it writes a temporary file in the
// same directory, syncs it and renames it over path.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("certs: writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
			err = fmt.Errorf("certs: writing %s: %w", path, err)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		_ = f.Close()
		return err
	}
	if _, err = f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err = f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	// Make the rename durable; not every file system supports syncing a
	// directory, and the data is already safe, so failure here is ignored.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
