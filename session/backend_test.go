package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-proxy/strata/layers"
)

// lbConnector is a Connector that needs no socket.
type lbConnector struct{ addr string }

func (c lbConnector) Addr() string { return c.addr }

func (c lbConnector) Connect(context.Context, *layers.Initiator) (net.Conn, error) {
	a, b := net.Pipe()
	b.Close()
	return a, nil
}

// lbServers makes n servers named s0…s(n-1) with the given weights (1 when
// weights is short) and maxconn.
func lbServers(n, maxConn int, weights ...int) []ServerOptions {
	out := make([]ServerOptions, n)
	for i := range out {
		w := 1
		if i < len(weights) {
			w = weights[i]
		}
		addr := fmt.Sprintf("10.0.0.%d:80", i+1)
		out[i] = ServerOptions{Name: fmt.Sprintf("s%d", i), Address: addr, Weight: w, MaxConn: maxConn, Connector: lbConnector{addr}}
	}
	return out
}

func lbBackend(t testing.TB, o BackendOptions) *Backend {
	t.Helper()
	if o.Name == "" {
		o.Name = "be"
	}
	b, err := NewBackend(o)
	if err != nil {
		t.Fatalf("NewBackend: %v", err)
	}
	return b
}

// lbAcquire acquires with no queueing expected and fails the test on error.
func lbAcquire(t testing.TB, b *Backend, client netip.Addr, tried ...*Server) *Server {
	t.Helper()
	s, _, err := b.Acquire(context.Background(), client, tried)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	return s
}

// lbWaitFor polls cond until it holds or fails the test after d.
func lbWaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// lbLog records log lines for assertions.
type lbLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *lbLog) logger() *slog.Logger { return slog.New(lbLogHandler{l}) }

func (l *lbLog) has(msg string, attrs ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
next:
	for _, line := range l.lines {
		if !strings.HasPrefix(line, msg) {
			continue
		}
		for _, a := range attrs {
			if !strings.Contains(line, a) {
				continue next
			}
		}
		return true
	}
	return false
}

func (l *lbLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

type lbLogHandler struct{ l *lbLog }

func (h lbLogHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h lbLogHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h lbLogHandler) WithGroup(string) slog.Handler            { return h }
func (h lbLogHandler) Handle(_ context.Context, r slog.Record) error {
	var sb strings.Builder
	sb.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&sb, " %s=%s", a.Key, a.Value)
		return true
	})
	h.l.mu.Lock()
	h.l.lines = append(h.l.lines, sb.String())
	h.l.mu.Unlock()
	return nil
}

var lbClient = netip.MustParseAddr("192.0.2.1")

var lbAlgorithms = []string{"roundrobin", "leastconn", "random", "source", "first"}

func TestNewBackendErrors(t *testing.T) {
	tests := []struct {
		name string
		o    BackendOptions
		want string
	}{
		{"no servers", BackendOptions{Name: "api"}, `backend "api": no servers`},
		{"unknown balance", BackendOptions{Name: "api", Balance: "fastest", Servers: lbServers(1, 0)}, `unknown balance "fastest"`},
		{"unknown health kind", BackendOptions{Name: "api", Servers: lbServers(1, 0), Health: &HealthOptions{Kind: "smtp"}}, `unknown health check kind "smtp"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewBackend(tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewBackend error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestBackendAccessors(t *testing.T) {
	b := lbBackend(t, BackendOptions{Name: "api", Retries: 2, Servers: []ServerOptions{{Address: "10.0.0.1:80", Weight: 1}}})
	if b.Name() != "api" || b.Retries() != 2 || len(b.Servers()) != 1 {
		t.Fatalf("Name, Retries, Servers = %q, %d, %d", b.Name(), b.Retries(), len(b.Servers()))
	}
	s := b.Servers()[0]
	if s.Name() != "10.0.0.1:80" || s.Address() != "10.0.0.1:80" || s.Connector() != nil || !s.Up() {
		t.Fatalf("server = %q %q %v up=%v; want the address as the name, no connector, up", s.Name(), s.Address(), s.Connector(), s.Up())
	}
}

// TestBackup checks that backups serve only when no primary is usable, and
// that drained (weight 0) servers are never picked.
func TestBackup(t *testing.T) {
	for _, alg := range lbAlgorithms {
		t.Run(alg, func(t *testing.T) {
			servers := lbServers(4, 0, 1, 1, 0, 1)
			servers[3].Backup = true
			b := lbBackend(t, BackendOptions{Balance: alg, Servers: servers})
			s := b.Servers()
			pickSet := func() map[string]int {
				got := map[string]int{}
				for i := range 100 {
					srv := lbAcquire(t, b, netip.AddrFrom4([4]byte{10, 1, 0, byte(i)}))
					got[srv.Name()]++
					srv.Release()
				}
				return got
			}
			got := pickSet()
			if got["s2"] != 0 || got["s3"] != 0 {
				t.Fatalf("primaries up: picks %v; want no drained s2 and no backup s3", got)
			}
			s[0].healthy.Store(false)
			s[1].healthy.Store(false)
			if got := pickSet(); got["s3"] != 100 {
				t.Fatalf("primaries down: picks %v; want all on backup s3", got)
			}
			s[3].healthy.Store(false)
			_, _, err := b.Acquire(context.Background(), lbClient, nil)
			if !errors.Is(err, layers.ErrNoServer) || err.Error() != "proxy queue: no server available" {
				t.Fatalf("all down: err = %v; want ErrNoServer", err)
			}
			s[1].healthy.Store(true)
			if got := pickSet(); got["s1"] != 100 {
				t.Fatalf("one primary back: picks %v; want all on s1", got)
			}
		})
	}
}

// TestTriedMovesOn checks that a retry avoids the servers already tried
// when another is usable, and falls back to them when none is.
func TestTriedMovesOn(t *testing.T) {
	for _, alg := range lbAlgorithms {
		t.Run(alg, func(t *testing.T) {
			b := lbBackend(t, BackendOptions{Balance: alg, Servers: lbServers(3, 0)})
			for i := range 50 {
				client := netip.AddrFrom4([4]byte{10, 2, 0, byte(i)})
				first := lbAcquire(t, b, client)
				first.Release()
				second := lbAcquire(t, b, client, first)
				second.Release()
				if second == first {
					t.Fatalf("client %v: retry got %s again", client, first.Name())
				}
				third := lbAcquire(t, b, client, first, second)
				third.Release()
				if third == first || third == second {
					t.Fatalf("client %v: second retry got %s; tried %s, %s", client, third.Name(), first.Name(), second.Name())
				}
				again := lbAcquire(t, b, client, b.Servers()...)
				again.Release()
			}
		})
	}
}

// TestMaxConnConcurrent hammers every algorithm with 50 goroutines and
// checks that no server ever holds more than maxconn slots, that everyone
// is served through the queue, and that no slot leaks.
func TestMaxConnConcurrent(t *testing.T) {
	const (
		workers = 50
		rounds  = 40
		maxConn = 3
	)
	for _, alg := range lbAlgorithms {
		t.Run(alg, func(t *testing.T) {
			b := lbBackend(t, BackendOptions{Balance: alg, Servers: lbServers(3, maxConn, 3, 2, 1), QueueTimeout: 10 * time.Second})
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for w := range workers {
				wg.Go(func() {
					client := netip.AddrFrom4([4]byte{10, 3, 0, byte(w)})
					for range rounds {
						s, _, err := b.Acquire(context.Background(), client, nil)
						if err != nil {
							errs <- err
							return
						}
						if n := s.Active(); n > maxConn {
							errs <- fmt.Errorf("%s holds %d slots", s.Name(), n)
						}
						time.Sleep(50 * time.Microsecond)
						s.Release()
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			for _, s := range b.Servers() {
				if s.MaxActive() > maxConn || s.Active() != 0 {
					t.Errorf("%s: MaxActive %d (maxconn %d), Active %d at the end", s.Name(), s.MaxActive(), maxConn, s.Active())
				}
			}
			if q := b.Queued(); q != 0 {
				t.Errorf("Queued() = %d at the end", q)
			}
		})
	}
}

// TestQueueCancelNoLeak mixes waiters that give up (short contexts) with
// waiters that wait, and checks that no slot is lost on the way.
func TestQueueCancelNoLeak(t *testing.T) {
	b := lbBackend(t, BackendOptions{Servers: lbServers(2, 1), QueueTimeout: 10 * time.Second})
	var wg sync.WaitGroup
	for w := range 20 {
		wg.Go(func() {
			for i := range 20 {
				ctx := context.Background()
				if (w+i)%3 == 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, time.Duration(i%4)*50*time.Microsecond)
					defer cancel()
				}
				s, _, err := b.Acquire(ctx, lbClient, nil)
				if err != nil {
					continue
				}
				time.Sleep(20 * time.Microsecond)
				s.Release()
			}
		})
	}
	wg.Wait()
	for _, s := range b.Servers() {
		if s.Active() != 0 || s.MaxActive() > 1 {
			t.Errorf("%s: Active %d, MaxActive %d; want 0 and ≤ 1", s.Name(), s.Active(), s.MaxActive())
		}
	}
	// Every slot is still there: both can be taken at once.
	a, c := lbAcquire(t, b, lbClient), lbAcquire(t, b, lbClient)
	if a == c {
		t.Fatalf("both acquires got %s", a.Name())
	}
}

type lbResult struct {
	s      *Server
	waited time.Duration
	err    error
}

// lbAcquireAsync starts an Acquire and waits until it is queued.
func lbAcquireAsync(t *testing.T, ctx context.Context, b *Backend, client netip.Addr) <-chan lbResult {
	t.Helper()
	before := b.Queued()
	ch := make(chan lbResult, 1)
	go func() {
		s, d, err := b.Acquire(ctx, client, nil)
		ch <- lbResult{s, d, err}
	}()
	lbWaitFor(t, 2*time.Second, "the acquire to queue", func() bool { return b.Queued() == before+1 })
	return ch
}

func TestQueue(t *testing.T) {
	t.Run("waits then succeeds", func(t *testing.T) {
		b := lbBackend(t, BackendOptions{Servers: lbServers(1, 1), QueueTimeout: 5 * time.Second})
		held := lbAcquire(t, b, lbClient)
		ch := lbAcquireAsync(t, context.Background(), b, lbClient)
		time.Sleep(20 * time.Millisecond)
		held.Release()
		r := <-ch
		if r.err != nil || r.s != held || r.waited < 20*time.Millisecond {
			t.Fatalf("queued acquire = %v, %v, %v; want the server after ≥ 20ms", r.s, r.waited, r.err)
		}
		if held.Active() != 1 || b.Queued() != 0 {
			t.Fatalf("Active %d, Queued %d; want 1, 0", held.Active(), b.Queued())
		}
	})
	t.Run("fifo", func(t *testing.T) {
		b := lbBackend(t, BackendOptions{Servers: lbServers(1, 1), QueueTimeout: 5 * time.Second})
		held := lbAcquire(t, b, lbClient)
		var chs []<-chan lbResult
		for range 4 {
			chs = append(chs, lbAcquireAsync(t, context.Background(), b, lbClient))
		}
		held.Release()
		for i, ch := range chs {
			r := <-ch
			if r.err != nil {
				t.Fatalf("waiter %d: %v", i, r.err)
			}
			for j, other := range chs[i+1:] {
				select {
				case <-other:
					t.Fatalf("waiter %d served before waiter %d released", i+j+1, i)
				default:
				}
			}
			r.s.Release()
		}
	})
	tests := []struct {
		name    string
		timeout time.Duration
	}{
		{"timeout 100ms", 100 * time.Millisecond},
		{"timeout 250ms", 250 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := lbBackend(t, BackendOptions{Servers: lbServers(1, 1), QueueTimeout: tt.timeout})
			lbAcquire(t, b, lbClient)
			// A loaded machine can wake us late once; early never.
			for attempt := 1; ; attempt++ {
				start := time.Now()
				_, waited, err := b.Acquire(context.Background(), lbClient, nil)
				elapsed := time.Since(start)
				if !errors.Is(err, layers.ErrTimeout) || err.Error() != "proxy queue timeout" {
					t.Fatalf("err = %v; want proxy queue timeout", err)
				}
				var se *layers.StageError
				if !errors.As(err, &se) || se.Side != layers.SideProxy || se.Phase != layers.PhaseQueue {
					t.Fatalf("err = %#v; want a proxy queue StageError", err)
				}
				if b.Queued() != 0 {
					t.Fatalf("Queued() = %d after the timeout", b.Queued())
				}
				if waited < tt.timeout || elapsed < tt.timeout {
					t.Fatalf("gave up after %v (waited %v); want %v", elapsed, waited, tt.timeout)
				}
				if elapsed <= tt.timeout+50*time.Millisecond {
					break
				}
				if attempt == 3 {
					t.Fatalf("gave up after %v (waited %v); want %v + at most 50ms", elapsed, waited, tt.timeout)
				}
			}
		})
	}
	t.Run("no queue timeout fails at once", func(t *testing.T) {
		b := lbBackend(t, BackendOptions{Servers: lbServers(1, 1)})
		lbAcquire(t, b, lbClient)
		_, waited, err := b.Acquire(context.Background(), lbClient, nil)
		if !errors.Is(err, layers.ErrTimeout) || waited != 0 {
			t.Fatalf("Acquire = %v, %v; want an immediate queue timeout", waited, err)
		}
	})
	t.Run("queue full", func(t *testing.T) {
		b := lbBackend(t, BackendOptions{Servers: lbServers(1, 1), QueueMax: 2, QueueTimeout: 5 * time.Second})
		held := lbAcquire(t, b, lbClient)
		ch1 := lbAcquireAsync(t, context.Background(), b, lbClient)
		ch2 := lbAcquireAsync(t, context.Background(), b, lbClient)
		_, _, err := b.Acquire(context.Background(), lbClient, nil)
		if !errors.Is(err, layers.ErrQueueFull) || err.Error() != "proxy queue: queue full" {
			t.Fatalf("err = %v; want proxy queue: queue full", err)
		}
		held.Release()
		r := <-ch1
		r.s.Release()
		r = <-ch2
		r.s.Release()
	})
	t.Run("context cancel leaves the queue", func(t *testing.T) {
		b := lbBackend(t, BackendOptions{Servers: lbServers(1, 1), QueueTimeout: 5 * time.Second})
		held := lbAcquire(t, b, lbClient)
		ctx, cancel := context.WithCancel(context.Background())
		ch := lbAcquireAsync(t, ctx, b, lbClient)
		cancel()
		r := <-ch
		if !errors.Is(r.err, context.Canceled) || b.Queued() != 0 {
			t.Fatalf("err = %v, Queued %d; want context canceled and an empty queue", r.err, b.Queued())
		}
		held.Release()
		if held.Active() != 0 {
			t.Fatalf("Active() = %d after release", held.Active())
		}
	})
	t.Run("slot handed to a cancelled waiter goes on", func(t *testing.T) {
		b := lbBackend(t, BackendOptions{Servers: lbServers(1, 1), QueueTimeout: 5 * time.Second})
		held := lbAcquire(t, b, lbClient)
		ctx, cancel := context.WithCancel(context.Background())
		w := &queueWaiter{req: pickReq{client: lbClient}, ready: make(chan struct{}, 1)}
		b.mu.Lock()
		b.queue.push(w)
		b.mu.Unlock()
		next := lbAcquireAsync(t, context.Background(), b, lbClient)
		held.Release() // hands the slot to w
		cancel()
		if s, _, err := b.wait(ctx, w); err == nil || s != nil {
			t.Fatalf("cancelled waiter got %v, %v", s, err)
		}
		r := <-next
		if r.err != nil || r.s != held || held.Active() != 1 {
			t.Fatalf("next waiter = %v, %v with Active %d; want the slot given on", r.s, r.err, held.Active())
		}
	})
	t.Run("waiters fail when everything goes down", func(t *testing.T) {
		b := lbBackend(t, BackendOptions{Servers: lbServers(1, 1), QueueTimeout: 5 * time.Second, Passive: &PassiveOptions{Failures: 1, Eject: time.Minute}})
		held := lbAcquire(t, b, lbClient)
		ch := lbAcquireAsync(t, context.Background(), b, lbClient)
		held.Observe(errors.New("connection refused"))
		if r := <-ch; !errors.Is(r.err, layers.ErrNoServer) {
			t.Fatalf("err = %v; want ErrNoServer", r.err)
		}
		held.Release()
	})
	t.Run("a server coming up serves the queue", func(t *testing.T) {
		b := lbBackend(t, BackendOptions{Servers: lbServers(2, 1), QueueTimeout: 5 * time.Second})
		s0, s1 := b.Servers()[0], b.Servers()[1]
		s1.healthy.Store(false)
		lbAcquire(t, b, lbClient)
		ch := lbAcquireAsync(t, context.Background(), b, lbClient)
		s1.setHealthy(true, "test")
		r := <-ch
		if r.err != nil || r.s != s1 {
			t.Fatalf("queued acquire = %v, %v; want s1 (s0 %v)", r.s, r.err, s0)
		}
	})
}

func TestPassiveEjection(t *testing.T) {
	const eject = 100 * time.Millisecond
	var log lbLog
	b := lbBackend(t, BackendOptions{Name: "api", Servers: lbServers(2, 0), Passive: &PassiveOptions{Failures: 3, Eject: eject}, Logger: log.logger()})
	s0, s1 := b.Servers()[0], b.Servers()[1]
	refused := errors.New("connection refused")

	s0.Observe(refused)
	s0.Observe(refused)
	s0.Observe(nil) // a success clears the count
	s0.Observe(refused)
	s0.Observe(refused)
	if !s0.Up() {
		t.Fatal("s0 ejected after 2 consecutive failures; want 3")
	}
	s0.Observe(refused)
	ejectedAt := time.Now()
	if s0.Up() {
		t.Fatal("s0 up after 3 consecutive failures")
	}
	if !log.has("server ejected", "backend=api", "server=s0", "reason=connection refused") {
		t.Fatalf("no ejection logged: %q", &log)
	}
	for range 20 {
		if s := lbAcquire(t, b, lbClient); s != s1 {
			t.Fatalf("picked %s while s0 is ejected", s.Name())
		} else {
			s.Release()
		}
	}
	lbWaitFor(t, time.Second, "s0 to return", s0.Up)
	if d := time.Since(ejectedAt); d < eject-10*time.Millisecond {
		t.Fatalf("s0 back after %v; want %v", d, eject)
	}
	// Half-open: one more failure ejects it again…
	s0.Observe(refused)
	if s0.Up() {
		t.Fatal("s0 up after a failure while half-open")
	}
	lbWaitFor(t, time.Second, "s0 to return", s0.Up)
	// …and one success closes it.
	s0.Observe(nil)
	s0.Observe(refused)
	if !s0.Up() {
		t.Fatal("s0 ejected by one failure after a success")
	}
}

func TestObserveWithoutPassive(t *testing.T) {
	b := lbBackend(t, BackendOptions{Servers: lbServers(1, 0)})
	s := b.Servers()[0]
	for range 100 {
		s.Observe(errors.New("refused"))
	}
	if !s.Up() {
		t.Fatal("server ejected without PassiveOptions")
	}
}

func TestReleaseTwiceIsRefused(t *testing.T) {
	var log lbLog
	b := lbBackend(t, BackendOptions{Servers: lbServers(1, 1), Logger: log.logger()})
	s := lbAcquire(t, b, lbClient)
	s.Release()
	s.Release()
	if s.Active() != 0 || !log.has("server slot released twice") {
		t.Fatalf("Active %d, logs %q", s.Active(), &log)
	}
}
