package session

import (
	"bytes"

	"github.com/strata-proxy/strata/layers/msg"
)

// hopByHop are the fields that describe one connection, not the message
// (RFC 9110 §7.6.1): never forwarded. The outbound stage writes its own
// connection control (Connection, and Upgrade from Head.Upgrade).
var hopByHop = [...][]byte{
	[]byte("Connection"), []byte("Keep-Alive"), []byte("Proxy-Connection"),
	[]byte("TE"), []byte("Upgrade"),
}

var nameExpect = []byte("Expect")

// removeHopByHop removes the hop-by-hop fields and the fields named in
// Connection (except Host, which routing depends on). It runs before the
// analysers that add fields, so that a client cannot have them removed.
func removeHopByHop(h *msg.Head) {
	var conn [16][]byte // the Connection values; more than 16 fields are not looked at
	nc := 0
	for i := range h.Fields {
		if nc < len(conn) && msg.EqualFold(h.Fields[i].Name, "Connection") {
			conn[nc] = h.Fields[i].Value
			nc++
		}
	}
	fs := h.Fields
	j := 0
	for i := range fs {
		name := fs[i].Name
		if isHopByHop(name) || (nc > 0 && !msg.EqualFold(name, "host") && listed(conn[:nc], name)) {
			continue
		}
		fs[j] = fs[i]
		j++
	}
	clear(fs[j:])
	h.Fields = fs[:j]
}

func isHopByHop(name []byte) bool {
	for _, hb := range hopByHop {
		if equalFold(name, hb) {
			return true
		}
	}
	return false
}

// listed reports whether name is one of the comma-separated tokens of the
// values.
func listed(values [][]byte, name []byte) bool {
	for _, v := range values {
		for len(v) > 0 {
			var tok []byte
			if k := bytes.IndexByte(v, ','); k >= 0 {
				tok, v = v[:k], v[k+1:]
			} else {
				tok, v = v, nil
			}
			if equalFold(bytes.Trim(tok, " \t"), name) {
				return true
			}
		}
	}
	return false
}

// analyseRequestHopByHop strips hop-by-hop fields from the request. It
// also drops "Expect: 100-continue": the session answers the expectation
// itself (it sends 100 when it starts reading the body).
func analyseRequestHopByHop(s *httpSession) result {
	removeHopByHop(s.req)
	if s.req.Expect100 {
		delField(&s.req.Fields, nameExpect)
	}
	return cont
}

// analyseResponseHopByHop strips hop-by-hop fields from the response.
func analyseResponseHopByHop(s *httpSession) result {
	removeHopByHop(s.resp)
	return cont
}
