package session

import (
	"context"
	"sync"
)

// liveItem is what a frontend keeps running: a TCP session, or an HTTP
// client connection with its sessions. abort ends it with a termination.
type liveItem interface {
	comparable
	abort(why error)
}

// liveSet tracks a frontend's running items so that Live can count them and
// Shutdown can wait for them and, at its deadline, end them. Its zero value
// is ready; it is safe for concurrent use.
type liveSet[T liveItem] struct {
	mu    sync.Mutex
	items map[T]struct{}
	// empty is closed (and reset to nil) when items becomes empty while a
	// shutdown waits for it.
	empty chan struct{}
	// draining is set when a shutdown starts.
	draining bool
	// forced is set once a shutdown's deadline has passed: items that
	// start afterwards end at once.
	forced bool
}

// add registers x; it reports false when the set was force-closed, in
// which case the caller ends x at once (it must still remove it).
func (l *liveSet[T]) add(x T) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.items == nil {
		l.items = make(map[T]struct{})
	}
	l.items[x] = struct{}{}
	return !l.forced
}

func (l *liveSet[T]) remove(x T) {
	l.mu.Lock()
	delete(l.items, x)
	if len(l.items) == 0 && l.empty != nil {
		close(l.empty)
		l.empty = nil
	}
	l.mu.Unlock()
}

func (l *liveSet[T]) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.items)
}

func (l *liveSet[T]) isDraining() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.draining
}

// shutdown marks the set draining, calls notify on each live item (under
// the set's lock: notify must not block), and waits for the set to empty.
// When ctx is done first it aborts the remaining items with why, calls
// onForce with their number, waits for them to go and returns ctx's error.
func (l *liveSet[T]) shutdown(ctx context.Context, why error, notify func(T), onForce func(n int)) error {
	l.mu.Lock()
	l.draining = true
	if notify != nil {
		for x := range l.items {
			notify(x)
		}
	}
	l.mu.Unlock()
	if l.waitEmpty(ctx) {
		return nil
	}
	l.mu.Lock()
	l.forced = true
	n := len(l.items)
	for x := range l.items {
		x.abort(why)
	}
	l.mu.Unlock()
	onForce(n)
	l.waitEmpty(context.Background())
	return ctx.Err()
}

// waitEmpty waits until the set is empty (true) or ctx is done (false).
func (l *liveSet[T]) waitEmpty(ctx context.Context) bool {
	for {
		l.mu.Lock()
		if len(l.items) == 0 {
			l.mu.Unlock()
			return true
		}
		if l.empty == nil {
			l.empty = make(chan struct{})
		}
		empty := l.empty
		l.mu.Unlock()
		select {
		case <-empty:
		case <-ctx.Done():
			return false
		}
	}
}
