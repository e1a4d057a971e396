//go:build !unix

package h1

// probe cannot peek without blocking here: it answers "alive", and a dead
// pooled connection is found by the request itself, which is why reused
// connections only carry requests that can be replayed.
func (c *ClientConn) probe(fd uintptr) bool {
	c.probeOK = true
	return true
}

// readable cannot peek without blocking here; canPeek keeps it unused.
func readable(fd uintptr) bool { return true }

// canPeek tells whether readable works here.
const canPeek = false
