package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"encoding/pem"
	"strings"
	"testing"
	"time"
)

// indexFixture is a set of certificates covering the cases of an Index.
type indexFixture struct {
	def, exact, wild, deep, ip, cn           *tls.Certificate
	expired, valid, validLonger, notYetValid *tls.Certificate
	all                                      []*tls.Certificate
}

func newIndexFixture(t *testing.T) *indexFixture {
	t.Helper()
	ca := newTestCA(t)
	now := time.Now()
	day := 24 * time.Hour
	f := &indexFixture{
		def:   issue(t, ca, IssueOptions{}, "default.test"),
		exact: issue(t, ca, IssueOptions{}, "a.example.com"),
		wild:  issue(t, ca, IssueOptions{}, "*.example.com"),
		deep:  issue(t, ca, IssueOptions{}, "*.b.example.com"),
		ip:    issue(t, ca, IssueOptions{}, "10.0.0.1", "::1"),
		// Listed first among the "dup.test" certificates so that order alone
		// would pick it.
		expired:     issue(t, ca, IssueOptions{NotBefore: now.Add(-10 * day), Lifetime: day}, "dup.test"),
		valid:       issue(t, ca, IssueOptions{Lifetime: 2 * day}, "dup.test"),
		validLonger: issue(t, ca, IssueOptions{Lifetime: 5 * day}, "dup.test"),
		notYetValid: issue(t, ca, IssueOptions{NotBefore: now.Add(day), Lifetime: 30 * day}, "dup.test"),
	}
	// A certificate with no SANs, indexed by its common name, and without
	// Leaf so that NewIndex parses it.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(selfSigned(t, key, "Legacy.Test"))
	f.cn = &tls.Certificate{Certificate: [][]byte{block.Bytes}, PrivateKey: key}
	f.all = []*tls.Certificate{f.def, f.exact, f.wild, f.deep, f.ip, f.cn, f.expired, f.valid, f.validLonger, f.notYetValid}
	return f
}

func TestIndexLookup(t *testing.T) {
	t.Parallel()
	f := newIndexFixture(t)
	loose := NewIndex(f.all, IndexOptions{})
	strict := NewIndex(f.all, IndexOptions{Strict: true})

	tests := []struct {
		name       string
		sni        string
		want       *tls.Certificate
		wantStrict *tls.Certificate // nil: no certificate in strict mode
	}{
		{name: "exact", sni: "a.example.com", want: f.exact, wantStrict: f.exact},
		{name: "exact beats wildcard", sni: "a.example.com", want: f.exact, wantStrict: f.exact},
		{name: "wildcard one label", sni: "c.example.com", want: f.wild, wantStrict: f.wild},
		{name: "wildcard not two labels", sni: "x.c.example.com", want: f.def},
		{name: "wildcard not the bare domain", sni: "example.com", want: f.def},
		{name: "deeper wildcard", sni: "x.b.example.com", want: f.deep, wantStrict: f.deep},
		{name: "empty label before wildcard", sni: ".example.com", want: f.def},
		{name: "upper case", sni: "A.EXAMPLE.COM", want: f.exact, wantStrict: f.exact},
		{name: "upper case wildcard", sni: "Zz.Example.Com", want: f.wild, wantStrict: f.wild},
		{name: "trailing dot", sni: "a.example.com.", want: f.exact, wantStrict: f.exact},
		{name: "IPv4 SAN", sni: "10.0.0.1", want: f.ip, wantStrict: f.ip},
		{name: "IPv6 SAN", sni: "::1", want: f.ip, wantStrict: f.ip},
		{name: "common name without SANs", sni: "legacy.test", want: f.cn, wantStrict: f.cn},
		{name: "valid and expiring last wins", sni: "dup.test", want: f.validLonger, wantStrict: f.validLonger},
		{name: "no match", sni: "nothing.test", want: f.def},
		{name: "empty SNI", sni: "", want: f.def},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := loose.Lookup(tt.sni); got != tt.want {
				t.Errorf("Lookup(%q) = %s, want %s", tt.sni, serial(got), serial(tt.want))
			}
			if got := strict.Lookup(tt.sni); got != tt.wantStrict {
				t.Errorf("strict Lookup(%q) = %s, want %s", tt.sni, serial(got), serial(tt.wantStrict))
			}
		})
	}
}

func TestIndexPreference(t *testing.T) {
	t.Parallel()
	f := newIndexFixture(t)
	tests := []struct {
		name  string
		certs []*tls.Certificate
		want  *tls.Certificate
	}{
		{name: "valid beats expired", certs: []*tls.Certificate{f.expired, f.valid}, want: f.valid},
		{name: "valid beats expired, other order", certs: []*tls.Certificate{f.valid, f.expired}, want: f.valid},
		{name: "valid beats not yet valid", certs: []*tls.Certificate{f.notYetValid, f.valid}, want: f.valid},
		{name: "later expiry among valid", certs: []*tls.Certificate{f.valid, f.validLonger}, want: f.validLonger},
		{name: "none valid: expires last", certs: []*tls.Certificate{f.expired, f.notYetValid}, want: f.notYetValid},
		{name: "only an expired one", certs: []*tls.Certificate{f.expired}, want: f.expired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := NewIndex(tt.certs, IndexOptions{Strict: true})
			if got := x.Lookup("dup.test"); got != tt.want {
				t.Errorf("Lookup = %s, want %s", serial(got), serial(tt.want))
			}
		})
	}
}

func TestIndexEmpty(t *testing.T) {
	t.Parallel()
	x := NewIndex(nil, IndexOptions{})
	if c := x.Lookup("a.test"); c != nil {
		t.Errorf("empty index Lookup = %s, want nil", serial(c))
	}
	if x.Len() != 0 {
		t.Errorf("Len = %d, want 0", x.Len())
	}
}

func TestIndexLookupAllocs(t *testing.T) {
	f := newIndexFixture(t)
	x := NewIndex(f.all, IndexOptions{})
	for _, name := range []string{"a.example.com", "c.example.com", "nothing.test", "", "dup.test", "a.example.com."} {
		if n := testing.AllocsPerRun(100, func() { x.Lookup(name) }); n != 0 {
			t.Errorf("Lookup(%q) allocates %v times, want 0", name, n)
		}
	}
}

func BenchmarkIndexLookup(b *testing.B) {
	ca, err := OpenCA(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	var certs []*tls.Certificate
	for _, n := range []string{"default.test", "a.example.com", "*.example.com", "b.test", "c.test", "d.test"} {
		c, err := ca.Issue([]string{n}, IssueOptions{})
		if err != nil {
			b.Fatal(err)
		}
		certs = append(certs, c)
	}
	x := NewIndex(certs, IndexOptions{})
	for _, bc := range []struct{ name, sni string }{
		{"exact", "a.example.com"},
		{"wildcard", "z.example.com"},
		{"default", "nothing.test"},
		{"upper", "A.Example.Com"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if x.Lookup(bc.sni) == nil {
					b.Fatal("no certificate")
				}
			}
		})
	}
}

func FuzzIndexLookup(f *testing.F) {
	for _, s := range []string{"a.example.com", "c.example.com", "x.c.example.com", "A.EXAMPLE.COM.", "", ".", "..", "*.example.com", "10.0.0.1", "::1", "legacy.test", ".example.com"} {
		f.Add(s)
	}
	ca, err := OpenCA(f.TempDir(), nil)
	if err != nil {
		f.Fatal(err)
	}
	var certs []*tls.Certificate
	for _, n := range [][]string{{"default.test"}, {"a.example.com"}, {"*.example.com"}, {"*.b.example.com"}, {"10.0.0.1", "::1"}} {
		c, err := ca.Issue(n, IssueOptions{})
		if err != nil {
			f.Fatal(err)
		}
		certs = append(certs, c)
	}
	x := NewIndex(certs, IndexOptions{Strict: true})
	f.Fuzz(func(t *testing.T, name string) {
		got := x.Match(name)
		if up := x.Match(strings.ToUpper(name)); isASCII(name) && up != got {
			t.Errorf("Match(%q) = %s but Match(upper) = %s", name, serial(got), serial(up))
		}
		if got != nil {
			// Whatever the index serves for a name must verify for it.
			if err := got.Leaf.VerifyHostname(strings.TrimSuffix(name, ".")); err != nil {
				t.Errorf("Match(%q) = certificate for %v, which does not verify: %v", name, got.Leaf.DNSNames, err)
			}
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
