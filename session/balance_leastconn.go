package session

// leastConn picks the server with the fewest active slots per unit of
// weight. Ties go round-robin: the scan starts after the last server
// chosen, so idle servers share new clients evenly.
type leastConn struct {
	servers []*Server
	next    int // where the next scan starts
}

func newLeastConn(servers []*Server) balancer { return &leastConn{servers: servers} }

func (l *leastConn) pick(f *pickFilter, _ *pickReq) *Server {
	n := len(l.servers)
	var best *Server
	for k := range n {
		s := l.servers[(l.next+k)%n]
		if f.free(s) && (best == nil || lessLoaded(s, best)) {
			best = s
		}
	}
	if best != nil {
		l.next = (best.idx + 1) % n
	}
	return best
}
