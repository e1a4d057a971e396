package session

import "math/rand/v2"

// randomTwo is the power of two choices: draw two servers at random,
// weighted by weight, and take the one with less load per unit of weight.
// It spreads nearly as well as leastconn with no shared cursor, and keeps
// the weights when servers are idle (the first draw wins ties).
type randomTwo struct {
	servers []*Server
}

func newRandom(servers []*Server) balancer { return &randomTwo{servers: servers} }

func (r *randomTwo) pick(f *pickFilter, _ *pickReq) *Server {
	total := 0
	for _, s := range r.servers {
		if f.free(s) {
			total += s.opts.Weight
		}
	}
	if total == 0 {
		return nil
	}
	a := r.nth(f, rand.IntN(total))
	b := r.nth(f, rand.IntN(total))
	if lessLoaded(b, a) {
		return b
	}
	return a
}

// nth returns the free server that holds point n of the weight line.
func (r *randomTwo) nth(f *pickFilter, n int) *Server {
	var last *Server
	for _, s := range r.servers {
		if !f.free(s) {
			continue
		}
		if n < s.opts.Weight {
			return s
		}
		n -= s.opts.Weight
		last = s
	}
	return last
}
