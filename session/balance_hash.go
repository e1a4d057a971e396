package session

// requestHash is HAProxy's `balance uri` and `balance hdr(NAME)`: the
// request's key (its path without the query, or the value of a header
// field; the session hashes it into pickReq.hash) picks a server on a
// consistent-hash ring, as `source` does with the client address, so the
// same key keeps its server and a server's departure moves only its keys.
// A request without a key (the header field absent or empty) is balanced
// round-robin, as HAProxy does.
type requestHash struct {
	ring hashRing
	rr   balancer
}

func newRequestHash(servers []*Server) balancer {
	return &requestHash{ring: newHashRing(servers), rr: newRoundRobin(servers)}
}

func (h *requestHash) pick(f *pickFilter, r *pickReq) *Server {
	if !r.hashed {
		return h.rr.pick(f, r)
	}
	return h.ring.lookup(f, r.hash)
}
