package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestOpenCACreatesAndReopens(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ca")
	ca, err := OpenCA(dir, nil)
	if err != nil {
		t.Fatalf("OpenCA: %v", err)
	}
	modes := map[string]os.FileMode{
		"":            0o700,
		rootKeyFile:   0o600,
		interKeyFile:  0o600,
		rootCertFile:  0o644,
		interCertFile: 0o644,
	}
	for name, want := range modes {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode = %v, want %v", filepath.Join(dir, name), got, want)
		}
	}
	root := ca.root
	if root.Subject.CommonName != RootCommonName || !root.IsCA {
		t.Errorf("root subject %q, IsCA %v", root.Subject.CommonName, root.IsCA)
	}
	if life := root.NotAfter.Sub(root.NotBefore); life < 9*365*24*time.Hour {
		t.Errorf("root lifetime %v, want about 10 years", life)
	}
	inter := ca.inter.cert
	if life := inter.NotAfter.Sub(inter.NotBefore); life < 364*24*time.Hour || life > 367*24*time.Hour {
		t.Errorf("intermediate lifetime %v, want about a year", life)
	}
	if err := inter.CheckSignatureFrom(root); err != nil {
		t.Errorf("intermediate not signed by the root: %v", err)
	}

	again, err := OpenCA(dir, nil)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if !bytes.Equal(again.RootPEM(), ca.RootPEM()) {
		t.Error("reopened CA has another root")
	}
	if again.inter.cert.SerialNumber.Cmp(inter.SerialNumber) != 0 {
		t.Error("reopened CA made a new intermediate")
	}
	// A leaf from one verifies with the other's pool.
	c := issue(t, again, IssueOptions{}, "x.test")
	verify(t, ca.RootPool(), c, "x.test", x509.ExtKeyUsageServerAuth)
}

func TestOpenCARenewsOldIntermediate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ca")
	ca, err := OpenCA(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Nine months old: a quarter of its life is left.
	old, err := ca.makeIntermediate(time.Now().AddDate(0, -9, 0))
	if err != nil {
		t.Fatal(err)
	}
	logger, logged := newLogger()
	again, err := OpenCA(dir, logger)
	if err != nil {
		t.Fatal(err)
	}
	inter := again.inter.cert
	if inter.SerialNumber.Cmp(old.cert.SerialNumber) == 0 {
		t.Fatal("old intermediate not renewed")
	}
	if time.Until(inter.NotAfter) < 300*24*time.Hour {
		t.Errorf("renewed intermediate expires %v", inter.NotAfter)
	}
	if !strings.Contains(logged.String(), "intermediate issued") {
		t.Errorf("renewal not logged: %s", logged)
	}
	// Written to disk: a third open keeps it.
	third, err := OpenCA(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if third.inter.cert.SerialNumber.Cmp(inter.SerialNumber) != 0 {
		t.Error("renewed intermediate not persisted")
	}
	verify(t, ca.RootPool(), issue(t, third, IssueOptions{}, "y.test"), "y.test", x509.ExtKeyUsageServerAuth)
}

func TestOpenCABadFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		damage  func(t *testing.T, dir string)
		wantErr []string
	}{
		{
			name:    "corrupt root key",
			damage:  func(t *testing.T, dir string) { clobber(t, filepath.Join(dir, rootKeyFile), "not a key") },
			wantErr: []string{rootKeyFile, "no PRIVATE KEY block", "root"},
		},
		{
			name: "corrupt root certificate",
			damage: func(t *testing.T, dir string) {
				clobber(t, filepath.Join(dir, rootCertFile), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
			},
			wantErr: []string{rootCertFile, "certificate 1"},
		},
		{
			name:    "missing root key",
			damage:  func(t *testing.T, dir string) { remove(t, filepath.Join(dir, rootKeyFile)) },
			wantErr: []string{rootKeyFile, "is missing"},
		},
		{
			name:    "corrupt intermediate certificate",
			damage:  func(t *testing.T, dir string) { clobber(t, filepath.Join(dir, interCertFile), "junk") },
			wantErr: []string{interCertFile, "no CERTIFICATE block", "remove"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ca")
			if _, err := OpenCA(dir, nil); err != nil {
				t.Fatal(err)
			}
			tt.damage(t, dir)
			_, err := OpenCA(dir, nil)
			if err == nil {
				t.Fatal("OpenCA succeeded on damaged files")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func clobber(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

// verify checks that c chains to roots through the intermediate in its chain
// for name and usage.
func verify(t *testing.T, roots *x509.CertPool, c *tls.Certificate, name string, usage x509.ExtKeyUsage) {
	t.Helper()
	if err := verifyErr(roots, c, name, usage); err != nil {
		t.Errorf("certificate for %v does not verify for %q: %v", c.Leaf.DNSNames, name, err)
	}
}

func verifyErr(roots *x509.CertPool, c *tls.Certificate, name string, usage x509.ExtKeyUsage) error {
	inter := x509.NewCertPool()
	for _, der := range c.Certificate[1:] {
		x, err := x509.ParseCertificate(der)
		if err != nil {
			return err
		}
		inter.AddCert(x)
	}
	_, err := c.Leaf.Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, DNSName: name,
		KeyUsages: []x509.ExtKeyUsage{usage},
	})
	return err
}

func TestIssue(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	roots := ca.RootPool()
	tests := []struct {
		name   string
		names  []string
		opts   IssueOptions
		verify []string // names the leaf must verify for
		reject []string // names it must not verify for
		client bool     // must verify for client authentication
	}{
		{name: "DNS name", names: []string{"svc.internal"}, verify: []string{"svc.internal"}, reject: []string{"other.internal"}},
		{name: "several DNS names", names: []string{"a.internal", "B.Internal."}, verify: []string{"a.internal", "b.internal"}},
		{name: "wildcard", names: []string{"*.svc.internal"}, verify: []string{"x.svc.internal"}, reject: []string{"svc.internal", "a.b.svc.internal"}},
		{name: "IPv4", names: []string{"127.0.0.1"}, verify: []string{"127.0.0.1"}, reject: []string{"127.0.0.2"}},
		{name: "IPv6 and DNS", names: []string{"::1", "localhost"}, verify: []string{"::1", "localhost"}},
		{name: "client", names: []string{"client.internal"}, opts: IssueOptions{Client: true}, verify: []string{"client.internal"}, client: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := issue(t, ca, tt.opts, tt.names...)
			if len(c.Certificate) != 2 || c.Leaf == nil {
				t.Fatalf("chain of %d, Leaf %v; want leaf + intermediate", len(c.Certificate), c.Leaf)
			}
			if _, err := tls.X509KeyPair(encodeChain(c.Certificate), mustKeyPEM(t, c)); err != nil {
				t.Errorf("key does not match: %v", err)
			}
			if life := c.Leaf.NotAfter.Sub(c.Leaf.NotBefore); life != DefaultLifetime {
				t.Errorf("lifetime %v, want %v", life, DefaultLifetime)
			}
			for _, n := range tt.verify {
				verify(t, roots, c, n, x509.ExtKeyUsageServerAuth)
			}
			for _, n := range tt.reject {
				if verifyErr(roots, c, n, x509.ExtKeyUsageServerAuth) == nil {
					t.Errorf("certificate verifies for %q", n)
				}
			}
			err := verifyErr(roots, c, "", x509.ExtKeyUsageClientAuth)
			if tt.client && err != nil {
				t.Errorf("client certificate does not verify for client auth: %v", err)
			}
			if !tt.client && err == nil {
				t.Error("server certificate verifies for client auth")
			}
		})
	}
}

func mustKeyPEM(t *testing.T, c *tls.Certificate) []byte {
	t.Helper()
	k, err := encodeKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestIssueRejects(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	for _, names := range [][]string{
		nil,
		{},
		{""},
		{"ok.test", "bad name"},
		{"-a.test"},
		{"a..test"},
		{"*"},
		{"a.*.test"},
		{"fe80::1%eth0"},
		{strings.Repeat("a", 64) + ".test"},
	} {
		if _, err := ca.Issue(names, IssueOptions{}); err == nil {
			t.Errorf("Issue(%q) succeeded", names)
		}
	}
}

func TestIssueLifetime(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	start := time.Now().Add(-time.Hour)
	c := issue(t, ca, IssueOptions{Lifetime: 30 * time.Minute, NotBefore: start}, "old.test")
	if !c.Leaf.NotBefore.Equal(start.Truncate(time.Second)) || c.Leaf.NotAfter.After(time.Now()) {
		t.Errorf("validity %v – %v, want an expired certificate from %v", c.Leaf.NotBefore, c.Leaf.NotAfter, start)
	}
}

func TestManagedRenews(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	const lifetime = 3 * time.Second
	lazy := ca.Managed([]string{"lazy.internal"}, IssueOptions{Lifetime: lifetime})
	background := ca.Managed([]string{"bg.internal"}, IssueOptions{Lifetime: lifetime, Client: true})
	// Starts with an expired certificate: it must never be served.
	expired := ca.Managed([]string{"expired.internal"}, IssueOptions{Lifetime: lifetime, NotBefore: time.Now().Add(-time.Minute)})

	first := func(m *ManagedCert) string { return serial(m.cur.Load()) }
	lazy0, bg0, exp0 := first(lazy), first(background), first(expired)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { background.Run(ctx) })

	// Handshakes in parallel with renewals, checking that nothing served
	// is expired.
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, m := range []*ManagedCert{lazy, expired} {
					c, err := m.GetCertificate(&tls.ClientHelloInfo{})
					if err != nil {
						t.Errorf("GetCertificate: %v", err)
						return
					}
					if time.Now().After(c.Leaf.NotAfter) {
						t.Errorf("served an expired certificate (not after %v)", c.Leaf.NotAfter)
						return
					}
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}

	time.Sleep(lifetime*2/3 + 300*time.Millisecond)
	close(stop)
	if s := first(background); s == bg0 {
		t.Error("Run did not renew in the background")
	}
	c, err := lazy.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if serial(c) == lazy0 {
		t.Error("GetCertificate did not renew after 2/3 of the lifetime")
	}
	if first(expired) == exp0 {
		t.Error("expired certificate not replaced")
	}
	cc, err := background.GetClientCertificate(&tls.CertificateRequestInfo{})
	if err != nil {
		t.Fatal(err)
	}
	verify(t, ca.RootPool(), cc, "", x509.ExtKeyUsageClientAuth)
	cancel()
	wg.Wait()
}

func TestManagedInvalidName(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	m := ca.Managed([]string{"bad name"}, IssueOptions{})
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{}); err == nil || !strings.Contains(err.Error(), "invalid name") {
		t.Fatalf("GetCertificate = %v, want invalid name", err)
	}
}

// TestMutualTLS runs a handshake where the server's certificate comes from a
// Store and the client presents a managed client certificate, both from the
// internal CA.
func TestMutualTLS(t *testing.T) {
	t.Parallel()
	f := newStoreFixture(t)
	client := f.ca.Managed([]string{"backend-client.internal"}, IssueOptions{Client: true})
	var peer string
	handshake(t,
		&tls.Config{
			GetCertificate: f.store.GetCertificate,
			ClientAuth:     tls.RequireAndVerifyClientCert,
			ClientCAs:      f.ca.RootPool(),
		},
		&tls.Config{
			ServerName:           "a.test",
			RootCAs:              f.ca.RootPool(),
			GetClientCertificate: client.GetClientCertificate,
		},
		func(s tls.ConnectionState) { peer = s.PeerCertificates[0].DNSNames[0] },
	)
	if peer != "backend-client.internal" {
		t.Errorf("server saw client %q", peer)
	}
}
