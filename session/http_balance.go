package session

import (
	"bytes"

	"github.com/strata-proxy/strata/layers/msg"
)

// The HTTP side of balancing: what a request tells the backend's balancer
// (the hash of its path or of a header field for `balance uri` and
// `balance header(NAME)`) and cookie persistence (HAProxy's `cookie NAME
// insert`).

// balanceRequest fills s.pick for b from the request head: the client's
// address, the request's hash when b hashes requests and the server that
// b's persistence cookie names. It runs once per request, before the
// first acquire, so retries and a wait in the queue use the same facts;
// nothing in s.pick points into the head.
func (s *httpSession) balanceRequest(b *Backend) {
	s.pick = pickReq{client: s.c.in.Source.Addr()}
	switch b.hashOn {
	case hashURI:
		// HAProxy's default `balance uri`: the part before the '?'.
		p := s.req.Path
		if i := bytes.IndexByte(p, '?'); i >= 0 {
			p = p[:i]
		}
		s.pick.hash, s.pick.hashed = hashBytes(p), true
	case hashHeader:
		// The first field of the name; absent or empty: round-robin.
		if v := s.req.Fields.Get(b.hashHeader); len(v) > 0 {
			s.pick.hash, s.pick.hashed = hashBytes(v), true
		}
	}
	if b.cookie != "" {
		if v, ok := cookieValue(s.req.Fields, b.cookie); ok {
			s.cookieSrv = b.byName[string(v)]
		}
		s.pick.pin = s.cookieSrv
	}
}

var nameSetCookie = []byte("Set-Cookie")

// analyseResponseCookie inserts the persistence cookie naming the server
// that answered when the backend inserts one and the request's cookie did
// not name that server. The value is the server's, made once by
// NewBackend: "NAME=<server>; Path=/; HttpOnly".
func analyseResponseCookie(s *httpSession) result {
	b := s.backend
	if b == nil || !b.cookieInsert || s.server == nil || s.server == s.cookieSrv {
		return cont
	}
	s.resp.Add(nameSetCookie, s.server.setCookie)
	return cont
}

// cookieValue returns the value of the first cookie called name (case
// matters) in the Cookie fields of fs (RFC 6265 §4.2: "a=b; c=d"), without
// the double quotes a value may be wrapped in. Malformed pairs are
// skipped.
func cookieValue(fs msg.Fields, name string) ([]byte, bool) {
	for i := range fs {
		if !msg.EqualFold(fs[i].Name, "Cookie") {
			continue
		}
		for v := fs[i].Value; len(v) > 0; {
			pair := v
			if j := bytes.IndexByte(v, ';'); j >= 0 {
				pair, v = v[:j], v[j+1:]
			} else {
				v = nil
			}
			eq := bytes.IndexByte(pair, '=')
			if eq < 0 || string(trimOWS(pair[:eq])) != name {
				continue
			}
			val := trimOWS(pair[eq+1:])
			if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
				val = val[1 : len(val)-1]
			}
			return val, true
		}
	}
	return nil, false
}

// trimOWS removes spaces and tabs around p.
func trimOWS(p []byte) []byte {
	for len(p) > 0 && (p[0] == ' ' || p[0] == '\t') {
		p = p[1:]
	}
	for len(p) > 0 && (p[len(p)-1] == ' ' || p[len(p)-1] == '\t') {
		p = p[:len(p)-1]
	}
	return p
}
