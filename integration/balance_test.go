package integration

import (
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestBalancing runs each algorithm through the whole pipeline.
func TestBalancing(t *testing.T) {
	s1, s2, s3 := serve(t, hello("s1")), serve(t, hello("s2")), serve(t, hello("s3"))
	cases := []struct {
		balance string
		n       int
		check   func(t *testing.T, counts map[string]int)
	}{
		{"roundrobin", 60, func(t *testing.T, c map[string]int) {
			if c["s1"] != 30 || c["s2"] != 20 || c["s3"] != 10 {
				t.Errorf("weights 3:2:1 over 60 connections gave %v, want exactly 30/20/10", c)
			}
		}},
		{"source", 30, func(t *testing.T, c map[string]int) {
			if len(c) != 1 {
				t.Errorf("one client address spread over %v, want one sticky server", c)
			}
		}},
		{"first", 10, func(t *testing.T, c map[string]int) {
			if c["s1"] != 10 {
				t.Errorf("first gave %v, want all on s1 (it has free slots)", c)
			}
		}},
		{"leastconn", 30, func(t *testing.T, c map[string]int) {
			if len(c) != 3 {
				t.Errorf("leastconn used %v, want all three servers (equal load, ties rotate)", c)
			}
		}},
		{"random", 60, func(t *testing.T, c map[string]int) {
			if len(c) != 3 || c["s1"] <= c["s3"] {
				t.Errorf("random gave %v, want all three and weight 3 above weight 1", c)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.balance, func(t *testing.T) {
			front := freeAddr(t)
			startStrata(t, fmt.Sprintf(`frontends:
  lb: { bind: %q, mode: tcp, default_backend: app }
backends:
  app:
    balance: %s
    servers:
      - { name: s1, address: %q, weight: 3 }
      - { name: s2, address: %q, weight: 2 }
      - { name: s3, address: %q, weight: 1 }
`, front, tc.balance, s1, s2, s3))
			counts := map[string]int{}
			for i := 0; i < tc.n; i++ {
				c := plainDial(t, front)
				counts[readLine(t, c)]++
				c.Close()
			}
			tc.check(t, counts)
		})
	}
}

// TestMaxconnQueue: a server at maxconn makes the next client wait for a
// slot; the wait ends with the queue timeout, on time.
func TestMaxconnQueue(t *testing.T) {
	var live, most atomic.Int32
	release := make(chan struct{})
	backend := serve(t, func(c net.Conn) {
		n := live.Add(1)
		defer live.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		io.WriteString(c, "in\n")
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
	})
	front := freeAddr(t)
	_, logs := startStrata(t, fmt.Sprintf(`frontends:
  q: { bind: %q, mode: tcp, default_backend: app }
backends:
  app:
    servers: [ { address: %q, maxconn: 2 } ]
    queue: { timeout: 400ms }
`, front, backend))
	first := []net.Conn{plainDial(t, front), plainDial(t, front)}
	for _, c := range first {
		if got := readLine(t, c); got != "in" {
			t.Fatal(got)
		}
	}
	start := time.Now()
	waiter := plainDial(t, front)
	waiter.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(waiter)
	waited := time.Since(start)
	if len(b) != 0 {
		t.Fatalf("queued client got %q past maxconn", b)
	}
	if waited < 350*time.Millisecond || waited > 1500*time.Millisecond {
		t.Errorf("queue timeout after %v, want about 400ms", waited)
	}
	logs.waitAccess(t, func(m map[string]any) bool { return m["term"] == "proxy queue timeout" })

	// A client queued behind a slot that frees in time gets through.
	queued := plainDial(t, front)
	time.Sleep(100 * time.Millisecond)
	first[0].Close()
	close(release)
	if got := readLine(t, queued); got != "in" {
		t.Fatalf("queued client: %q", got)
	}
	if m := most.Load(); m > 2 {
		t.Fatalf("server saw %d concurrent connections, maxconn is 2", m)
	}
}

// TestHealthEjectionAndReturn: a server whose checks fail is taken out of
// rotation and comes back when it answers again.
func TestHealthEjectionAndReturn(t *testing.T) {
	good := serve(t, hello("good"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	flaky := ln.Addr().String()
	ln.Close()
	front := freeAddr(t)
	_, logs := startStrata(t, fmt.Sprintf(`frontends:
  h: { bind: %q, mode: tcp, default_backend: app }
backends:
  app:
    servers:
      - { name: good, address: %q }
      - { name: flaky, address: %q }
    health: { type: tcp, interval: 50ms, timeout: 200ms, rise: 2, fall: 2 }
`, front, good, flaky))
	waitLog(t, logs, "server down", "flaky")
	for i := 0; i < 6; i++ {
		c := plainDial(t, front)
		if got := readLine(t, c); got != "good" {
			t.Fatalf("connection %d reached %q while flaky is down", i, got)
		}
		c.Close()
	}
	ln2, err := net.Listen("tcp", flaky)
	if err != nil {
		t.Skipf("cannot rebind %s: %v", flaky, err)
	}
	go func() {
		for {
			c, err := ln2.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "flaky\n")
			c.Close()
		}
	}()
	t.Cleanup(func() { ln2.Close() })
	waitLog(t, logs, "server up", "flaky")
	seen := map[string]bool{}
	for i := 0; i < 6; i++ {
		c := plainDial(t, front)
		seen[readLine(t, c)] = true
		c.Close()
	}
	if !seen["flaky"] || !seen["good"] {
		t.Fatalf("after return, connections reached %v, want both", seen)
	}
}

// waitLog waits for an operational log line msg that mentions server.
func waitLog(t *testing.T, logs *logSink, msg, server string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, r := range logs.records(msg) {
			if fmt.Sprint(r["server"]) == server {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %q log line for %s:\n%s", msg, server, logs.String())
}

// TestL4DenyCreatesNoSession: a denied source is closed at accept, before
// any session exists; nothing reaches the backend and no session is logged.
func TestL4DenyCreatesNoSession(t *testing.T) {
	var reached atomic.Int32
	backend := serve(t, func(c net.Conn) { reached.Add(1) })
	front := freeAddr(t)
	_, logs := startStrata(t, fmt.Sprintf(`frontends:
  l4:
    bind: %q
    mode: tcp
    l4: { deny: [127.0.0.0/8] }
    default_backend: app
backends:
  app: { servers: [ { address: %q } ] }
`, front, backend))
	for i := 0; i < 20; i++ {
		c := plainDial(t, front)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if b, err := io.ReadAll(c); len(b) != 0 || err != nil {
			t.Fatalf("denied client read %q, %v; want an immediate close", b, err)
		}
		c.Close()
	}
	time.Sleep(100 * time.Millisecond)
	if n := reached.Load(); n != 0 {
		t.Fatalf("backend reached %d times by denied clients", n)
	}
	if rs := logs.records("session"); len(rs) != 0 {
		t.Fatalf("%d sessions logged for denied clients: %v", len(rs), rs)
	}
	if !strings.Contains(logs.String(), "l4 rule refused connection") {
		t.Errorf("no log line about the refusals:\n%s", logs.String())
	}
}
