package integration

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-proxy/strata/certs"
	"github.com/strata-proxy/strata/cmd/config"
	"github.com/strata-proxy/strata/cmd/graph"
)

// The idle-memory measurement: what an idle TLS keep-alive connection
// costs the proxy, as the bench's "idle" scenario measures it
// (../shared/bench: benchclient idle — TLS 1.3, X25519, ALPN http/1.1,
// an ECDSA P-256 certificate, one GET of a 13-byte body on each
// connection, then nothing; RSS after minus before, divided by the
// number of connections). Here strata runs in the test process and the
// clients, with the backend, in a child process (this test binary again),
// so that only the proxy's memory is in the figures.
//
//	go test ./integration/ -run TestIdleMemory -v
//	STRATA_IDLE_CONNS=5000 STRATA_IDLE_PROFILE=/tmp/heap.pprof go test ./integration/ -run TestIdleMemory -v
//	go tool pprof -sample_index=inuse_space -top /tmp/heap.pprof
const (
	idleClientEnv  = "STRATA_IDLE_CLIENT" // set in the child: run the clients
	idleConnsEnv   = "STRATA_IDLE_CONNS"
	idleProfileEnv = "STRATA_IDLE_PROFILE"
	// idleBound is the bound the test asserts on the live memory (heap and
	// stacks, after a GC) per idle connection: generous, so that the test
	// is not flaky; the figure itself is printed.
	idleBound = 12 << 10
)

// memSnapshot is the process's memory at one moment.
type memSnapshot struct {
	heap, stack, rss uint64 // heap in use (spans), stack in use, VmRSS
	live             uint64 // heap bytes in live objects (after a GC) or allocated
	free             uint64 // heap spans free but not given back to the OS
}

func takeSnapshot(gc bool) memSnapshot {
	if gc {
		runtime.GC()
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSnapshot{heap: ms.HeapInuse, stack: ms.StackInuse, rss: vmRSS(), live: ms.HeapAlloc, free: ms.HeapIdle - ms.HeapReleased}
}

// vmRSS is the process's resident set from /proc/self/status, in bytes.
func vmRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func perConn(after, before uint64, n int) float64 {
	return (float64(after) - float64(before)) / float64(n) / 1024
}

// TestIdleMemory opens N (default 5000, as the bench) TLS keep-alive connections through
// the HTTPS frontend, one request each, and reports the memory each idle
// connection holds: the live heap and stacks after a GC (asserted), and,
// as the bench sees it, the heap, stacks and RSS without a GC.
func TestIdleMemory(t *testing.T) {
	if os.Getenv(idleClientEnv) != "" {
		t.Skip("the child process runs TestIdleMemoryClient")
	}
	if testing.Short() {
		t.Skip("-short")
	}
	n := 5000
	if v := os.Getenv(idleConnsEnv); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			t.Fatalf("%s=%q: want a number of connections", idleConnsEnv, v)
		}
	}
	// As the bench: the proxy on one core, and so is the client.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	profile := os.Getenv(idleProfileEnv)
	if profile != "" {
		runtime.MemProfileRate = 1
		defer func() { runtime.MemProfileRate = 512 << 10 }()
	}

	// The child: it starts the backend, says where, then waits for the
	// proxy's address.
	child := exec.Command(os.Args[0], "-test.run=^TestIdleMemoryClient$", "-test.v")
	child.Env = append(os.Environ(), idleClientEnv+"=1", idleConnsEnv+"="+strconv.Itoa(n), "GOMAXPROCS=1")
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { child.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			child.Process.Kill()
			<-done
		}
	})
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	expect := func(prefix string, d time.Duration) string {
		t.Helper()
		timeout := time.After(d)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("the client process ended before %q", prefix)
				}
				if v, found := strings.CutPrefix(l, prefix); found {
					return strings.TrimSpace(v)
				}
			case <-timeout:
				t.Fatalf("no %q from the client process within %v", prefix, d)
			}
		}
	}
	backend := expect("BACKEND ", 30*time.Second)

	p := newPKI(t)
	cert, key := p.issue(t, "front", certs.IssueOptions{}, "bench.local")
	addr := freeAddr(t)
	file := filepath.Join(t.TempDir(), "strata.yaml")
	// The proxy command's configuration (strata proxy --from --to --cert
	// --key), as the bench runs it, with the bench's long timeouts.
	yamlText := fmt.Sprintf(`defaults:
  timeouts: { client: 300s, server: 300s, keep_alive: 300s }
frontends:
  proxy:
    bind: %q
    mode: http
    tls: { certificates: [ { cert: %q, key: %q } ] }
    default_backend: to
backends:
  to:
    servers: [ { address: %q } ]
`, addr, cert, key, backend)
	if err := os.WriteFile(file, []byte(yamlText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yamlText)
	}
	// The access log is on, as in the bench (strata proxy logs JSON lines):
	// formatting a line is part of a request's stack depth.
	rt := graph.NewRuntime(slog.New(slog.DiscardHandler), slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err := rt.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rt.Shutdown(ctx)
	})

	before := takeSnapshot(true)
	goBefore := runtime.NumGoroutine()
	fmt.Fprintf(stdin, "GO %s\n", addr)
	ready := expect("READY ", 5*time.Minute)
	if ready != fmt.Sprintf("ok=%d failed=0", n) {
		t.Fatalf("the clients report %q, want ok=%d failed=0", ready, n)
	}
	// As the bench: the figure 3 s after the last connection, without
	// forcing a collection.
	time.Sleep(3 * time.Second)
	noGC := takeSnapshot(false)
	gcd := takeSnapshot(true)
	goAfter := runtime.NumGoroutine()

	t.Logf("%d idle TLS keep-alive connections, %d goroutines each", n, (goAfter-goBefore+n/2)/n)
	t.Logf("without a GC (as the bench): RSS %.1f KiB/conn; heap in use %.1f, stacks %.1f, free heap not yet returned %.1f KiB/conn",
		perConn(noGC.rss, before.rss, n), perConn(noGC.heap, before.heap, n), perConn(noGC.stack, before.stack, n), perConn(noGC.free, before.free, n))
	live := perConn(gcd.live, before.live, n) + perConn(gcd.stack, before.stack, n)
	t.Logf("after a GC: live heap %.1f KiB/conn + stacks %.1f KiB/conn = %.1f KiB/conn; RSS %.1f KiB/conn",
		perConn(gcd.live, before.live, n), perConn(gcd.stack, before.stack, n), live, perConn(gcd.rss, before.rss, n))
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			t.Fatal(err)
		}
		f.Close()
		t.Logf("heap profile: %s (go tool pprof -sample_index=inuse_space -top %s)", profile, profile)
	}

	// Every connection is still open: a second request on each.
	fmt.Fprintln(stdin, "CHECK")
	if alive := expect("ALIVE ", 2*time.Minute); alive != fmt.Sprintf("%d of %d", n, n) {
		t.Fatalf("after the measurement %s connections answered, want all %d", alive, n)
	}
	if live > idleBound/1024 {
		t.Errorf("an idle TLS keep-alive connection holds %.1f KiB of heap and stack, want at most %d KiB", live, idleBound>>10)
	}
}

// TestIdleMemoryClient is the child process of TestIdleMemory: a backend
// answering 13 bytes, and the clients of the bench's idle scenario.
func TestIdleMemoryClient(t *testing.T) {
	if os.Getenv(idleClientEnv) == "" {
		t.Skip("run by TestIdleMemory in a child process")
	}
	n, _ := strconv.Atoi(os.Getenv(idleConnsEnv))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "hello, world\n")
	})}
	go srv.Serve(ln)
	defer srv.Close()
	fmt.Printf("BACKEND %s\n", ln.Addr())

	in := bufio.NewScanner(os.Stdin)
	if !in.Scan() {
		return
	}
	addr, ok := strings.CutPrefix(in.Text(), "GO ")
	if !ok {
		t.Fatalf("want GO ADDR, got %q", in.Text())
	}
	cfg := &tls.Config{
		ServerName:         "bench.local",
		InsecureSkipVerify: true, // as benchclient; the handshake is what matters here
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{"http/1.1"},
		CurvePreferences:   []tls.CurveID{tls.X25519},
	}
	type conn struct {
		c  *tls.Conn
		br *bufio.Reader
	}
	get := func(c *conn) error {
		c.c.SetDeadline(time.Now().Add(30 * time.Second))
		defer c.c.SetDeadline(time.Time{})
		if _, err := io.WriteString(c.c, "GET /small HTTP/1.1\r\nHost: bench.local\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != 200 {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		return err
	}
	conns := make([]*conn, n)
	var failed atomic.Int64
	var firstErr atomic.Value
	run := func(work func(i int) error) {
		idx := make(chan int)
		var wg sync.WaitGroup
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range idx {
					if err := work(i); err != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
					}
				}
			}()
		}
		for i := range n {
			idx <- i
		}
		close(idx)
		wg.Wait()
	}
	run(func(i int) error {
		raw, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			return err
		}
		tc := tls.Client(raw, cfg)
		c := &conn{c: tc, br: bufio.NewReaderSize(tc, 4096)}
		if err := get(c); err != nil {
			raw.Close()
			return err
		}
		conns[i] = c
		return nil
	})
	fmt.Printf("READY ok=%d failed=%d\n", int64(n)-failed.Load(), failed.Load())
	if e := firstErr.Load(); e != nil {
		fmt.Fprintf(os.Stderr, "first error: %v\n", e)
	}
	if !in.Scan() || in.Text() != "CHECK" {
		return
	}
	failed.Store(0)
	run(func(i int) error {
		if conns[i] == nil {
			return fmt.Errorf("connection %d failed before", i)
		}
		return get(conns[i])
	})
	fmt.Printf("ALIVE %d of %d\n", int64(n)-failed.Load(), n)
	for _, c := range conns {
		if c != nil {
			c.c.Close()
		}
	}
}

// TestIdleHandOverTLS: a TLS keep-alive connection idle past the grace is
// waited on at the socket (below TLS); requests after it — one, then two
// pipelined in one TLS record, then two in two records sent together —
// are all answered in order.
func TestIdleHandOverTLS(t *testing.T) {
	p := newPKI(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok "+r.URL.Path)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	backend := ln.Addr().String()
	cert, key := p.issue(t, "front", certs.IssueOptions{}, "localhost")
	addr := freeAddr(t)
	startStrata(t, fmt.Sprintf(`frontends:
  web:
    bind: %q
    mode: http
    tls: { certificates: [ { cert: %q, key: %q } ] }
    default_backend: app
backends:
  app:
    servers: [ { address: %q } ]
`, addr, cert, key, backend))
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: p.pool(), ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	expect := func(path string) {
		t.Helper()
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "ok "+path {
			t.Fatalf("%s: %d %q", path, resp.StatusCode, body)
		}
	}
	req := func(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: localhost\r\n\r\n" }
	for round := range 3 {
		time.Sleep(200 * time.Millisecond) // longer than the grace: handed over
		switch round {
		case 0:
			io.WriteString(c, req("/a"))
			expect("/a")
		case 1:
			io.WriteString(c, req("/b")+req("/c")) // one record
			expect("/b")
			expect("/c")
		case 2:
			// Two records sent back to back: the second may wait in the
			// TLS layer rather than in the socket when /d is done.
			io.WriteString(c, req("/d"))
			io.WriteString(c, req("/e"))
			expect("/d")
			expect("/e")
		}
	}
}
