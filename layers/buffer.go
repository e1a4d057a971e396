package layers

import "sync"

// DefaultBufferSize is the forwarding buffer size when none is configured.
const DefaultBufferSize = 16 << 10

// BufferPool hands out forwarding buffers of one size. Buffers are taken
// when data arrives and given back when empty (DESIGN.md §5), so an idle
// connection holds none. Safe for concurrent use.
type BufferPool struct {
	size int
	pool sync.Pool
}

// NewBufferPool returns a pool of buffers of size bytes (DefaultBufferSize
// when size <= 0).
func NewBufferPool(size int) *BufferPool {
	if size <= 0 {
		size = DefaultBufferSize
	}
	p := &BufferPool{size: size}
	p.pool.New = func() any {
		b := make([]byte, size)
		return &b
	}
	return p
}

// Size is the length of the pool's buffers.
func (p *BufferPool) Size() int { return p.size }

// Get takes a buffer; give it back with Put.
func (p *BufferPool) Get() *[]byte { return p.pool.Get().(*[]byte) }

// Put gives a buffer back. The caller must not use it afterwards.
func (p *BufferPool) Put(b *[]byte) {
	if b == nil || cap(*b) != p.size {
		return
	}
	*b = (*b)[:p.size]
	p.pool.Put(b)
}
