package session

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/strata-proxy/strata/layers"
)

// checkGoroutines fails t when, after its cleanups, more goroutines run
// than when it started. Call it first, so that its cleanup runs last.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("%d goroutines left running, %d before the test:\n%s", n, before, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// startServer runs a backend server on 127.0.0.1:0 calling handle for
// each connection, stopped (and its connections closed) by t's cleanup.
func startServer(t testing.TB, handle func(c *net.TCPConn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					c.Close()
				}()
				handle(c.(*net.TCPConn))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// echo sends back what it reads, then half-closes.
func echo(c *net.TCPConn) {
	io.Copy(c, c)
	c.CloseWrite()
}

// silent reads and discards until EOF, never sending.
func silent(c *net.TCPConn) { io.Copy(io.Discard, c) }

// refusedAddr is a loopback address nobody listens on.
func refusedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// newBackend builds a backend over the given addresses, named s0, s1, ….
func newBackend(t testing.TB, name, balance string, retries int, addrs ...string) *Backend {
	t.Helper()
	var servers []ServerOptions
	for i, a := range addrs {
		servers = append(servers, ServerOptions{
			Name: "s" + string(rune('0'+i)), Address: a, Weight: 1,
			Connector: &layers.Dialer{Address: a},
		})
	}
	b, err := NewBackend(BackendOptions{Name: name, Balance: balance, Servers: servers, Retries: retries})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// logLines collects the access log: one JSON object per Write.
type logLines chan []byte

func (l logLines) Write(p []byte) (int, error) {
	l <- bytes.Clone(p)
	return len(p), nil
}

// harness is a TCPFrontend served by real layers.Listeners.
type harness struct {
	f     *TCPFrontend
	addrs []string
	logs  logLines
}

// startFrontend serves o on n listeners (1 when n is 0) until t's cleanup,
// which closes the listeners and drains the frontend.
func startFrontend(t testing.TB, o TCPFrontendOptions, n int) *harness {
	t.Helper()
	return startFrontendOn(t, o, listenN(t, max(n, 1)))
}

// listenN opens n listening sockets on 127.0.0.1:0.
func listenN(t testing.TB, n int) []net.Listener {
	t.Helper()
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
	}
	return lns
}

// startFrontendOn serves o on the given sockets.
func startFrontendOn(t testing.TB, o TCPFrontendOptions, sockets []net.Listener) *harness {
	t.Helper()
	h := &harness{logs: make(logLines, 64)}
	if o.AccessLog == nil {
		o.AccessLog = slog.New(slog.NewJSONHandler(h.logs, nil))
	}
	if o.Name == "" {
		o.Name = "front"
	}
	h.f = NewTCPFrontend(o)
	var wg sync.WaitGroup
	var lns []*layers.Listener
	for _, ln := range sockets {
		l := layers.ListenFrom(ln, ln.Addr().String())
		l.SetHandler(h.f)
		lns = append(lns, l)
		h.addrs = append(h.addrs, ln.Addr().String())
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.Serve(nil)
		}()
	}
	t.Cleanup(func() {
		for _, l := range lns {
			l.Close()
		}
		wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.f.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return h
}

// dial connects a client to the harness's i-th listener.
func (h *harness) dial(t testing.TB, i int) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", h.addrs[i])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// record waits for the next access-log line and decodes it.
func (h *harness) record(t testing.TB) map[string]any {
	t.Helper()
	select {
	case line := <-h.logs:
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("access log line %q: %v", line, err)
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no access log line within 5s")
	}
	return nil
}

// hideStage wraps the client connection in a type the session cannot see
// through, forcing the buffer path; it keeps CloseWrite.
type hideStage struct{}

func (hideStage) Name() string { return "hide" }

func (hideStage) Accept(_ context.Context, _ *layers.Initiator, c net.Conn) (net.Conn, error) {
	return hiddenConn{c}, nil
}

type hiddenConn struct{ net.Conn }

func (c hiddenConn) CloseWrite() error {
	if cw, ok := c.Conn.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// sniStage sets in.SNI, as a ClientHello peek would.
type sniStage string

func (sniStage) Name() string { return "sni" }

func (s sniStage) Accept(_ context.Context, in *layers.Initiator, c net.Conn) (net.Conn, error) {
	in.SNI = string(s)
	return c, nil
}

// paths are the two forwarding paths every data test runs on.
var paths = []struct {
	name   string
	stages []layers.Stage
}{
	{"splice", nil},
	{"buffer", []layers.Stage{hideStage{}}},
}

// readAll reads c to EOF within d.
func readAll(t testing.TB, c net.Conn, d time.Duration) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading: %v (after %q)", err, b)
	}
	return b
}
