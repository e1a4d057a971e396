package layers

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// testHandler admits with rules, holds limit and runs serve; it counts
// what it did.
type testHandler struct {
	name   string
	rules  *L4Rules
	limit  *ConnLimit
	serve  func(in *Initiator)
	pool   *BufferPool
	served atomic.Int64
	buffer atomic.Int64 // buffers taken by Serve
	cur    atomic.Int64
	peak   atomic.Int64
}

func (h *testHandler) Admit(in *Initiator) error { return h.rules.Check(in) }
func (h *testHandler) Limit() *ConnLimit         { return h.limit }
func (h *testHandler) Serve(in *Initiator) {
	h.served.Add(1)
	n := h.cur.Add(1)
	defer h.cur.Add(-1)
	for {
		p := h.peak.Load()
		if n <= p || h.peak.CompareAndSwap(p, n) {
			break
		}
	}
	if h.pool != nil {
		b := h.pool.Get()
		h.buffer.Add(1)
		defer h.pool.Put(b)
	}
	if h.serve != nil {
		h.serve(in)
		return
	}
	// Echo what the client says, with the handler's name first.
	io.WriteString(in.Conn, h.name)
	io.Copy(in.Conn, in.Conn)
}

// checkGoroutines fails the test if goroutines started during it are still
// running shortly after it ends.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Errorf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// startListener listens on 127.0.0.1:0 with h, runs Serve with global and
// closes everything at cleanup, checking that Serve returned nil.
func startListener(t *testing.T, h Handler, global *ConnLimit) *Listener {
	t.Helper()
	l, err := Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.SetHandler(h)
	done := make(chan error, 1)
	go func() { done <- l.Serve(global) }()
	t.Cleanup(func() {
		l.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve returned %v after Close, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Close")
		}
		waitFor(t, "live connections to end", func() bool { return l.Active() == 0 })
	})
	return l
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func dial(t *testing.T, l *Listener) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", l.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// roundTrip sends msg and reads back as many bytes as want has.
func roundTrip(t *testing.T, c net.Conn, msg, want string) {
	t.Helper()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(want))
	n, err := io.ReadFull(c, buf)
	if err != nil {
		t.Fatalf("read after %q: %v", buf[:n], err)
	}
	if string(buf) != want {
		t.Fatalf("sent %q, got %q, want %q", msg, buf, want)
	}
}

func TestListenerServes(t *testing.T) {
	checkGoroutines(t)
	h := &testHandler{name: "A"}
	l := startListener(t, h, nil)
	if l.Name() != "127.0.0.1:0" {
		t.Fatalf("Name = %q", l.Name())
	}
	c := dial(t, l)
	roundTrip(t, c, "hello", "Ahello")
	if l.Active() != 1 {
		t.Fatalf("Active = %d, want 1", l.Active())
	}
	c.Close()
	waitFor(t, "Active to drop", func() bool { return l.Active() == 0 })
	if st := l.Stats(); st.Accepted != 1 || st.Refused != 0 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestListenerServeWithoutHandler(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := ListenFrom(ln, "x")
	t.Cleanup(func() { l.Close() })
	if err := l.Serve(nil); err == nil {
		t.Fatal("Serve with no handler returned nil")
	}
}

func TestListenUnsupportedNetwork(t *testing.T) {
	if _, err := Listen("udp", "127.0.0.1:0"); err == nil {
		t.Fatal("Listen udp succeeded")
	}
}

// A refused connection must cost no session and no buffer: with deny-all
// rules, Serve never runs and the pool is never touched.
func TestListenerRefusedAllocatesNothing(t *testing.T) {
	checkGoroutines(t)
	const n = 20
	h := &testHandler{
		rules: NewL4Rules(L4Options{Deny: prefixes(t, "0.0.0.0/0", "::/0")}, nil),
		limit: NewConnLimit(5),
		pool:  NewBufferPool(0),
	}
	global := NewConnLimit(3)
	l := startListener(t, h, global)
	for i := 0; i < n; i++ {
		c := dial(t, l)
		// The listener closes a refused connection: the client sees EOF.
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("read on a refused connection succeeded")
		}
	}
	waitFor(t, "refusals", func() bool { return l.Stats().Refused == n })
	if got := h.served.Load(); got != 0 {
		t.Fatalf("Serve ran %d times for refused connections", got)
	}
	if got := h.buffer.Load(); got != 0 {
		t.Fatalf("%d buffers taken for refused connections", got)
	}
	if st := l.Stats(); st.Accepted != n || st.Refused != n {
		t.Fatalf("Stats = %+v, want %d accepted and refused", st, n)
	}
	if st := h.rules.Stats(); st.Denied != n {
		t.Fatalf("L4 Stats = %+v", st)
	}
	// Refusals gave their slots back (the listener holds the next one
	// while it waits in Accept).
	waitFor(t, "slots back", func() bool { return global.InUse() <= 1 && h.limit.InUse() <= 1 })
}

func TestListenerCapsNeverExceeded(t *testing.T) {
	tests := []struct {
		name           string
		global, front  int
		wantPeakAtMost int
	}{
		{name: "global cap", global: 2, front: 0, wantPeakAtMost: 2},
		{name: "frontend cap", global: 0, front: 3, wantPeakAtMost: 3},
		{name: "both", global: 4, front: 2, wantPeakAtMost: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkGoroutines(t)
			h := &testHandler{name: "A", limit: NewConnLimit(tt.front)}
			global := NewConnLimit(tt.global)
			h.serve = func(in *Initiator) {
				if n := global.InUse(); tt.global > 0 && n > tt.global {
					t.Errorf("global InUse %d > %d", n, tt.global)
				}
				time.Sleep(20 * time.Millisecond)
				io.WriteString(in.Conn, "A")
			}
			l := startListener(t, h, global)
			const clients = 12
			var wg sync.WaitGroup
			for i := 0; i < clients; i++ {
				c := dial(t, l) // completes in the kernel backlog even when full
				wg.Add(1)
				go func() {
					defer wg.Done()
					b := make([]byte, 1)
					if _, err := io.ReadFull(c, b); err != nil {
						t.Errorf("client %d: %v", i, err)
					}
				}()
			}
			wg.Wait()
			if p := h.peak.Load(); p > int64(tt.wantPeakAtMost) || p < 1 {
				t.Fatalf("peak concurrent connections = %d, want 1..%d", p, tt.wantPeakAtMost)
			}
			if got := h.served.Load(); got != clients {
				t.Fatalf("served %d, want %d", got, clients)
			}
			if st := l.Stats(); st.Refused != 0 {
				t.Fatalf("Stats = %+v: a full cap must wait, not refuse", st)
			}
		})
	}
}

// fakeListener returns its errors from Accept, then its conns, then waits
// for Close.
type fakeListener struct {
	mu     sync.Mutex
	errs   []error
	conns  []net.Conn
	closed chan struct{}
	once   sync.Once
}

func (f *fakeListener) Accept() (net.Conn, error) {
	f.mu.Lock()
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		f.mu.Unlock()
		return nil, err
	}
	if len(f.conns) > 0 {
		c := f.conns[0]
		f.conns = f.conns[1:]
		f.mu.Unlock()
		return c, nil
	}
	f.mu.Unlock()
	<-f.closed
	return nil, net.ErrClosed
}

func (f *fakeListener) Close() error {
	f.once.Do(func() { close(f.closed) })
	return nil
}

func (f *fakeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

func TestListenerAcceptBackoff(t *testing.T) {
	checkGoroutines(t)
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: fmt.Errorf("accept4: %w", syscall.EMFILE)}
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close() })
	fl := &fakeListener{errs: []error{emfile, emfile, emfile, &net.OpError{Op: "accept", Err: syscall.ECONNABORTED}}, conns: []net.Conn{server}, closed: make(chan struct{})}
	h := &testHandler{serve: func(in *Initiator) {
		// net.Pipe is synchronous: read before writing.
		b := make([]byte, 1)
		io.ReadFull(in.Conn, b)
		in.Conn.Write([]byte{'A', b[0]})
	}}
	l := ListenFrom(fl, "fake")
	l.SetHandler(h)
	global := NewConnLimit(1)
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- l.Serve(global) }()

	client.SetDeadline(time.Now().Add(5 * time.Second))
	roundTrip(t, client, "x", "Ax")
	// 5 + 10 + 20 + 40 ms of back-off before the connection was accepted.
	if el := time.Since(start); el < 75*time.Millisecond {
		t.Fatalf("served after %v, want at least 75ms of back-off", el)
	}
	if st := l.Stats(); st.AcceptErrors != 4 || st.Accepted != 1 {
		t.Fatalf("Stats = %+v", st)
	}
	client.Close()
	waitFor(t, "connection end", func() bool { return l.Active() == 0 })
	l.Close()
	if err := <-done; err != nil {
		t.Fatalf("Serve = %v", err)
	}
	if global.InUse() != 0 {
		t.Fatalf("global InUse = %d after Serve returned", global.InUse())
	}
}

func TestListenerFatalAcceptError(t *testing.T) {
	boom := errors.New("boom")
	fl := &fakeListener{errs: []error{boom}, closed: make(chan struct{})}
	l := ListenFrom(fl, "fake")
	l.SetHandler(&testHandler{})
	global := NewConnLimit(1)
	if err := l.Serve(global); !errors.Is(err, boom) {
		t.Fatalf("Serve = %v, want boom", err)
	}
	if global.InUse() != 0 {
		t.Fatalf("global InUse = %d", global.InUse())
	}
}

// Close must end Serve even while it waits for a slot.
func TestListenerCloseWhileFull(t *testing.T) {
	checkGoroutines(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := ListenFrom(ln, "full")
	l.SetHandler(&testHandler{limit: NewConnLimit(1)})
	global := NewConnLimit(1)
	global.TryAcquire() // someone else holds the only slot
	done := make(chan error, 1)
	go func() { done <- l.Serve(global) }()
	time.Sleep(20 * time.Millisecond)
	l.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve still waiting after Close")
	}
	global.Release()
}

func TestListenerSetHandlerSwap(t *testing.T) {
	checkGoroutines(t)
	a := &testHandler{name: "A", limit: NewConnLimit(100)}
	b := &testHandler{name: "B", limit: NewConnLimit(100)}
	l := startListener(t, a, NewConnLimit(1000))

	// A live connection on A stays on A across the swap.
	liveA := dial(t, l)
	roundTrip(t, liveA, "1", "A1")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var seen sync.Map
	var count atomic.Int64
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := net.Dial("tcp", l.Addr().String())
				if err != nil {
					t.Errorf("dial: %v", err)
					return
				}
				c.SetDeadline(time.Now().Add(5 * time.Second))
				io.WriteString(c, "x")
				buf := make([]byte, 2)
				if _, err := io.ReadFull(c, buf); err != nil {
					t.Errorf("connection %d: %v", count.Load(), err)
					c.Close()
					return
				}
				seen.Store(string(buf[:1]), true)
				count.Add(1)
				c.Close()
			}
		}()
	}
	waitFor(t, "traffic on A", func() bool { return count.Load() > 50 })
	l.SetHandler(b)
	n := count.Load()
	waitFor(t, "traffic on B", func() bool { return count.Load() > n+50 })
	close(stop)
	wg.Wait()

	roundTrip(t, liveA, "2", "2")
	fresh := dial(t, l)
	roundTrip(t, fresh, "3", "B3")
	if _, ok := seen.Load("A"); !ok {
		t.Error("no connection served by A")
	}
	if _, ok := seen.Load("B"); !ok {
		t.Error("no connection served by B")
	}
	if st := l.Stats(); st.Refused != 0 {
		t.Fatalf("Stats = %+v: a swap must not refuse", st)
	}
}

// A swap must wake a loop waiting on the old Handler's full Limit.
func TestListenerSwapWhileWaitingOnOldLimit(t *testing.T) {
	checkGoroutines(t)
	release := make(chan struct{})
	a := &testHandler{name: "A", limit: NewConnLimit(1)}
	a.serve = func(in *Initiator) {
		io.WriteString(in.Conn, "A")
		<-release
	}
	l := startListener(t, a, nil)
	t.Cleanup(func() { close(release) })
	c1 := dial(t, l)
	if _, err := io.ReadFull(c1, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "A full", func() bool { return a.limit.InUse() == 1 })

	b := &testHandler{name: "B"}
	l.SetHandler(b)
	c2 := dial(t, l)
	roundTrip(t, c2, "x", "Bx")
}

func TestListenerInitiatorFacts(t *testing.T) {
	checkGoroutines(t)
	facts := make(chan *Initiator, 1)
	h := &testHandler{serve: func(in *Initiator) { facts <- in }}
	l := startListener(t, h, nil)
	c := dial(t, l)
	in := <-facts
	want := netip.MustParseAddrPort(c.LocalAddr().String())
	if in.Source != want || in.Remote != want || in.Listener != "127.0.0.1:0" || in.Proxied || in.Accepted.IsZero() {
		t.Fatalf("Initiator = %+v, want source %s", in, want)
	}
	if in.Dest.String() != l.Addr().String() {
		t.Fatalf("Dest = %s, want %s", in.Dest, l.Addr())
	}
}

func TestListenerRecoversHandlerPanic(t *testing.T) {
	checkGoroutines(t)
	h := &testHandler{serve: func(*Initiator) { panic("bad handler") }}
	l := startListener(t, h, nil)
	c := dial(t, l)
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read succeeded on a connection whose handler panicked")
	}
	waitFor(t, "Active to drop", func() bool { return l.Active() == 0 })
}
