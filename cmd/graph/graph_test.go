package graph

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-proxy/strata/cmd/config"
	"github.com/strata-proxy/strata/layers"
)

// build parses text as test.yaml and builds its Graph, drained at t's
// cleanup.
func build(t *testing.T, text string) *Graph {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(text))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	g, err := Build(cfg, nil, nil)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := g.Drain(ctx); err != nil {
			t.Errorf("Drain: %v", err)
		}
	})
	return g
}

// serve runs g's frontend for addr on ln until t's cleanup.
func serve(t *testing.T, g *Graph, ln net.Listener, addr string) {
	t.Helper()
	h := g.Handler(addr)
	if h == nil {
		t.Fatalf("no frontend serves %s", addr)
	}
	l := layers.ListenFrom(ln, addr)
	l.SetHandler(h)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.Serve(nil)
	}()
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
}

func listen(t *testing.T) (net.Listener, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, ln.Addr().(*net.TCPAddr).Port
}

// TestBuildHTTPFeatures builds a configuration that uses every mode http
// routing and balancing feature, and checks the wiring through real
// sockets: route order with a redirect after a backend route, dst_port,
// redirect prefix, uri and header(NAME) balancing, cookie persistence.
func TestBuildHTTPFeatures(t *testing.T) {
	var addrs []string
	for i := range 3 {
		name := fmt.Sprintf("s%d", i)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, name)
		}))
		t.Cleanup(srv.Close)
		addrs = append(addrs, strings.TrimPrefix(srv.URL, "http://"))
	}
	servers := fmt.Sprintf("[{address: %q, name: s0}, {address: %q, name: s1}, {address: %q, name: s2}]", addrs[0], addrs[1], addrs[2])
	ln1, p1 := listen(t)
	ln2, p2 := listen(t)
	g := build(t, fmt.Sprintf(`
frontends:
  web:
    bind: ["127.0.0.1:%d", "127.0.0.1:%d"]
    mode: http
    routes:
      - dst_port: %d
        backend: sticky
      - path_prefix: /api/
        backend: hashed
      - header: {name: X-User}
        backend: byuser
      - path_prefix: [/blog/, /old/]
        redirect: {status: 301, prefix: /news/}
      - host: old.example
        redirect: {scheme: https, host: new.example}
    default_backend: hashed
backends:
  hashed:
    balance: uri
    servers: %s
  byuser:
    balance: header(X-User)
    servers: %s
  sticky:
    cookie: {name: SRV}
    servers: %s
`, p1, p2, p2, servers, servers, servers))

	addr1, addr2 := fmt.Sprintf("127.0.0.1:%d", p1), fmt.Sprintf("127.0.0.1:%d", p2)
	serve(t, g, ln1, addr1)
	serve(t, g, ln2, addr2)
	g.Start()

	exchange := func(t *testing.T, addr, req string) (*http.Response, string) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, req)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(body)
	}
	t.Run("route order", func(t *testing.T) {
		// /api/ is taken by the backend route before the host redirect.
		if resp, _ := exchange(t, addr1, "GET /api/x HTTP/1.1\r\nHost: old.example\r\n\r\n"); resp.StatusCode != 200 {
			t.Fatalf("got %d; want the api backend", resp.StatusCode)
		}
		resp, _ := exchange(t, addr1, "GET /p?q HTTP/1.1\r\nHost: old.example:80\r\n\r\n")
		if resp.StatusCode != 302 || resp.Header.Get("Location") != "https://new.example/p?q" {
			t.Fatalf("got %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
	t.Run("redirect prefix", func(t *testing.T) {
		resp, _ := exchange(t, addr1, "GET /old/2024/a?x=1 HTTP/1.1\r\nHost: h\r\n\r\n")
		if resp.StatusCode != 301 || resp.Header.Get("Location") != "http://h/news/2024/a?x=1" {
			t.Fatalf("got %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
	t.Run("uri and header stick", func(t *testing.T) {
		for _, req := range []string{
			"GET /api/thing?%d HTTP/1.1\r\nHost: h\r\n\r\n",
			"GET /%d HTTP/1.1\r\nHost: h\r\nX-User: alice\r\n\r\n",
		} {
			seen := map[string]bool{}
			for i := range 6 {
				_, body := exchange(t, addr1, fmt.Sprintf(req, i))
				seen[body] = true
			}
			if len(seen) != 1 {
				t.Fatalf("%q went to %v; want one server", req, seen)
			}
		}
	})
	t.Run("dst_port and cookie", func(t *testing.T) {
		resp, first := exchange(t, addr2, "GET /api/x HTTP/1.1\r\nHost: h\r\n\r\n")
		if resp.Header.Get("Set-Cookie") != "SRV="+first+"; Path=/; HttpOnly" {
			t.Fatalf("first response from %s: Set-Cookie %q", first, resp.Header.Get("Set-Cookie"))
		}
		for range 4 {
			resp, srv := exchange(t, addr2, "GET / HTTP/1.1\r\nHost: h\r\nCookie: SRV="+first+"\r\n\r\n")
			if srv != first || resp.Header.Get("Set-Cookie") != "" {
				t.Fatalf("went to %s (Set-Cookie %q); want %s", srv, resp.Header.Get("Set-Cookie"), first)
			}
		}
	})
}

// TestBuildTCPRoutes checks that the TCP-mode wiring still builds with
// dst_port and SNI routes.
func TestBuildTCPRoutes(t *testing.T) {
	build(t, `
frontends:
  tcp:
    bind: "127.0.0.1:9000-9001"
    mode: tcp
    routes:
      - dst_port: 9001
        backend: b
    default_backend: b
backends:
  b:
    balance: source
    servers: [{address: "127.0.0.1:1"}]
`)
}

// TestCheckWritesNothing: validating a configuration with tls auto and tls
// internal builds it (the ACME Provider, the internal CA) without touching
// data_dir or contacting the CA.
func TestCheckWritesNothing(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf(`global:
  data_dir: %q
  acme: { directory: "https://127.0.0.1:1/dir" }
frontends:
  web: { bind: "127.0.0.1:443", tls: { auto: [a.example.com] }, default_backend: b }
  lan: { bind: "127.0.0.1:8443", tls: internal, default_backend: b }
  plain: { bind: "127.0.0.1:80" }
backends:
  b: { servers: [ { address: "127.0.0.1:9" } ], tls: { ca: internal, client_certificate: internal } }
`, data)))
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(cfg); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Fatalf("Check touched data_dir: %v", err)
	}
}
