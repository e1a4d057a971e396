package session

import (
	"net/netip"

	"github.com/strata-proxy/strata/layers/msg"
)

// ForwardedOptions says which forwarding fields the session writes on
// requests. From a direct peer inside Trusted, fields it sent are kept and
// extended (its X-Forwarded-For and Forwarded lists get the peer appended;
// its X-Forwarded-Proto and -Host are kept); from any other peer they are
// replaced, so a client cannot pass for another address.
type ForwardedOptions struct {
	XForwardedFor, XForwardedProto, XForwardedHost bool
	// Forwarded writes RFC 7239's field: for=…;proto=…;host=….
	Forwarded bool
	// Trusted are the prefixes of peers (the socket's peer, or the PROXY
	// header's source) whose forwarding fields are believed.
	Trusted []netip.Prefix
}

var (
	nameXFF       = []byte("X-Forwarded-For")
	nameXFProto   = []byte("X-Forwarded-Proto")
	nameXFHost    = []byte("X-Forwarded-Host")
	nameForwarded = []byte("Forwarded")
	schemeHTTP    = []byte("http")
	schemeHTTPS   = []byte("https")
)

// analyseForwarded writes the forwarding fields.
func analyseForwarded(s *httpSession) result {
	o := &s.c.f.o.Forwarded
	if !o.XForwardedFor && !o.XForwardedProto && !o.XForwardedHost && !o.Forwarded {
		return cont
	}
	h := s.req
	peer := s.c.in.Source.Addr().Unmap()
	trusted := false
	for _, p := range o.Trusted {
		if p.Contains(peer) {
			trusted = true
			break
		}
	}
	if o.XForwardedFor {
		start := len(s.arena)
		if trusted {
			if old := lastValue(h, "X-Forwarded-For"); old != nil {
				s.arena = append(s.arena, old...)
				s.arena = append(s.arena, ", "...)
			}
		}
		s.arena = peer.AppendTo(s.arena)
		h.Set(nameXFF, s.arena[start:len(s.arena):len(s.arena)])
	}
	if o.XForwardedProto && !(trusted && h.Has("X-Forwarded-Proto")) {
		h.Set(nameXFProto, s.scheme())
	}
	if o.XForwardedHost && !(trusted && h.Has("X-Forwarded-Host")) {
		if len(h.Authority) > 0 {
			h.Set(nameXFHost, h.Authority)
		} else {
			delField(&h.Fields, nameXFHost)
		}
	}
	if o.Forwarded {
		start := len(s.arena)
		if trusted {
			if old := lastValue(h, "Forwarded"); old != nil {
				s.arena = append(s.arena, old...)
				s.arena = append(s.arena, ", "...)
			}
		}
		s.arena = append(s.arena, "for="...)
		if peer.Is6() {
			s.arena = append(s.arena, "\"["...)
			s.arena = peer.AppendTo(s.arena)
			s.arena = append(s.arena, "]\""...)
		} else {
			s.arena = peer.AppendTo(s.arena)
		}
		s.arena = append(s.arena, ";proto="...)
		s.arena = append(s.arena, s.scheme()...)
		if auth := h.Authority; len(auth) > 0 && quotable(auth) {
			s.arena = append(s.arena, ";host=\""...)
			s.arena = append(s.arena, auth...)
			s.arena = append(s.arena, '"')
		}
		h.Set(nameForwarded, s.arena[start:len(s.arena):len(s.arena)])
	}
	return cont
}

// lastValue joins the values of every field named name into one list
// value when there are several (in the arena), or returns the only one.
func lastValue(h *msg.Head, name string) []byte {
	var buf [4][]byte
	vs := h.Values(buf[:0], name)
	switch len(vs) {
	case 0:
		return nil
	case 1:
		return vs[0]
	}
	n := 0
	for _, v := range vs {
		n += len(v) + 2
	}
	out := make([]byte, 0, n)
	for i, v := range vs {
		if i > 0 {
			out = append(out, ", "...)
		}
		out = append(out, v...)
	}
	return out
}

// quotable reports whether b can go in a quoted-string as is.
func quotable(b []byte) bool {
	for _, c := range b {
		if c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
