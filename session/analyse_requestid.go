package session

import (
	"math/rand/v2"
	"strings"
)

// RequestIDOptions turns on request ids: a request that carries none gets
// a random one (32 hex digits); one the client sent is passed on. The id is
// logged (request_id).
type RequestIDOptions struct {
	Enabled bool
	// Header is the field name; default X-Request-ID.
	Header string
}

// analyseRequestID passes on or generates the request id.
func analyseRequestID(s *httpSession) result {
	f := s.c.f
	if !f.o.RequestID.Enabled {
		return cont
	}
	h := s.req
	if v := h.Get(f.reqIDName); v != nil {
		s.reqID = v
		return cont
	}
	const hex = "0123456789abcdef"
	start := len(s.arena)
	for range 2 {
		x := rand.Uint64()
		for range 16 {
			s.arena = append(s.arena, hex[x&15])
			x >>= 4
		}
	}
	s.reqID = s.arena[start:len(s.arena):len(s.arena)]
	h.Add(f.reqIDNameB, s.reqID)
	return cont
}

func requestIDName(o RequestIDOptions) string {
	if o.Header == "" {
		return "X-Request-ID"
	}
	return strings.TrimSpace(o.Header)
}
