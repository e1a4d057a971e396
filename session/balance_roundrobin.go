package session

// roundRobin is nginx's smooth weighted round-robin: each pick adds every
// candidate's weight to its current value, chooses the largest and takes
// the candidates' total weight off it. Over Σweights picks every server is
// chosen exactly weight times, interleaved (5,1,1 gives a a b a c a a, not
// a a a a a b c).
type roundRobin struct {
	servers []*Server
	current []int // by server index
}

func newRoundRobin(servers []*Server) balancer {
	return &roundRobin{servers: servers, current: make([]int, len(servers))}
}

func (r *roundRobin) pick(f *pickFilter, _ *pickReq) *Server {
	total, best := 0, -1
	for i, s := range r.servers {
		if !f.free(s) {
			continue
		}
		r.current[i] += s.opts.Weight
		total += s.opts.Weight
		if best < 0 || r.current[i] > r.current[best] {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	r.current[best] -= total
	return r.servers[best]
}
