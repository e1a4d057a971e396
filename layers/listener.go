package layers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"
)

// Handler is what a Listener hands its connections to: the frontend built
// from the running configuration. A reload swaps in a new Handler with
// Listener.SetHandler; connections keep the Handler that admitted them.
type Handler interface {
	// Admit runs the L4 rules and caps for in; an error refuses the
	// connection (the listener closes it, allocating nothing else).
	Admit(in *Initiator) error
	// Serve runs the connection (in its own goroutine, started by the
	// listener) and returns when done; the listener then closes in.Conn and
	// calls in.Release().
	Serve(in *Initiator)
	// Limit is the per-frontend cap to hold while the connection lives
	// (nil = none). It must return the same *ConnLimit for the Handler's
	// whole life: the listener takes a slot before Accept and gives it back
	// when Serve returns.
	Limit() *ConnLimit
}

// ListenerStats are the counters of a Listener since it was made.
type ListenerStats struct {
	Accepted     uint64 // connections returned by Accept
	Refused      uint64 // of those, refused by Handler.Admit
	AcceptErrors uint64 // temporary Accept errors (EMFILE, …) backed off from
}

// Accept error back-off: HAProxy and net/http both pause rather than spin
// when the process is out of file descriptors.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// Listener is one listening socket and its accept loop. It only accepts,
// makes the Initiator and hands it to the current Handler (DESIGN.md §1).
//
// Serve runs in one goroutine; SetHandler, Close, Active and Stats may be
// called from any goroutine.
type Listener struct {
	ln     net.Listener
	name   string
	logger *slog.Logger

	ctx    context.Context // done on Close
	cancel context.CancelFunc

	handler atomic.Pointer[handlerSlot]

	active                     atomic.Int64
	accepted, refused, errored atomic.Uint64
	logAccept                  logThrottle
}

// handlerSlot is one Handler as installed by SetHandler; its ctx is done
// when another replaces it, which wakes an accept loop waiting for a slot
// of the old Handler's Limit.
type handlerSlot struct {
	h      Handler
	ctx    context.Context
	cancel context.CancelFunc
}

// Listen opens a listening socket on addr ("tcp", "tcp4" or "tcp6"; Go sets
// SO_REUSEADDR). The Listener's name is addr as given.
func Listen(network, addr string) (*Listener, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("listen %s %s: unsupported network (want tcp, tcp4 or tcp6)", network, addr)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), network, addr)
	if err != nil {
		return nil, err
	}
	return ListenFrom(ln, addr), nil
}

// ListenFrom wraps an already open listener (tests, sockets inherited
// across a restart) under name.
func ListenFrom(ln net.Listener, name string) *Listener {
	ctx, cancel := context.WithCancel(context.Background())
	return &Listener{ln: ln, name: name, ctx: ctx, cancel: cancel}
}

// Name is the bind string the listener was made with.
func (l *Listener) Name() string { return l.name }

// Addr is the socket's address (the chosen port when bound to :0).
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// SetLogger sets where accept errors and handler panics are logged (nil:
// silent). Call it before Serve.
func (l *Listener) SetLogger(logger *slog.Logger) { l.logger = logger }

// SetHandler installs h for the connections accepted from now on. Live
// connections keep the Handler that admitted them, so a reload hands the
// same open socket to a new Handler without refusing anything.
func (l *Listener) SetHandler(h Handler) {
	ctx, cancel := context.WithCancel(l.ctx)
	old := l.handler.Swap(&handlerSlot{h: h, ctx: ctx, cancel: cancel})
	if old != nil {
		old.cancel()
	}
}

// Active is the number of live connections accepted by this listener.
func (l *Listener) Active() int { return int(l.active.Load()) }

// Stats returns the counters.
func (l *Listener) Stats() ListenerStats {
	return ListenerStats{Accepted: l.accepted.Load(), Refused: l.refused.Load(), AcceptErrors: l.errored.Load()}
}

// Close stops accepting; live connections are left to finish. Serve then
// returns nil.
func (l *Listener) Close() error {
	l.cancel()
	return l.ln.Close()
}

// Serve is the accept loop. Before each Accept it takes a slot of global
// and of the current Handler's Limit, waiting while either is full, so a
// full proxy leaves new connections in the kernel's backlog. It returns nil
// after Close, or the first Accept error that is not temporary.
func (l *Listener) Serve(global *ConnLimit) error {
	if l.handler.Load() == nil {
		return fmt.Errorf("listener %s: no handler set (call SetHandler before Serve)", l.name)
	}
	backoff := time.Duration(0)
	for {
		if err := global.Acquire(l.ctx); err != nil {
			return nil
		}
		slot, ok := l.acquireFront(nil)
		if !ok {
			global.Release()
			return nil
		}
		conn, err := l.ln.Accept()
		if err != nil {
			slot.h.Limit().Release()
			global.Release()
			if l.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			if !temporaryAcceptError(err) {
				return fmt.Errorf("listener %s: accept: %w", l.name, err)
			}
			l.errored.Add(1)
			backoff = min(max(2*backoff, acceptBackoffMin), acceptBackoffMax)
			l.logAcceptError(err, backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-l.ctx.Done():
				t.Stop()
				return nil
			}
			continue
		}
		backoff = 0
		l.accepted.Add(1)

		// A reload during Accept: the connection belongs to the new
		// Handler, so trade the old Limit's slot for one of the new.
		if cur := l.handler.Load(); cur != slot {
			if slot, ok = l.acquireFront(slot); !ok {
				conn.Close()
				global.Release()
				return nil
			}
		}

		in := NewInitiator(conn, l.name, time.Now())
		if err := slot.h.Admit(in); err != nil {
			conn.Close()
			in.Release()
			slot.h.Limit().Release()
			global.Release()
			l.refused.Add(1)
			continue
		}
		l.active.Add(1)
		go l.serve(slot.h, in, global)
	}
}

// acquireFront takes a slot of the current Handler's Limit, following
// SetHandler swaps while it waits. held, if not nil, is a Handler whose
// slot the caller holds and gives up. It reports false when the listener
// is closed.
func (l *Listener) acquireFront(held *handlerSlot) (*handlerSlot, bool) {
	for {
		slot := l.handler.Load()
		if slot == held {
			return slot, true
		}
		if held != nil {
			held.h.Limit().Release()
			held = nil
		}
		if err := slot.h.Limit().Acquire(slot.ctx); err != nil {
			if l.ctx.Err() != nil {
				return nil, false
			}
			continue // swapped while waiting: wait on the new Handler's Limit
		}
		held = slot
	}
}

func (l *Listener) serve(h Handler, in *Initiator, global *ConnLimit) {
	defer func() {
		if p := recover(); p != nil && l.logger != nil {
			l.logger.Error("connection handler panicked; connection closed",
				slog.String("listener", l.name),
				slog.String("source", in.Source.String()),
				slog.Any("panic", p),
				slog.String("stack", string(debug.Stack())))
		}
		in.Conn.Close()
		in.Release()
		h.Limit().Release()
		global.Release()
		l.active.Add(-1)
	}()
	h.Serve(in)
}

func (l *Listener) logAcceptError(err error, backoff time.Duration) {
	if l.logger == nil {
		return
	}
	suppressed, ok := l.logAccept.allow(time.Now())
	if !ok {
		return
	}
	l.logger.Warn("accept failed; backing off (raise the open-file limit or lower maxconn if this is EMFILE/ENFILE)",
		slog.String("listener", l.name),
		slog.String("error", err.Error()),
		slog.Duration("backoff", backoff),
		slog.Uint64("suppressed", suppressed))
}

// temporaryAcceptError reports whether an Accept error is worth retrying:
// the process or system is out of descriptors or memory, or one pending
// connection went away before it could be accepted.
func temporaryAcceptError(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EINTR, syscall.EAGAIN, syscall.EPROTO, syscall.EPERM} {
		if errors.Is(err, e) {
			return true
		}
	}
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}
