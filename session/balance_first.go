package session

// firstFree is HAProxy's `balance first`: the first server in configured
// order with a free slot. Used with maxconn it fills servers one after the
// other, so the last ones can be stopped when traffic is low.
type firstFree struct {
	servers []*Server
}

func newFirst(servers []*Server) balancer { return &firstFree{servers: servers} }

func (p *firstFree) pick(f *pickFilter, _ *pickReq) *Server {
	for _, s := range p.servers {
		if f.free(s) {
			return s
		}
	}
	return nil
}
