package session

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/strata-proxy/strata/layers"
)

func TestEcho(t *testing.T) {
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			checkGoroutines(t)
			b := newBackend(t, "app", "", 0, startServer(t, echo))
			h := startFrontend(t, TCPFrontendOptions{Stages: p.stages, Router: NewRouter(nil, b)}, 1)
			c := h.dial(t, 0)
			for i := range 3 {
				msg := fmt.Sprintf("hello %d", i)
				if _, err := c.Write([]byte(msg)); err != nil {
					t.Fatal(err)
				}
				got := make([]byte, len(msg))
				if _, err := io.ReadFull(c, got); err != nil {
					t.Fatal(err)
				}
				if string(got) != msg {
					t.Fatalf("echo = %q, want %q", got, msg)
				}
			}
			c.CloseWrite()
			if rest := readAll(t, c, 2*time.Second); len(rest) != 0 {
				t.Fatalf("extra bytes %q", rest)
			}
			r := h.record(t)
			want := map[string]any{
				"term": "client close", "backend": "app", "server": "s0", "frontend": "front",
				"bytes_in": 21.0, "bytes_out": 21.0, "retries": 0.0, "level": "INFO",
			}
			for k, v := range want {
				if r[k] != v {
					t.Errorf("record[%q] = %v, want %v", k, r[k], v)
				}
			}
		})
	}
}

// TestBigTransfer sends 64 MiB each way at once and compares digests.
func TestBigTransfer(t *testing.T) {
	if testing.Short() {
		t.Skip("big transfer")
	}
	const size = 64 << 20
	up, down := randomBytes(1, size), randomBytes(2, size)
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			checkGoroutines(t)
			received := make(chan [32]byte, 1)
			addr := startServer(t, func(c *net.TCPConn) {
				wrote := make(chan struct{})
				go func() {
					defer close(wrote)
					c.Write(down)
					c.CloseWrite()
				}()
				h := sha256.New()
				io.Copy(h, c)
				received <- [32]byte(h.Sum(nil))
				<-wrote
			})
			b := newBackend(t, "big", "", 0, addr)
			h := startFrontend(t, TCPFrontendOptions{Stages: p.stages, Router: NewRouter(nil, b)}, 1)
			c := h.dial(t, 0)
			start := time.Now()
			werr := make(chan error, 1)
			go func() {
				_, err := c.Write(up)
				c.CloseWrite()
				werr <- err
			}()
			hd := sha256.New()
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			n, err := io.Copy(hd, c)
			if err != nil {
				t.Fatalf("after %d bytes: %v", n, err)
			}
			if err := <-werr; err != nil {
				t.Fatal(err)
			}
			if [32]byte(hd.Sum(nil)) != sha256.Sum256(down) {
				t.Errorf("server → client: %d bytes, digest differs", n)
			}
			if <-received != sha256.Sum256(up) {
				t.Error("client → server: digest differs")
			}
			r := h.record(t)
			if r["bytes_in"] != float64(size) || r["bytes_out"] != float64(size) {
				t.Errorf("bytes_in %v, bytes_out %v, want %d each", r["bytes_in"], r["bytes_out"], size)
			}
			t.Logf("%s: 2×64 MiB in %v", p.name, time.Since(start))
		})
	}
}

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed)}).Read(b)
	return b
}

// TestHalfClose: the client's EOF reaches the server, which still answers.
func TestHalfClose(t *testing.T) {
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			checkGoroutines(t)
			addr := startServer(t, func(c *net.TCPConn) {
				n, _ := io.Copy(io.Discard, c)
				time.Sleep(20 * time.Millisecond) // the reply comes after the EOF
				fmt.Fprintf(c, "got %d bytes", n)
			})
			b := newBackend(t, "hc", "", 0, addr)
			h := startFrontend(t, TCPFrontendOptions{Stages: p.stages, Router: NewRouter(nil, b)}, 1)
			c := h.dial(t, 0)
			c.Write([]byte("abcdef"))
			c.CloseWrite()
			if got := string(readAll(t, c, 2*time.Second)); got != "got 6 bytes" {
				t.Errorf("reply %q", got)
			}
			if r := h.record(t); r["term"] != "client close" {
				t.Errorf("term %v", r["term"])
			}
		})
	}
}

func TestIdleTimeouts(t *testing.T) {
	tests := []struct {
		name     string
		timeouts Timeouts
		server   func(*net.TCPConn)
		client   func(c *net.TCPConn) // what the client does before reading to EOF
		want     string
		atLeast  time.Duration
	}{
		{
			name:     "client idle",
			timeouts: Timeouts{Client: 200 * time.Millisecond},
			server:   echo,
			client:   func(*net.TCPConn) {},
			want:     "client idle timeout",
			atLeast:  200 * time.Millisecond,
		},
		{
			name:     "client idle after data",
			timeouts: Timeouts{Client: 200 * time.Millisecond},
			server:   echo,
			client:   func(c *net.TCPConn) { c.Write([]byte("x")) },
			want:     "client idle timeout",
			atLeast:  200 * time.Millisecond,
		},
		{
			// A margin of 12x between the gaps and the limit keeps the
			// premise (never idle for the limit) true on a loaded machine.
			name:     "trickle keeps client alive",
			timeouts: Timeouts{Client: 600 * time.Millisecond, Server: 600 * time.Millisecond},
			server:   echo,
			client: func(c *net.TCPConn) {
				for range 20 { // 1 s
					c.Write([]byte("."))
					time.Sleep(50 * time.Millisecond)
				}
				c.CloseWrite()
			},
			want:    "client close",
			atLeast: time.Second,
		},
		{
			name:     "server idle",
			timeouts: Timeouts{Server: 200 * time.Millisecond},
			server:   silent,
			client:   func(c *net.TCPConn) { c.Write([]byte("x")) },
			want:     "server idle timeout",
			atLeast:  200 * time.Millisecond,
		},
		{
			name:     "tunnel replaces client and server",
			timeouts: Timeouts{Client: 100 * time.Millisecond, Server: 100 * time.Millisecond, Tunnel: 500 * time.Millisecond},
			server:   echo,
			client:   func(*net.TCPConn) {},
			want:     "client idle timeout",
			atLeast:  500 * time.Millisecond,
		},
	}
	for _, tt := range tests {
		for _, p := range paths {
			t.Run(tt.name+"/"+p.name, func(t *testing.T) {
				checkGoroutines(t)
				b := newBackend(t, "idle", "", 0, startServer(t, tt.server))
				h := startFrontend(t, TCPFrontendOptions{Stages: p.stages, Router: NewRouter(nil, b), Timeouts: tt.timeouts}, 1)
				c := h.dial(t, 0)
				start := time.Now()
				tt.client(c)
				wrote := time.Since(start) // longer than planned on a loaded machine
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
					t.Fatalf("client read: %v", err)
				}
				took := time.Since(start)
				r := h.record(t)
				if r["term"] != tt.want {
					t.Errorf("term %q, want %q", r["term"], tt.want)
				}
				if took < tt.atLeast {
					t.Errorf("ended after %v, want at least %v", took, tt.atLeast)
				}
				if took > max(tt.atLeast, wrote)+time.Second {
					t.Errorf("ended after %v, want about %v", took, tt.atLeast)
				}
				wantLevel := "WARN"
				if !strings.HasSuffix(tt.want, "timeout") {
					wantLevel = "INFO"
				}
				if r["level"] != wantLevel {
					t.Errorf("level %v, want %v", r["level"], wantLevel)
				}
			})
		}
	}
}

func isReset(err error) bool { return strings.Contains(err.Error(), "connection reset") }

func TestConnectFailures(t *testing.T) {
	tests := []struct {
		name       string
		servers    func(t *testing.T) []string
		retries    int
		wantTerm   string
		wantServer string
		wantRetry  float64
		wantEcho   bool
	}{
		{
			name:     "refused with retries",
			servers:  func(t *testing.T) []string { return []string{refusedAddr(t)} },
			retries:  2,
			wantTerm: "server connect: connection refused", wantServer: "s0", wantRetry: 2,
		},
		{
			name:     "refused without retries",
			servers:  func(t *testing.T) []string { return []string{refusedAddr(t), refusedAddr(t)} },
			wantTerm: "server connect: connection refused", wantServer: "s0", wantRetry: 0,
		},
		{
			name:     "retry moves to the second server",
			servers:  func(t *testing.T) []string { return []string{refusedAddr(t), startServer(t, echo)} },
			retries:  3,
			wantTerm: "client close", wantServer: "s1", wantRetry: 1, wantEcho: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkGoroutines(t)
			b := newBackend(t, "cf", "first", tt.retries, tt.servers(t)...)
			h := startFrontend(t, TCPFrontendOptions{Router: NewRouter(nil, b), Timeouts: Timeouts{Connect: time.Second}}, 1)
			c := h.dial(t, 0)
			c.Write([]byte("ping"))
			c.CloseWrite()
			// A session that never connected closes with "ping" unread,
			// which the kernel turns into a reset.
			c.SetReadDeadline(time.Now().Add(3 * time.Second))
			reply, err := io.ReadAll(c)
			if err != nil && !isReset(err) {
				t.Fatal(err)
			}
			got := string(reply)
			if tt.wantEcho != (got == "ping") {
				t.Errorf("client got %q", got)
			}
			r := h.record(t)
			if r["term"] != tt.wantTerm || r["server"] != tt.wantServer || r["retries"] != tt.wantRetry {
				t.Errorf("term %q server %v retries %v, want %q %v %v", r["term"], r["server"], r["retries"], tt.wantTerm, tt.wantServer, tt.wantRetry)
			}
		})
	}
}

// TestStageFailure: a front stage's error is the termination.
func TestStageFailure(t *testing.T) {
	checkGoroutines(t)
	b := newBackend(t, "x", "", 0, startServer(t, echo))
	h := startFrontend(t, TCPFrontendOptions{
		Stages:   []layers.Stage{layers.ProxyDecode{}},
		Router:   NewRouter(nil, b),
		Timeouts: Timeouts{Handshake: 150 * time.Millisecond},
	}, 1)
	c := h.dial(t, 0)
	readAll(t, c, 3*time.Second)
	if r := h.record(t); r["term"] != "client proxy timeout" || r["backend"] != "" {
		t.Errorf("term %q backend %q", r["term"], r["backend"])
	}
}

// TestProxyHeaderSplice: bytes read past a PROXY header are replayed and
// the rest is spliced; the record names the header's client.
func TestProxyHeaderSplice(t *testing.T) {
	checkGoroutines(t)
	b := newBackend(t, "x", "", 0, startServer(t, echo))
	h := startFrontend(t, TCPFrontendOptions{Stages: []layers.Stage{layers.ProxyDecode{}}, Router: NewRouter(nil, b)}, 1)
	c := h.dial(t, 0)
	hdr, err := layers.AppendProxyHeader(nil, netip.MustParseAddrPort("192.0.2.7:4242"), netip.MustParseAddrPort("198.51.100.1:443"))
	if err != nil {
		t.Fatal(err)
	}
	c.Write(append(hdr, "payload"...))
	c.CloseWrite()
	if got := string(readAll(t, c, 2*time.Second)); got != "payload" {
		t.Errorf("echo %q", got)
	}
	if r := h.record(t); r["client"] != "192.0.2.7:4242" || r["term"] != "client close" {
		t.Errorf("client %v term %v", r["client"], r["term"])
	}
}

func TestRouteSessions(t *testing.T) {
	checkGoroutines(t)
	tagged := func(tag string) func(*net.TCPConn) {
		return func(c *net.TCPConn) { io.Copy(io.Discard, c); io.WriteString(c, tag) }
	}
	ba := newBackend(t, "a", "", 0, startServer(t, tagged("a")))
	bb := newBackend(t, "b", "", 0, startServer(t, tagged("b")))
	bc := newBackend(t, "c", "", 0, startServer(t, tagged("c")))

	// By port: the second listener's port goes to b.
	lns := listenN(t, 2)
	port := netip.MustParseAddrPort(lns[1].Addr().String()).Port()
	h := startFrontendOn(t, TCPFrontendOptions{Router: NewRouter([]Route{{DstPorts: []uint16{port}, Backend: bb}}, ba)}, lns)
	// By SNI.
	hs := startFrontend(t, TCPFrontendOptions{Stages: []layers.Stage{sniStage("API.example.com")},
		Router: NewRouter([]Route{{SNI: []string{"www.example.com"}, Backend: ba}, {SNI: []string{"*.example.com"}, Backend: bc}}, ba)}, 1)
	// No route.
	hn := startFrontend(t, TCPFrontendOptions{Stages: []layers.Stage{sniStage("other.test")},
		Router: NewRouter([]Route{{SNI: []string{"*.example.com"}, Backend: bc}}, nil)}, 1)

	tests := []struct {
		name     string
		h        *harness
		listener int
		want     string
		wantTerm string
	}{
		{"default port", h, 0, "a", "client close"},
		{"routed port", h, 1, "b", "client close"},
		{"wildcard sni", hs, 0, "c", "client close"},
		{"no route", hn, 0, "", "proxy route: no route"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.h.dial(t, tt.listener)
			c.CloseWrite()
			if got := string(readAll(t, c, 2*time.Second)); got != tt.want {
				t.Errorf("answered by %q, want %q", got, tt.want)
			}
			r := tt.h.record(t)
			if r["term"] != tt.wantTerm || r["backend"] != tt.want {
				t.Errorf("term %q backend %q, want %q %q", r["term"], r["backend"], tt.wantTerm, tt.want)
			}
			if r["level"] == "WARN" != (tt.wantTerm != "client close") {
				t.Errorf("level %v for %q", r["level"], tt.wantTerm)
			}
		})
	}
}

func TestAccessLogKeys(t *testing.T) {
	checkGoroutines(t)
	b := newBackend(t, "app", "", 0, startServer(t, echo))
	h := startFrontend(t, TCPFrontendOptions{Stages: []layers.Stage{sniStage("x.test")}, Router: NewRouter(nil, b)}, 1)
	c := h.dial(t, 0)
	c.Write([]byte("hi"))
	c.CloseWrite()
	readAll(t, c, 2*time.Second)
	r := h.record(t)
	strs := map[string]string{
		"client": c.LocalAddr().String(), "listener": h.addrs[0], "frontend": "front",
		"backend": "app", "server": "s0", "sni": "x.test", "term": "client close", "msg": "session",
	}
	for k, v := range strs {
		if r[k] != v {
			t.Errorf("%s = %v, want %q", k, r[k], v)
		}
	}
	for _, k := range []string{"queue_ms", "connect_ms", "total_ms", "bytes_in", "bytes_out", "retries"} {
		if _, ok := r[k].(float64); !ok {
			t.Errorf("%s = %#v, want a number", k, r[k])
		}
	}
	if r["connect_ms"].(float64) <= 0 || r["total_ms"].(float64) < r["connect_ms"].(float64) {
		t.Errorf("connect_ms %v total_ms %v", r["connect_ms"], r["total_ms"])
	}
	if ts, err := time.Parse(time.RFC3339Nano, r["time"].(string)); err != nil || time.Since(ts) > 5*time.Second {
		t.Errorf("time %v (%v)", r["time"], err)
	}
}

func TestShutdown(t *testing.T) {
	checkGoroutines(t)
	b := newBackend(t, "app", "", 0, startServer(t, echo))

	t.Run("waits for sessions", func(t *testing.T) {
		h := startFrontend(t, TCPFrontendOptions{Router: NewRouter(nil, b)}, 1)
		c := h.dial(t, 0)
		c.Write([]byte("x"))
		io.ReadFull(c, make([]byte, 1))
		if n := h.f.Live(); n != 1 {
			t.Fatalf("Live = %d, want 1", n)
		}
		done := make(chan error, 1)
		go func() { done <- h.f.Shutdown(context.Background()) }()
		select {
		case err := <-done:
			t.Fatalf("Shutdown returned %v with a live session", err)
		case <-time.After(100 * time.Millisecond):
		}
		c.CloseWrite()
		readAll(t, c, 2*time.Second)
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("Shutdown did not return after the session ended")
		}
		if r := h.record(t); r["term"] != "client close" {
			t.Errorf("term %v", r["term"])
		}
	})

	for _, p := range paths {
		t.Run("closes at deadline/"+p.name, func(t *testing.T) {
			h := startFrontend(t, TCPFrontendOptions{Stages: p.stages, Router: NewRouter(nil, b)}, 1)
			c := h.dial(t, 0)
			c.Write([]byte("x"))
			io.ReadFull(c, make([]byte, 1))
			ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
			defer cancel()
			start := time.Now()
			if err := h.f.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Shutdown = %v, want deadline exceeded", err)
			}
			if took := time.Since(start); took < 150*time.Millisecond || took > time.Second {
				t.Errorf("Shutdown took %v", took)
			}
			if h.f.Live() != 0 {
				t.Errorf("Live = %d after Shutdown", h.f.Live())
			}
			readAll(t, c, 2*time.Second)
			if r := h.record(t); r["term"] != "proxy close: drain timeout" {
				t.Errorf("term %v", r["term"])
			}
			// A session arriving now is closed at once.
			c2 := h.dial(t, 0)
			readAll(t, c2, 2*time.Second)
			if r := h.record(t); r["term"] != "proxy close: drain timeout" {
				t.Errorf("late session term %v", r["term"])
			}
		})
	}
}

func TestRouterPick(t *testing.T) {
	a, b, c, d := &Backend{name: "a"}, &Backend{name: "b"}, &Backend{name: "c"}, &Backend{name: "d"}
	r := NewRouter([]Route{
		{SNI: []string{"API.example.com"}, Backend: a},
		{SNI: []string{"*.example.com"}, DstPorts: []uint16{8443}, Backend: b},
		{SNI: []string{"*.example.com"}, Backend: c},
		{DstPorts: []uint16{25, 587}, Backend: d},
	}, nil)
	tests := []struct {
		sni  string
		port uint16
		want *Backend
	}{
		{"api.example.com", 443, a},
		{"api.example.com.", 443, a},
		{"www.example.com", 8443, b},
		{"WWW.Example.COM", 443, c},
		{"a.b.example.com", 443, nil},
		{"example.com", 443, nil},
		{".example.com", 443, nil},
		{"", 587, d},
		{"mail.test", 25, d},
		{"", 443, nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s:%d", tt.sni, tt.port), func(t *testing.T) {
			in := &layers.Initiator{SNI: tt.sni, Dest: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), tt.port)}
			if got := r.Pick(in); got != tt.want {
				t.Errorf("Pick = %v, want %v", name(got), name(tt.want))
			}
		})
	}
	if got := NewRouter(nil, a).Pick(&layers.Initiator{}); got != a {
		t.Errorf("default: %v", name(got))
	}
	if got := (*Router)(nil).Pick(&layers.Initiator{}); got != nil {
		t.Errorf("nil router: %v", name(got))
	}
}

func name(b *Backend) string {
	if b == nil {
		return "<nil>"
	}
	return b.name
}

func TestTerminationString(t *testing.T) {
	tests := []struct {
		t    Termination
		want string
	}{
		{TerminationOf(&layers.StageError{Side: layers.SideClient, Stage: "tls", Phase: layers.PhaseHandshake, Err: errors.New("bad certificate")}), "client tls handshake: bad certificate"},
		{TerminationOf(&layers.StageError{Side: layers.SideServer, Stage: "tcp", Phase: layers.PhaseConnect, Err: layers.ErrTimeout}), "server connect timeout"},
		{TerminationOf(&layers.StageError{Side: layers.SideProxy, Stage: "queue", Phase: layers.PhaseQueue, Err: layers.ErrTimeout}), "proxy queue timeout"},
		{TerminationOf(errNoRoute), "proxy route: no route"},
		{TerminationOf(errDrained), "proxy close: drain timeout"},
		{Termination{Side: layers.SideClient, Phase: layers.PhaseIdle, Cause: "timeout"}, "client idle timeout"},
		{closedBy(layers.SideServer), "server close"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.t.String(); got != tt.want {
				t.Errorf("String = %q", got)
			}
		})
	}
	// The same text as the StageError it came from.
	se := &layers.StageError{Side: layers.SideServer, Stage: "tls", Phase: layers.PhaseHandshake, Err: errors.New("unknown authority")}
	if got := TerminationOf(se).String(); got != se.Error() {
		t.Errorf("%q != %q", got, se.Error())
	}
}

func BenchmarkTCPSessionSmall(b *testing.B) {
	for _, p := range paths {
		b.Run(p.name, func(b *testing.B) {
			be := newBackend(b, "bench", "", 0, startServer(b, echo))
			h := startFrontend(b, TCPFrontendOptions{Stages: p.stages, Router: NewRouter(nil, be)}, 1)
			c := h.dial(b, 0)
			msg := bytes.Repeat([]byte("x"), 64)
			got := make([]byte, len(msg))
			b.ReportAllocs()
			b.SetBytes(int64(2 * len(msg)))
			for b.Loop() {
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, got); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
