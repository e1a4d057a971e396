package session

import (
	"cmp"
	"slices"
	"strconv"
)

// sourceHash pins each client IP to a server with a consistent-hash ring
// (hashRing): the same client gets the same server while the set of usable
// servers is unchanged; when a server goes down only its clients move, and
// they come back when it returns. A client whose server is full waits for
// it in the queue rather than moving, so its affinity holds under load.
type sourceHash struct {
	ring hashRing
}

func newSourceHash(servers []*Server) balancer { return &sourceHash{ring: newHashRing(servers)} }

func (h *sourceHash) pick(f *pickFilter, r *pickReq) *Server {
	a := r.client.Unmap().As16()
	return h.ring.lookup(f, hashBytes(a[:]))
}

// hashRing is a consistent-hash ring: every server owns
// vnodesPerWeight·weight points placed by hashing its name, and a key goes
// to the first point at or after its hash whose server may be chosen. A
// server's departure (down, or removed from the configuration) moves only
// the keys it held, to the next points of the ring. It is read-only after
// it is built.
type hashRing struct {
	servers []*Server
	points  []ringPoint // sorted by hash
}

type ringPoint struct {
	hash uint64
	idx  int // server index
}

const vnodesPerWeight = 100

func newHashRing(servers []*Server) hashRing {
	h := hashRing{servers: servers}
	var key []byte
	for i, s := range servers {
		for v := range vnodesPerWeight * max(s.opts.Weight, 0) {
			key = append(key[:0], s.opts.Name...)
			key = append(key, '#')
			key = strconv.AppendInt(key, int64(v), 10)
			h.points = append(h.points, ringPoint{hash: hashBytes(key), idx: i})
		}
	}
	slices.SortFunc(h.points, func(a, b ringPoint) int {
		return cmp.Or(cmp.Compare(a.hash, b.hash), cmp.Compare(a.idx, b.idx))
	})
	return h
}

// lookup returns the server of key hash x: the first point at or after x
// whose server f allows, full or not; nil when there is none.
func (h *hashRing) lookup(f *pickFilter, x uint64) *Server {
	n := len(h.points)
	if n == 0 {
		return nil
	}
	start, _ := slices.BinarySearchFunc(h.points, x, func(p ringPoint, x uint64) int { return cmp.Compare(p.hash, x) })
	for k := range n {
		s := h.servers[h.points[(start+k)%n].idx]
		if f.ok(s) {
			return s
		}
	}
	return nil
}

// hashBytes is 64-bit FNV-1a followed by the murmur3 finalizer: FNV alone
// barely moves the high bits for keys that differ in their last byte (one
// IP after another), and the ring orders by the high bits.
func hashBytes(p []byte) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for _, c := range p {
		h ^= uint64(c)
		h *= prime
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
