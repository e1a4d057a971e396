package session

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-proxy/strata/layers"
)

// lbListen listens on addr ("127.0.0.1:0" for a fresh port), accepts and
// closes connections until the returned stop is called (also at cleanup).
func lbListen(t *testing.T, addr string) (string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	})
	var once sync.Once
	stop := func() { once.Do(func() { ln.Close(); wg.Wait() }) }
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

// lbStart starts b's health checks and stops them (and waits for the
// checkers to exit) when the test ends.
func lbStart(t *testing.T, b *Backend) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b.Start(ctx)
	b.Start(ctx) // idempotent
	t.Cleanup(func() { cancel(); b.checks.Wait() })
}

// lbFlakyConnector is a Connector whose Connect fails while failing is set,
// and that records the Initiators it was given.
type lbFlakyConnector struct {
	failing atomic.Bool
	calls   atomic.Int64
	bad     atomic.Bool // an Initiator with a client address was passed
}

func (c *lbFlakyConnector) Addr() string { return "fake" }

func (c *lbFlakyConnector) Connect(_ context.Context, in *layers.Initiator) (net.Conn, error) {
	c.calls.Add(1)
	if in == nil || in.Source.IsValid() || in.Dest.IsValid() || in.Conn != nil {
		c.bad.Store(true)
	}
	if c.failing.Load() {
		return nil, &layers.StageError{Side: layers.SideServer, Stage: "tls", Phase: layers.PhaseHandshake, Err: errors.New("bad certificate")}
	}
	a, b := net.Pipe()
	b.Close()
	return a, nil
}

func TestHealthTCP(t *testing.T) {
	addr, stop := lbListen(t, "127.0.0.1:0")
	var log lbLog
	b := lbBackend(t, BackendOptions{
		Name:    "api",
		Servers: []ServerOptions{{Name: "web1", Address: addr, Weight: 1}},
		Health:  &HealthOptions{Kind: "tcp", Interval: 20 * time.Millisecond, Timeout: 100 * time.Millisecond, Rise: 2, Fall: 3},
		Logger:  log.logger(),
	})
	s := b.Servers()[0]
	lbStart(t, b)
	if !s.Up() {
		t.Fatal("server down before any check")
	}
	time.Sleep(60 * time.Millisecond)
	if !s.Up() {
		t.Fatal("server down while its listener is open")
	}

	stop()
	start := time.Now()
	lbWaitFor(t, 2*time.Second, "server down", func() bool { return !s.Up() })
	if d := time.Since(start); d < 2*20*time.Millisecond {
		t.Fatalf("down after %v; want Fall (3) checks 20ms apart", d)
	}
	if !log.has("server down", "backend=api", "server=web1", "reason=dial tcp "+addr) {
		t.Fatalf("no down transition logged: %q", &log)
	}
	if _, _, err := b.Acquire(context.Background(), lbClient, nil); !errors.Is(err, layers.ErrNoServer) {
		t.Fatalf("Acquire with the server down: %v; want ErrNoServer", err)
	}

	lbListen(t, addr)
	start = time.Now()
	lbWaitFor(t, 2*time.Second, "server up", s.Up)
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Fatalf("up after %v; want Rise (2) checks 20ms apart", d)
	}
	if !log.has("server up", "backend=api", "server=web1") {
		t.Fatalf("no up transition logged: %q", &log)
	}
	lbAcquire(t, b, lbClient).Release()
}

func TestHealthTLS(t *testing.T) {
	var log lbLog
	conn := &lbFlakyConnector{}
	b := lbBackend(t, BackendOptions{
		Name:    "api",
		Servers: []ServerOptions{{Name: "web1", Address: "192.0.2.10:443", Weight: 1, Connector: conn}},
		Health:  &HealthOptions{Kind: "tls", Interval: 10 * time.Millisecond, Timeout: 50 * time.Millisecond, Rise: 1, Fall: 1},
		Logger:  log.logger(),
	})
	s := b.Servers()[0]
	lbStart(t, b)
	lbWaitFor(t, 2*time.Second, "a check", func() bool { return conn.calls.Load() > 0 })
	conn.failing.Store(true)
	lbWaitFor(t, 2*time.Second, "server down", func() bool { return !s.Up() })
	if !log.has("server down", "server=web1", "reason=server tls handshake: bad certificate") {
		t.Fatalf("no down transition logged: %q", &log)
	}
	conn.failing.Store(false)
	lbWaitFor(t, 2*time.Second, "server up", s.Up)
	if conn.bad.Load() {
		t.Fatal("the health Initiator carried a client")
	}
}

func TestHealthStopsWithContext(t *testing.T) {
	conn := &lbFlakyConnector{}
	b := lbBackend(t, BackendOptions{
		Servers: []ServerOptions{{Name: "a", Weight: 1, Connector: conn}, {Name: "b", Weight: 1, Connector: conn}},
		Health:  &HealthOptions{Kind: "tls", Interval: 5 * time.Millisecond},
	})
	ctx, cancel := context.WithCancel(context.Background())
	b.Start(ctx)
	lbWaitFor(t, 2*time.Second, "checks", func() bool { return conn.calls.Load() >= 4 })
	cancel()
	done := make(chan struct{})
	go func() { b.checks.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("health checkers still running after ctx was cancelled")
	}
}

func TestStartWithoutHealth(t *testing.T) {
	b := lbBackend(t, BackendOptions{Servers: lbServers(2, 0)})
	b.Start(context.Background())
	for _, s := range b.Servers() {
		if !s.Up() {
			t.Fatalf("%s down without health checks", s.Name())
		}
	}
}
