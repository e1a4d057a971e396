package session

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
)

// sourceHash pins each client IP to a server with a consistent-hash ring:
// every server owns vnodesPerWeight·weight points placed by hashing its
// name, and a client goes to the first point at or after the hash of its
// address. The same client gets the same server while the set of usable
// servers is unchanged; when a server goes down only its clients move (the
// walk goes on to the next usable point), and they come back when it
// returns. A client whose server is full waits for it in the queue rather
// than moving, so its affinity holds under load.
type sourceHash struct {
	servers []*Server
	ring    []ringPoint // sorted by hash
}

type ringPoint struct {
	hash uint64
	idx  int // server index
}

const vnodesPerWeight = 100

func newSourceHash(servers []*Server) balancer {
	h := &sourceHash{servers: servers}
	var key []byte
	for i, s := range servers {
		for v := range vnodesPerWeight * max(s.opts.Weight, 0) {
			key = append(key[:0], s.opts.Name...)
			key = append(key, '#')
			key = strconv.AppendInt(key, int64(v), 10)
			h.ring = append(h.ring, ringPoint{hash: hashBytes(key), idx: i})
		}
	}
	slices.SortFunc(h.ring, func(a, b ringPoint) int {
		return cmp.Or(cmp.Compare(a.hash, b.hash), cmp.Compare(a.idx, b.idx))
	})
	return h
}

func (h *sourceHash) pick(f *pickFilter, client netip.Addr) *Server {
	n := len(h.ring)
	if n == 0 {
		return nil
	}
	a := client.Unmap().As16()
	x := hashBytes(a[:])
	start, _ := slices.BinarySearchFunc(h.ring, x, func(p ringPoint, x uint64) int { return cmp.Compare(p.hash, x) })
	for k := range n {
		s := h.servers[h.ring[(start+k)%n].idx]
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
