package session

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"

	"github.com/strata-proxy/strata/layers/msg"
)

// HTTPMatch selects requests by what an analyser may look at: the request
// head and the connection's facts. Every non-empty condition must hold
// (and); within one condition any listed value will do (or). The zero
// HTTPMatch matches every request.
type HTTPMatch struct {
	// Hosts are request hosts (the authority without its port), exact
	// ("api.example.com") or with one wildcard label ("*.example.com"
	// matches "a.example.com", not "example.com" nor "a.b.example.com").
	// Case-insensitive.
	Hosts []string
	// PathPrefixes match the start of the path ("/api/" matches
	// "/api/v1"); case-sensitive.
	PathPrefixes []string
	// Methods are request methods, case-sensitive ("GET").
	Methods []string
	// Header names a field the request must carry; with HeaderValues one
	// of its values must equal one of them exactly.
	Header       string
	HeaderValues []string
	// SNI lists TLS server names, as Hosts.
	SNI []string
	// Sources are client address prefixes (the PROXY header's source when
	// proxied).
	Sources []netip.Prefix
	// DstPorts are destination ports: the port the client connected to
	// (in.Dest: the listener's, or what a PROXY header said), as the TCP
	// router's Route.DstPorts.
	DstPorts []uint16
}

// matcher is an HTTPMatch prepared for matching: read-only, shared by
// every session of a frontend.
type matcher struct {
	hosts    names
	prefixes []string
	methods  []string
	header   string
	values   []string
	sni      names
	sources  []netip.Prefix
	ports    []uint16
}

// names is a set of host names, exact and one-label wildcards, lower case.
type names struct {
	exact    []string
	suffixes []string // ".example.com" from "*.example.com"
}

func newNames(list []string) names {
	var n names
	for _, name := range list {
		name = strings.TrimSuffix(strings.ToLower(name), ".")
		if rest, ok := strings.CutPrefix(name, "*"); ok {
			n.suffixes = append(n.suffixes, rest)
		} else {
			n.exact = append(n.exact, name)
		}
	}
	return n
}

func (n *names) empty() bool { return len(n.exact) == 0 && len(n.suffixes) == 0 }

func (n *names) match(host []byte) bool {
	if len(host) > 0 && host[len(host)-1] == '.' {
		host = host[:len(host)-1]
	}
	if len(host) == 0 {
		return false
	}
	for _, e := range n.exact {
		if msg.EqualFold(host, e) {
			return true
		}
	}
	for _, suf := range n.suffixes {
		k := len(host) - len(suf)
		if k > 0 && msg.EqualFold(host[k:], suf) && bytes.IndexByte(host[:k], '.') < 0 {
			return true
		}
	}
	return false
}

func (n *names) matchString(host string) bool {
	host = strings.TrimSuffix(host, ".")
	if host == "" {
		return false
	}
	for _, e := range n.exact {
		if strings.EqualFold(host, e) {
			return true
		}
	}
	for _, suf := range n.suffixes {
		k := len(host) - len(suf)
		if k > 0 && strings.EqualFold(host[k:], suf) && strings.IndexByte(host[:k], '.') < 0 {
			return true
		}
	}
	return false
}

func newMatcher(m HTTPMatch) matcher {
	return matcher{
		hosts:    newNames(m.Hosts),
		prefixes: m.PathPrefixes,
		methods:  m.Methods,
		header:   m.Header,
		values:   m.HeaderValues,
		sni:      newNames(m.SNI),
		sources:  m.Sources,
		ports:    m.DstPorts,
	}
}

// hostOf is the host of an authority, without port or IPv6 brackets' port.
func hostOf(auth []byte) []byte {
	if len(auth) > 0 && auth[0] == '[' {
		if i := bytes.IndexByte(auth, ']'); i >= 0 {
			return auth[:i+1]
		}
		return auth
	}
	if i := bytes.LastIndexByte(auth, ':'); i >= 0 {
		return auth[:i]
	}
	return auth
}

func (m *matcher) match(s *httpSession) bool {
	h := s.req
	if !m.hosts.empty() && !m.hosts.match(hostOf(h.Authority)) {
		return false
	}
	if len(m.prefixes) > 0 && m.prefixLen(h.Path) < 0 {
		return false
	}
	if len(m.methods) > 0 {
		ok := false
		for _, x := range m.methods {
			if string(h.Method) == x {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if m.header != "" {
		i := h.Fields.Index(m.header)
		if i < 0 {
			return false
		}
		if len(m.values) > 0 {
			ok := false
			for j := i; j < len(h.Fields) && !ok; j++ {
				if !msg.EqualFold(h.Fields[j].Name, m.header) {
					continue
				}
				for _, v := range m.values {
					if string(h.Fields[j].Value) == v {
						ok = true
						break
					}
				}
			}
			if !ok {
				return false
			}
		}
	}
	if len(m.ports) > 0 && !slices.Contains(m.ports, s.c.in.Dest.Port()) {
		return false
	}
	if !m.sni.empty() && !m.sni.matchString(s.c.in.SNI) {
		return false
	}
	if len(m.sources) > 0 {
		a := s.c.in.Source.Addr().Unmap()
		ok := false
		for _, p := range m.sources {
			if p.Contains(a) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// prefixLen returns the length of the first of m's path prefixes that
// path starts with, or -1 when none does.
func (m *matcher) prefixLen(path []byte) int {
	for _, p := range m.prefixes {
		if len(path) >= len(p) && string(path[:len(p)]) == p {
			return len(p)
		}
	}
	return -1
}
