package certs

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// IndexOptions configures an [Index].
type IndexOptions struct {
	// Strict makes Lookup return nil, instead of the default certificate,
	// for an empty server name or a name no certificate covers (HAProxy's
	// strict-sni): the handshake then fails rather than presenting a
	// certificate for another name.
	Strict bool
}

// Index maps server names to certificates. It is immutable once built and
// safe for concurrent use; a reload builds a new one.
type Index struct {
	exact  map[string][]candidate // by lower-case name or IP string
	wild   map[string][]candidate // "*.example.com" is stored under "example.com"
	certs  []*tls.Certificate     // in the order given; certs[0] is the default
	strict bool
	hasIP  bool // some certificate has an IP SAN
}

// candidate is one certificate covering a name, with the validity period
// that decides between several of them.
type candidate struct {
	cert      *tls.Certificate
	notBefore time.Time
	notAfter  time.Time
}

// NewIndex builds an index of certs by the DNS and IP subject alternative
// names of each leaf, or by the subject common name when a leaf has neither.
// The first certificate is the default one. A certificate whose Leaf is nil
// is parsed from Certificate[0]; the caller's value is not modified. A
// certificate that cannot be parsed is indexed under no name.
func NewIndex(certs []*tls.Certificate, opts IndexOptions) *Index {
	x := &Index{
		exact:  make(map[string][]candidate),
		wild:   make(map[string][]candidate),
		certs:  slices.Clone(certs),
		strict: opts.Strict,
	}
	for _, c := range certs {
		leaf := leafOf(c)
		if leaf == nil {
			continue
		}
		cand := candidate{cert: c, notBefore: leaf.NotBefore, notAfter: leaf.NotAfter}
		for _, name := range leafNames(leaf) {
			m, key := x.exact, name
			if rest, ok := strings.CutPrefix(name, "*."); ok {
				m, key = x.wild, rest
			} else if _, err := netip.ParseAddr(name); err == nil {
				x.hasIP = true
			}
			if !slices.ContainsFunc(m[key], func(o candidate) bool { return o.cert == c }) {
				m[key] = append(m[key], cand)
			}
		}
	}
	// Prefer the certificate that expires last; pick re-checks validity at
	// lookup time, so a certificate not yet valid is passed over until it is.
	for _, m := range []map[string][]candidate{x.exact, x.wild} {
		for _, cs := range m {
			slices.SortStableFunc(cs, func(a, b candidate) int { return b.notAfter.Compare(a.notAfter) })
		}
	}
	return x
}

// Lookup returns the certificate for serverName (the SNI of a ClientHello):
// an exact name first, then a wildcard covering exactly one more label. When
// nothing covers the name, or the name is empty, it returns the default
// certificate, or nil when the index is strict or empty. Matching ignores
// case and a trailing dot; a lower-case name is looked up without allocating.
func (x *Index) Lookup(serverName string) *tls.Certificate {
	if c := x.Match(serverName); c != nil {
		return c
	}
	if x.strict || len(x.certs) == 0 {
		return nil
	}
	return x.certs[0]
}

// Match is Lookup without the default certificate: it returns nil when no
// certificate covers name.
func (x *Index) Match(name string) *tls.Certificate {
	name = normalizeName(name)
	if name == "" {
		return nil
	}
	if cs, ok := x.exact[name]; ok {
		return pick(cs)
	}
	i := strings.IndexByte(name, '.')
	if i <= 0 || !hostLabel(name[:i]) {
		return nil
	}
	if cs, ok := x.wild[name[i+1:]]; ok {
		return pick(cs)
	}
	return nil
}

// Len returns the number of certificates in the index.
func (x *Index) Len() int { return len(x.certs) }

// hostLabel reports whether s, lower case, can be the label a wildcard
// stands for, by the rules of Go's verifier: letters, digits, '_', and '-'
// after the first byte.
func hostLabel(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' && i > 0 || c == '_') {
			return false
		}
	}
	return true
}

// pick returns the candidate valid now that expires last, or, when none is
// valid, the one that expires last.
func pick(cs []candidate) *tls.Certificate {
	if len(cs) == 1 {
		return cs[0].cert
	}
	now := time.Now()
	for _, c := range cs {
		if !now.Before(c.notBefore) && !now.After(c.notAfter) {
			return c.cert
		}
	}
	return cs[0].cert
}

// normalizeName strips one trailing dot and lower-cases ASCII letters (host
// names are ASCII; IDNs arrive as punycode), allocating only when there is an
// upper-case letter.
func normalizeName(name string) string {
	name = strings.TrimSuffix(name, ".")
	for i := 0; i < len(name); i++ {
		if c := name[i]; 'A' <= c && c <= 'Z' {
			b := []byte(name)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return name
}

// leafOf returns c's parsed leaf, parsing it when c.Leaf is nil.
func leafOf(c *tls.Certificate) *x509.Certificate {
	if c == nil {
		return nil
	}
	if c.Leaf != nil {
		return c.Leaf
	}
	if len(c.Certificate) == 0 {
		return nil
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return nil
	}
	return leaf
}

// leafNames returns the names a leaf is indexed under: its DNS names
// (normalised) and IP addresses, or its common name when it has neither.
func leafNames(leaf *x509.Certificate) []string {
	names := make([]string, 0, len(leaf.DNSNames)+len(leaf.IPAddresses))
	for _, n := range leaf.DNSNames {
		if n = normalizeName(n); n != "" {
			names = append(names, n)
		}
	}
	for _, ip := range leaf.IPAddresses {
		if a, ok := netip.AddrFromSlice(ip); ok {
			names = append(names, a.Unmap().String())
		}
	}
	if len(names) == 0 {
		if n := normalizeName(leaf.Subject.CommonName); n != "" {
			names = append(names, n)
		}
	}
	return slices.Compact(slices.SortedFunc(slices.Values(names), cmp.Compare))
}
