package certs

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// File names of the internal CA inside its directory.
const (
	rootCertFile  = "root.crt"
	rootKeyFile   = "root.key"
	interCertFile = "intermediate.crt"
	interKeyFile  = "intermediate.key"
)

const (
	// RootCommonName is the subject common name of the internal root.
	RootCommonName = "strata internal root"
	// IntermediateCommonName is the subject common name of the intermediate.
	IntermediateCommonName = "strata internal intermediate"
	// DefaultLifetime is the lifetime of a leaf when IssueOptions gives none.
	DefaultLifetime = 7 * 24 * time.Hour

	// caBackdate moves the start of CA certificates back, for peers whose
	// clocks are a little behind.
	caBackdate = time.Hour
)

// IssueOptions configures a leaf certificate made by [CA.Issue].
type IssueOptions struct {
	// Lifetime is how long the leaf is valid; DefaultLifetime when zero. It
	// is cut short when the intermediate expires sooner.
	Lifetime time.Duration
	// Client adds the client-authentication extended key usage, for
	// presenting the leaf to a backend that asks for one; every leaf can
	// also authenticate a server.
	Client bool
	// NotBefore is the start of validity; now when zero. Tests set it in the
	// past to make certificates that are near expiry or expired.
	NotBefore time.Time
}

// CA is the internal certificate authority: a long-lived root, kept in a
// directory, and an intermediate signed by it that signs leaves and is
// renewed when a third of its life is left. It is safe for concurrent use;
// two processes must not open the same directory at once.
type CA struct {
	dir    string
	logger *slog.Logger

	root    *x509.Certificate
	rootKey crypto.Signer
	rootPEM []byte

	mu    sync.Mutex // guards inter and its renewal
	inter *issuer
}

// issuer is a certificate with the key that signs with it.
type issuer struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// OpenCA opens the internal CA kept in dir, creating dir (0700) and the root
// and intermediate when they are missing, and renewing the intermediate when
// less than a third of its life is left. Keys are written 0600, every file
// atomically. A nil logger is silent.
func OpenCA(dir string, logger *slog.Logger) (*CA, error) {
	ca := &CA{dir: dir, logger: orDiscard(logger)}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("certs: ca: %w", err)
	}
	now := time.Now()
	fresh, err := ca.openRoot(now)
	if err != nil {
		return nil, err
	}
	if fresh {
		// An intermediate left from another root would not chain.
		if ca.inter, err = ca.makeIntermediate(now); err != nil {
			return nil, err
		}
	} else if err := ca.openIntermediate(now); err != nil {
		return nil, err
	}
	if _, err := ca.issuer(now); err != nil {
		return nil, err
	}
	return ca, nil
}

// openRoot loads the root, or makes one when neither file exists; fresh
// reports that it was made.
func (ca *CA) openRoot(now time.Time) (fresh bool, err error) {
	certPath, keyPath := ca.path(rootCertFile), ca.path(rootKeyFile)
	switch haveCert, haveKey := exists(certPath), exists(keyPath); {
	case !haveCert && !haveKey:
		return true, ca.makeRoot(now)
	case !haveKey:
		return false, fmt.Errorf("certs: ca: %s exists but %s is missing: restore it, or remove %s to make a new root (clients must then trust the new root)", certPath, keyPath, certPath)
	case !haveCert:
		return false, fmt.Errorf("certs: ca: %s exists but %s is missing: restore it, or remove %s to make a new root (clients must then trust the new root)", keyPath, certPath, keyPath)
	}
	c, err := LoadPair(certPath, keyPath)
	if err != nil {
		return false, fmt.Errorf("%w; the internal CA root in %s cannot be used: restore root.crt and root.key from a backup, or remove both to make a new root (clients must then trust the new root)", err, ca.dir)
	}
	if !c.Leaf.IsCA {
		return false, fmt.Errorf("certs: ca: %s is not a CA certificate", certPath)
	}
	if now.After(c.Leaf.NotAfter) {
		return false, fmt.Errorf("certs: ca: the root %s expired on %s: remove %s and %s to make a new one (clients must then trust the new root)",
			certPath, c.Leaf.NotAfter.Format(time.DateOnly), certPath, keyPath)
	}
	ca.root, ca.rootKey = c.Leaf, c.PrivateKey.(crypto.Signer)
	ca.rootPEM = encodeChain([][]byte{c.Leaf.Raw})
	return false, nil
}

// makeRoot generates a new root and writes it to the directory.
func (ca *CA) makeRoot(now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("certs: ca: generating root key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: RootCommonName, Organization: []string{"strata"}},
		NotBefore:             now.Add(-caBackdate),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
	}
	cert, err := sign(tmpl, tmpl, key, key)
	if err != nil {
		return fmt.Errorf("certs: ca: signing root: %w", err)
	}
	if err := ca.writePair(rootCertFile, rootKeyFile, cert, key); err != nil {
		return err
	}
	ca.root, ca.rootKey = cert, key
	ca.rootPEM = encodeChain([][]byte{cert.Raw})
	ca.logger.Info("internal CA root created", "dir", ca.dir, "not_after", cert.NotAfter,
		"hint", "clients must trust "+ca.path(rootCertFile))
	return nil
}

// openIntermediate loads the intermediate, or makes one when it is missing or
// does not belong to the root.
func (ca *CA) openIntermediate(now time.Time) error {
	certPath, keyPath := ca.path(interCertFile), ca.path(interKeyFile)
	if !exists(certPath) && !exists(keyPath) {
		var err error
		ca.inter, err = ca.makeIntermediate(now)
		return err
	}
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return fmt.Errorf("certs: ca: %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return fmt.Errorf("certs: ca: %w", err)
	}
	chain, err := parseCerts(certPEM, certPath)
	if err != nil {
		return fmt.Errorf("%w; the internal CA intermediate cannot be used: remove %s and %s to make a new one", err, certPath, keyPath)
	}
	key, err := parseKey(keyPEM, keyPath)
	if err != nil {
		return fmt.Errorf("%w; the internal CA intermediate cannot be used: remove %s and %s to make a new one", err, certPath, keyPath)
	}
	cert := chain[0]
	// A mismatch is what an interrupted renewal leaves behind, and the
	// intermediate is replaceable at any time: make a new one.
	if !keyMatches(cert, key) || cert.CheckSignatureFrom(ca.root) != nil {
		ca.logger.Warn("internal CA intermediate does not match its key or the root; making a new one", "file", certPath)
		ca.inter, err = ca.makeIntermediate(now)
		return err
	}
	ca.inter = &issuer{cert: cert, key: key}
	return nil
}

// makeIntermediate generates an intermediate valid from now, signs it with
// the root and writes it to the directory.
func (ca *CA) makeIntermediate(now time.Time) (*issuer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: ca: generating intermediate key: %w", err)
	}
	notAfter := now.AddDate(1, 0, 0)
	if notAfter.After(ca.root.NotAfter) {
		notAfter = ca.root.NotAfter
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: IntermediateCommonName, Organization: []string{"strata"}},
		NotBefore:             now.Add(-caBackdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	cert, err := sign(tmpl, ca.root, key, ca.rootKey)
	if err != nil {
		return nil, fmt.Errorf("certs: ca: signing intermediate: %w", err)
	}
	if err := ca.writePair(interCertFile, interKeyFile, cert, key); err != nil {
		return nil, err
	}
	ca.logger.Info("internal CA intermediate issued", "dir", ca.dir, "serial", cert.SerialNumber.Text(16), "not_after", cert.NotAfter)
	return &issuer{cert: cert, key: key}, nil
}

// issuer returns the intermediate to sign with at now, renewing it first when
// less than a third of its life is left. A failed renewal is logged and the
// old intermediate used while it is still valid.
func (ca *CA) issuer(now time.Time) (*issuer, error) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if now.Before(renewAt(ca.inter.cert)) {
		return ca.inter, nil
	}
	next, err := ca.makeIntermediate(now)
	if err != nil {
		if now.Before(ca.inter.cert.NotAfter) {
			ca.logger.Error("internal CA intermediate renewal failed; using the old one", "dir", ca.dir, "error", err)
			return ca.inter, nil
		}
		return nil, err
	}
	ca.inter = next
	return next, nil
}

// RootPEM returns the PEM encoding of the root certificate, for clients to
// trust. The caller may modify the returned slice.
func (ca *CA) RootPEM() []byte { return bytes.Clone(ca.rootPEM) }

// RootPool returns a new pool holding only the root, for verifying
// certificates this CA issued.
func (ca *CA) RootPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.root)
	return pool
}

// Issue makes a leaf certificate for names, each a DNS name (a wildcard
// "*.example.com" allowed) or an IP address, with a new ECDSA P-256 key. The
// chain holds the leaf and the intermediate, and Leaf is filled in.
func (ca *CA) Issue(names []string, opts IssueOptions) (*tls.Certificate, error) {
	dns, ips, err := parseNames(names)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	iss, err := ca.issuer(now)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: ca: generating key: %w", err)
	}
	lifetime := opts.Lifetime
	if lifetime <= 0 {
		lifetime = DefaultLifetime
	}
	notBefore := opts.NotBefore
	if notBefore.IsZero() {
		notBefore = now
	}
	notAfter := notBefore.Add(lifetime)
	if notAfter.After(iss.cert.NotAfter) {
		notAfter = iss.cert.NotAfter
	}
	usage := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	if opts.Client {
		usage = append(usage, x509.ExtKeyUsageClientAuth)
	}
	tmpl := &x509.Certificate{
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		DNSNames:              dns,
		IPAddresses:           ips,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           usage,
		BasicConstraintsValid: true,
	}
	if first := normalizeName(names[0]); len(first) <= 64 {
		tmpl.Subject.CommonName = first
	}
	leaf, err := sign(tmpl, iss.cert, key, iss.key)
	if err != nil {
		return nil, fmt.Errorf("certs: ca: signing leaf for %v: %w", names, err)
	}
	return &tls.Certificate{
		Certificate: [][]byte{leaf.Raw, iss.cert.Raw},
		PrivateKey:  key,
		Leaf:        leaf,
	}, nil
}

// Managed returns a certificate for names that renews itself: see
// [ManagedCert]. The first certificate is issued now with opts; renewals
// ignore opts.NotBefore. An error (such as an invalid name) is returned by
// the ManagedCert's methods.
func (ca *CA) Managed(names []string, opts IssueOptions) *ManagedCert {
	m := &ManagedCert{ca: ca, names: slices.Clone(names), opts: opts}
	if c, err := ca.Issue(m.names, opts); err != nil {
		ca.logger.Error("internal CA cannot issue a managed certificate", "names", names, "error", err)
	} else {
		m.cur.Store(c)
	}
	m.opts.NotBefore = time.Time{}
	return m
}

// ManagedCert is a certificate from the internal CA that renews itself when
// less than a third of its lifetime is left: lazily, when a handshake asks
// for it, and in the background while Run runs. It never serves an expired
// certificate when a new one can be issued. It is safe for concurrent use.
type ManagedCert struct {
	ca    *CA
	names []string
	opts  IssueOptions

	cur atomic.Pointer[tls.Certificate] // read lock-free by handshakes
	mu  sync.Mutex                      // serialises renewal
}

// Certificate returns the current certificate, renewing it first when it is
// due.
func (m *ManagedCert) Certificate() (*tls.Certificate, error) {
	now := time.Now()
	if c := m.cur.Load(); c != nil && now.Before(renewAt(c.Leaf)) {
		return c, nil
	}
	return m.renew(now)
}

// GetCertificate has the signature of tls.Config.GetCertificate.
func (m *ManagedCert) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return m.Certificate()
}

// GetClientCertificate has the signature of
// tls.Config.GetClientCertificate, for presenting the certificate to a
// backend (issue it with IssueOptions.Client).
func (m *ManagedCert) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return m.Certificate()
}

// Run renews the certificate in the background, when it is due, until ctx
// is done.
func (m *ManagedCert) Run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		wait := m.retryDelay()
		if c, err := m.Certificate(); err == nil {
			if d := time.Until(renewAt(c.Leaf)); d > 0 {
				wait = d
			}
		}
		t.Reset(wait)
	}
}

// renew issues a new certificate unless another goroutine just did. When
// issuing fails it keeps serving the old certificate while that is valid.
func (m *ManagedCert) renew(now time.Time) (*tls.Certificate, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.cur.Load()
	if old != nil && now.Before(renewAt(old.Leaf)) {
		return old, nil
	}
	c, err := m.ca.Issue(m.names, m.opts)
	if err != nil {
		if old != nil && now.Before(old.Leaf.NotAfter) {
			m.ca.logger.Error("managed certificate renewal failed; serving the old one", "names", m.names, "not_after", old.Leaf.NotAfter, "error", err)
			return old, nil
		}
		return nil, err
	}
	m.cur.Store(c)
	m.ca.logger.Info("managed certificate renewed", "names", m.names, "serial", c.Leaf.SerialNumber.Text(16), "not_after", c.Leaf.NotAfter)
	return c, nil
}

// retryDelay is how long Run waits after a failed renewal: a tenth of the
// lifetime, between 100 ms and a minute.
func (m *ManagedCert) retryDelay() time.Duration {
	lifetime := m.opts.Lifetime
	if lifetime <= 0 {
		lifetime = DefaultLifetime
	}
	return min(max(lifetime/10, 100*time.Millisecond), time.Minute)
}

// renewAt returns when a certificate has a third of its lifetime left.
func renewAt(c *x509.Certificate) time.Time {
	return c.NotAfter.Add(-c.NotAfter.Sub(c.NotBefore) / 3)
}

// parseNames splits names into DNS names and IP addresses, rejecting an
// empty list and anything that is neither.
func parseNames(names []string) (dns []string, ips []net.IP, err error) {
	if len(names) == 0 {
		return nil, nil, errors.New("certs: ca: no names to issue a certificate for")
	}
	for _, n := range names {
		if a, err := netip.ParseAddr(n); err == nil {
			if a.Zone() != "" {
				return nil, nil, fmt.Errorf("certs: ca: invalid name %q: an IP address in a certificate has no zone", n)
			}
			ips = append(ips, net.IP(a.Unmap().AsSlice()))
			continue
		}
		d := normalizeName(n)
		if !validDNSName(d) {
			return nil, nil, fmt.Errorf("certs: ca: invalid name %q: want a DNS name, a wildcard such as *.example.com, or an IP address", n)
		}
		if !slices.Contains(dns, d) {
			dns = append(dns, d)
		}
	}
	return dns, ips, nil
}

// validDNSName reports whether name (lower case, no trailing dot) is a host
// name, optionally with a leading "*." wildcard label.
func validDNSName(name string) bool {
	name = strings.TrimPrefix(name, "*.")
	if name == "" || len(name) > 253 {
		return false
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' || !hostLabel(label) {
			return false
		}
	}
	return true
}

// sign makes a certificate from tmpl, with a random 128-bit serial, for
// key's public half, signed by parentKey as parent.
func sign(tmpl, parent *x509.Certificate, key, parentKey crypto.Signer) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// writePair writes a CA certificate and its key into the directory, the key
// first: a torn write leaves a mismatch that the next open reports.
func (ca *CA) writePair(certName, keyName string, cert *x509.Certificate, key crypto.Signer) error {
	keyPEM, err := encodeKey(key)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(ca.path(keyName), keyPEM, 0o600); err != nil {
		return err
	}
	return writeFileAtomic(ca.path(certName), encodeChain([][]byte{cert.Raw}), 0o644)
}

func (ca *CA) path(name string) string { return filepath.Join(ca.dir, name) }

// exists reports whether path exists; other errors surface when it is read.
func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, os.ErrNotExist)
}
