package session

import (
	"net/netip"
	"slices"
	"time"
)

// balancer is one load-balancing algorithm. pick returns the server the
// client r should use, or nil when no server will do. It is called with
// the backend's mutex held, so it may keep state without locking of its
// own; it runs once per connection or request and must not allocate.
//
// Most algorithms choose among f.free servers (usable, allowed, with a free
// slot). An algorithm that pins clients to a server (source, uri, header)
// may return a full server from f.ok: the client then waits in the queue
// for it.
type balancer interface {
	pick(f *pickFilter, r *pickReq) *Server
}

// pickReq is what a balancing decision may look at for one client: its
// address (source), the hash of its request (uri, header(NAME)) and the
// server its persistence cookie names. TCP sessions set only client. It is
// a value: a queued client keeps its own copy, which points into no buffer.
type pickReq struct {
	client netip.Addr
	// hash is the request's key hashed with hashBytes; hashed is false
	// when the request has no key (header(NAME) with the field absent or
	// empty), and the hashing algorithms then go round-robin.
	hash   uint64
	hashed bool
	// pin is the server a persistence cookie named, nil when none: it is
	// used whenever it may be (see Backend.takeLocked).
	pin *Server
}

// balancers is the one table from a `balance` name to its algorithm.
var balancers = map[string]func(servers []*Server) balancer{
	"roundrobin": newRoundRobin,
	"leastconn":  newLeastConn,
	"random":     newRandom,
	"source":     newSourceHash,
	"first":      newFirst,
	"uri":        newRequestHash,
	"header":     newRequestHash,
}

// pickFilter says which servers a pick may choose. prepare fills it for one
// client, once per pick, so the balancers look at one consistent picture.
// It lives in the Backend and is guarded by its mutex.
type pickFilter struct {
	usable    []bool    // by server index: up, not ejected, weight > 0
	backup    bool      // choose among backup servers (no primary is usable)
	tried     []*Server // servers the client already failed on
	skipTried bool      // another usable server exists: avoid tried ones
	anyFree   bool      // some usable server of the pool has a free slot
}

// prepare computes the filter for one client and reports whether any
// server is usable at all.
func (f *pickFilter) prepare(servers []*Server, tried []*Server) bool {
	now := time.Now().UnixNano()
	primary, backup := false, false
	for i, s := range servers {
		u := s.usableAt(now)
		f.usable[i] = u
		if u {
			if s.opts.Backup {
				backup = true
			} else {
				primary = true
			}
		}
	}
	if !primary && !backup {
		return false
	}
	f.backup = !primary
	f.tried, f.skipTried, f.anyFree = tried, false, false
	for i, s := range servers {
		if !f.usable[i] || s.opts.Backup != f.backup {
			continue
		}
		if s.hasSlot() {
			f.anyFree = true
		}
		if len(tried) > 0 && !slices.Contains(tried, s) {
			f.skipTried = true
		}
	}
	return true
}

// ok reports whether s may be chosen, full or not.
func (f *pickFilter) ok(s *Server) bool {
	return f.usable[s.idx] && s.opts.Backup == f.backup &&
		!(f.skipTried && slices.Contains(f.tried, s))
}

// free reports whether s may be chosen and has a free slot.
func (f *pickFilter) free(s *Server) bool { return f.ok(s) && s.hasSlot() }

// lessLoaded reports whether a carries less load per unit of weight than
// b: a.active/a.weight < b.active/b.weight, without division.
func lessLoaded(a, b *Server) bool {
	return a.active*b.opts.Weight < b.active*a.opts.Weight
}
