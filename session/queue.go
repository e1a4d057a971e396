package session

import (
	"context"
	"time"

	"github.com/strata-proxy/strata/layers"
)

// queueWaiter is one client waiting in a backend's queue for a slot. Its
// fields are guarded by the backend's mutex; the waiting goroutine reads
// srv and err after ready fires.
type queueWaiter struct {
	req   pickReq
	tried []*Server // the caller's; it is blocked in Acquire meanwhile

	// ready receives once (buffered) when the waiter is decided: srv holds
	// a slot taken for it, or err says why it cannot have one.
	ready chan struct{}
	done  bool
	srv   *Server
	err   error

	prev, next *queueWaiter
}

// waitQueue is the FIFO of a backend's waiters: an intrusive list, so a
// waiter that gives up leaves from the middle in constant time.
type waitQueue struct {
	head, tail *queueWaiter
	n          int
}

func (q *waitQueue) push(w *queueWaiter) {
	w.prev, w.next = q.tail, nil
	if q.tail == nil {
		q.head = w
	} else {
		q.tail.next = w
	}
	q.tail = w
	q.n++
}

func (q *waitQueue) remove(w *queueWaiter) {
	if w.prev == nil {
		q.head = w.next
	} else {
		w.prev.next = w.next
	}
	if w.next == nil {
		q.tail = w.prev
	} else {
		w.next.prev = w.prev
	}
	w.prev, w.next = nil, nil
	q.n--
}

// dispatchLocked hands free slots to waiters, oldest first. Each waiter
// runs the balancer as if it had just arrived, so a waiter that can only
// use a full server (its `source` server or its cookie's, say) is skipped and keeps its
// place while younger waiters take slots it cannot use. It stops as soon as
// no usable server has a free slot, so a Release under load costs one pick.
// When no server is usable at all, every waiter fails with ErrNoServer.
// b.mu is held.
func (b *Backend) dispatchLocked() {
	for w := b.queue.head; w != nil; {
		next := w.next
		s, err := b.takeLocked(&w.req, w.tried)
		if err == errMustWait {
			if !b.filter.anyFree {
				return
			}
			w = next
			continue
		}
		b.queue.remove(w)
		w.done, w.srv, w.err = true, s, err
		w.ready <- struct{}{}
		w = next
	}
}

// wait blocks a queued waiter until it is decided, the queue timeout passes
// or ctx is done, and returns what Acquire returns.
func (b *Backend) wait(ctx context.Context, w *queueWaiter) (*Server, time.Duration, error) {
	start := time.Now()
	timer := time.NewTimer(b.queueTimeout)
	defer timer.Stop()
	var cause error
	select {
	case <-w.ready:
		return w.result(ctx, time.Since(start))
	case <-timer.C:
		cause = layers.ErrTimeout
	case <-ctx.Done():
		cause = ctx.Err()
	}
	b.mu.Lock()
	if !w.done {
		b.queue.remove(w)
		b.mu.Unlock()
		return nil, time.Since(start), queueError(cause)
	}
	b.mu.Unlock()
	// It was decided while we were giving up; only a done ctx refuses a
	// slot that came just as the queue timer fired.
	return w.result(ctx, time.Since(start))
}

// result is what a decided waiter returns. A slot that arrives for a
// client whose ctx is done is given on to the next waiter, never dropped.
func (w *queueWaiter) result(ctx context.Context, waited time.Duration) (*Server, time.Duration, error) {
	if w.err != nil {
		return nil, waited, queueError(w.err)
	}
	if err := ctx.Err(); err != nil {
		w.srv.Release()
		return nil, waited, queueError(err)
	}
	return w.srv, waited, nil
}
