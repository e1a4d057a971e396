package layers

import (
	"context"
	"sync/atomic"
)

// ConnLimit caps how many connections live at once, globally or per
// frontend. It has HAProxy's maxconn semantics: a Listener acquires a slot
// before it calls Accept, so when the cap is reached the listener stops
// accepting and new connections wait in the kernel's backlog instead of
// being refused.
//
// A nil *ConnLimit, or one made with max 0, is unlimited (it still counts).
// Safe for concurrent use; the fast path is one channel operation.
type ConnLimit struct {
	max   int
	slots chan struct{} // nil when unlimited; a slot is held while a token sits in it
	inUse atomic.Int64  // unlimited only
}

// NewConnLimit returns a cap of max concurrent connections (0 or less:
// unlimited).
func NewConnLimit(max int) *ConnLimit {
	l := &ConnLimit{max: max}
	if max > 0 {
		// Zero-size elements: the channel holds no buffer, only a count,
		// and its waiting senders queue in arrival order.
		l.slots = make(chan struct{}, max)
	}
	return l
}

// Max is the configured cap (0 = unlimited).
func (l *ConnLimit) Max() int {
	if l == nil {
		return 0
	}
	return l.max
}

// Acquire takes a slot, waiting until one is free or ctx is done (then it
// returns ctx's error and holds nothing).
func (l *ConnLimit) Acquire(ctx context.Context) error {
	if l == nil {
		return nil
	}
	if l.slots == nil {
		l.inUse.Add(1)
		return nil
	}
	select {
	case l.slots <- struct{}{}:
		return nil
	default:
	}
	select {
	case l.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TryAcquire takes a slot if one is free and reports whether it did.
func (l *ConnLimit) TryAcquire() bool {
	if l == nil {
		return true
	}
	if l.slots == nil {
		l.inUse.Add(1)
		return true
	}
	select {
	case l.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// Release gives back a slot taken by Acquire or TryAcquire. Releasing a
// slot that was never taken is a bug in the caller and panics, as
// sync.Mutex.Unlock does: a silent miscount would let the cap drift.
func (l *ConnLimit) Release() {
	if l == nil {
		return
	}
	if l.slots == nil {
		if l.inUse.Add(-1) < 0 {
			panic("layers: ConnLimit.Release without Acquire")
		}
		return
	}
	select {
	case <-l.slots:
	default:
		panic("layers: ConnLimit.Release without Acquire")
	}
}

// InUse is the number of slots held now.
func (l *ConnLimit) InUse() int {
	if l == nil {
		return 0
	}
	if l.slots == nil {
		return int(l.inUse.Load())
	}
	return len(l.slots)
}
