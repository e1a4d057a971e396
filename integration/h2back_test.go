package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-proxy/strata/certs"
	"github.com/strata-proxy/strata/cmd/config"
	"golang.org/x/net/http2"
)

// h2Backend is a Go HTTP/2 server, h2c (prior knowledge only) or over TLS
// (ALPN h2 only), with a certificate from our CA for backend.test. It
// counts the connections it accepts and the requests in flight.
type h2Backend struct {
	addr     string
	srv      *http.Server
	conns    atomic.Int32
	closed   atomic.Int32
	inflight atomic.Int32
	peak     atomic.Int32
	resumed  atomic.Int32 // requests on TLS connections that resumed a session
	checks   atomic.Int32 // health checks received, over HTTP/2
	// gate, when set, holds /hold requests until it is closed.
	gate chan struct{}
}

func startH2Backend(t *testing.T, p *pki, useTLS bool, maxStreams uint32) *h2Backend {
	t.Helper()
	b := &h2Backend{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		// The response trailer carries the digest of the request body and
		// the request's own trailer, read after the body.
		w.Header().Set("Trailer", "X-Body-Sha256-T, X-Seen-Client-Trailer")
		w.Header().Set("X-Seen-Major", fmt.Sprint(r.ProtoMajor))
		w.Header().Set("X-Seen-TE", r.Header.Get("Te"))
		w.Header().Set("X-Seen-XFF", r.Header.Get("X-Forwarded-For"))
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		// The head goes first, so that the body is streamed (no
		// Content-Length): trailers follow it in every front's protocol.
		w.WriteHeader(200)
		http.NewResponseController(w).Flush()
		io.Copy(w, newStream(9, n)) // a response body as long as the request's
		w.Header().Set("X-Body-Sha256-T", fmt.Sprintf("%x", h.Sum(nil)))
		w.Header().Set("X-Seen-Client-Trailer", r.Trailer.Get("X-Client-Trailer"))
	})
	mux.HandleFunc("/hints", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(103)
		w.Header().Del("Link")
		io.WriteString(w, "page")
	})
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && r.Header.Get("User-Agent") == "strata-health-check" {
			b.checks.Add(1)
		}
	})
	mux.HandleFunc("/hold", func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil && r.TLS.DidResume {
			b.resumed.Add(1)
		}
		n := b.inflight.Add(1)
		defer b.inflight.Add(-1)
		for {
			p := b.peak.Load()
			if n <= p || b.peak.CompareAndSwap(p, n) {
				break
			}
		}
		if b.gate != nil {
			select {
			case <-b.gate:
			case <-time.After(10 * time.Second):
			}
		}
		fmt.Fprintf(w, "held %d", n)
	})
	b.srv = &http.Server{Handler: mux, ConnState: func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			b.conns.Add(1)
		case http.StateClosed:
			b.closed.Add(1)
		}
	}}
	b.srv.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: int(maxStreams)}
	b.srv.Protocols = new(http.Protocols)
	if useTLS {
		b.srv.Protocols.SetHTTP2(true)
		b.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{p.leaf(t, certs.IssueOptions{}, "backend.test")}}
		go b.srv.ServeTLS(ln, "", "")
	} else {
		b.srv.Protocols.SetUnencryptedHTTP2(true)
		go b.srv.Serve(ln)
	}
	t.Cleanup(func() { b.srv.Close() })
	return b
}

// h2BackendYAML is the backend section for an HTTP/2 server.
func h2BackendYAML(p *pki, useTLS bool, addrs ...string) string {
	var servers []string
	for _, a := range addrs {
		servers = append(servers, fmt.Sprintf("{ address: %q }", a))
	}
	s := "backends:\n  app:\n    proto: h2\n    servers: [ " + strings.Join(servers, ", ") + " ]\n"
	if useTLS {
		s += fmt.Sprintf("    tls: { sni: backend.test, ca: %q }\n", p.rootFile())
	}
	return s
}

// frontClient is a client of a strata front: "http" (HTTP/1.1), "h2"
// (TLS, ALPN h2) or "h2c"; it returns the base URL too.
func frontClient(t *testing.T, p *pki, front, addr string) (*http.Client, string, string) {
	t.Helper()
	var frontYAML string
	scheme := "http"
	client := &http.Client{Timeout: 30 * time.Second}
	switch front {
	case "http":
		client.Transport = &http.Transport{MaxIdleConnsPerHost: 64}
	case "h2":
		cert, key := p.issue(t, "front", certs.IssueOptions{}, "localhost")
		frontYAML = fmt.Sprintf("    tls: { certificates: [ { cert: %q, key: %q } ] }\n", cert, key)
		scheme = "https"
		client.Transport = &http2.Transport{TLSClientConfig: &tls.Config{RootCAs: p.pool(), ServerName: "localhost"}}
	case "h2c":
		frontYAML = "    h2c: true\n"
		client.Transport = &http2.Transport{AllowHTTP: true, DialTLSContext: dialPlain}
	}
	t.Cleanup(client.CloseIdleConnections)
	return client, scheme + "://" + addr, frontYAML
}

// TestH2Backend runs one test body through HTTP/1.1, HTTP/2 and h2c fronts
// to HTTP/2 servers over TLS and h2c: bodies byte-exact both ways (up to
// 64 MiB), request and response trailers, te: trailers, connections
// reused across requests.
func TestH2Backend(t *testing.T) {
	p := newPKI(t)
	for _, front := range []string{"http", "h2", "h2c"} {
		for _, back := range []string{"h2", "h2c"} {
			t.Run(front+"-to-"+back, func(t *testing.T) {
				b := startH2Backend(t, p, back == "h2", 100)
				addr := freeAddr(t)
				client, base, frontYAML := frontClient(t, p, front, addr)
				_, logs := startStrata(t, fmt.Sprintf("frontends:\n  web:\n    bind: %q\n    mode: http\n%s    default_backend: app\n%s",
					addr, frontYAML, h2BackendYAML(p, back == "h2", b.addr)))
				sizes := []int64{0, 13, 64 << 10, 1 << 20, 3<<20 + 7}
				if front+back == "httph2" || front+back == "h2h2c" {
					sizes = append(sizes, 64<<20)
				}
				for i, size := range sizes {
					req, err := http.NewRequest("POST", base+"/echo", io.NopCloser(newStream(byte(i), size)))
					if err != nil {
						t.Fatal(err)
					}
					req.ContentLength = -1 // streamed, so that it can carry a trailer
					req.Trailer = http.Header{"X-Client-Trailer": {fmt.Sprint("t", i)}}
					resp, err := client.Do(req)
					if err != nil {
						t.Fatalf("POST %d bytes: %v", size, err)
					}
					h := sha256.New()
					n, err := io.Copy(h, resp.Body)
					resp.Body.Close()
					if err != nil || resp.StatusCode != 200 {
						t.Fatalf("POST %d bytes: status %d, read %v", size, resp.StatusCode, err)
					}
					if got := resp.Header.Get("X-Seen-Major"); got != "2" {
						t.Fatalf("the server saw HTTP/%s, want 2", got)
					}
					if n != size || !bytes.Equal(h.Sum(nil), sliceOf(digest(9, size))) {
						t.Fatalf("POST %d bytes: the response body differs (%d bytes)", size, n)
					}
					trailer := resp.Trailer.Get
					if want := fmt.Sprintf("%x", digest(byte(i), size)); trailer("X-Body-Sha256-T") != want {
						t.Fatalf("POST %d bytes: response trailer %q, want the request body's digest %s (trailers %v)",
							size, resp.Trailer.Get("X-Body-Sha256-T"), want, resp.Trailer)
					}
					if got, want := trailer("X-Seen-Client-Trailer"), fmt.Sprint("t", i); got != want {
						t.Errorf("POST %d bytes: the server saw request trailer %q, want %q", size, got, want)
					}
					if got := resp.Header.Get("X-Seen-TE"); got != "trailers" {
						t.Errorf("the server saw te %q, want trailers", got)
					}
					if got := resp.Header.Get("X-Seen-XFF"); got != "127.0.0.1" {
						t.Errorf("the server saw X-Forwarded-For %q", got)
					}
				}
				logs.waitAccess(t, func(m map[string]any) bool {
					return m["method"] == "POST" && m["bytes_in"] == float64(1<<20) && m["bytes_out"] == float64(1<<20)
				})
				// Every request above, POSTs included, rode the one
				// shared connection.
				if n := b.conns.Load(); n != 1 {
					t.Errorf("%d requests one after another opened %d server connections, want 1", len(sizes), n)
				}
				for range 10 {
					resp, err := client.Get(base + "/hold")
					if err != nil {
						t.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if n := b.conns.Load(); n != 1 {
					t.Errorf("GETs opened new server connections: %d in all, want 1", n)
				}
				r := logs.waitAccess(t, func(m map[string]any) bool { return m["method"] == "GET" })
				if r["status"] != float64(200) || r["connect_ms"] != float64(0) {
					t.Errorf("access log line of a GET on a shared connection: %v", r)
				}
			})
		}
	}
}

// TestH2BackendSharesConnections sends 200 concurrent requests to an
// HTTP/2 server that allows 20 streams per connection: they share few
// connections, and more open when the streams of those are taken.
func TestH2BackendSharesConnections(t *testing.T) {
	p := newPKI(t)
	const maxStreams, clients, held = 20, 200, 60
	for _, back := range []string{"h2", "h2c"} {
		t.Run(back, func(t *testing.T) {
			b := startH2Backend(t, p, back == "h2", maxStreams)
			b.gate = make(chan struct{})
			addr := freeAddr(t)
			client, base, frontYAML := frontClient(t, p, "http", addr)
			client.Transport.(*http.Transport).MaxIdleConnsPerHost = clients
			startStrata(t, fmt.Sprintf("frontends:\n  web:\n    bind: %q\n    mode: http\n%s    default_backend: app\n%s",
				addr, frontYAML, h2BackendYAML(p, back == "h2", b.addr)))
			var wg sync.WaitGroup
			var failed atomic.Int32
			for range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, err := client.Get(base + "/hold")
					if err != nil {
						failed.Add(1)
						t.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						failed.Add(1)
						t.Errorf("status %d", resp.StatusCode)
					}
				}()
			}
			// Hold the first requests until enough are in flight at once
			// to need several connections, then let all through.
			deadline := time.Now().Add(10 * time.Second)
			for b.inflight.Load() < held && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			close(b.gate)
			wg.Wait()
			conns, peak := b.conns.Load(), b.peak.Load()
			t.Logf("%d requests, %d at once at the server, over %d connections (limit %d streams each)", clients, peak, conns, maxStreams)
			if failed.Load() > 0 {
				t.Fatalf("%d requests failed", failed.Load())
			}
			if peak < held {
				t.Fatalf("only %d requests were in flight at once at the server, want %d", peak, held)
			}
			if limit := int32((clients+maxStreams-1)/maxStreams + 1); conns > limit {
				t.Errorf("%d server connections for %d requests, want at most %d", conns, clients, limit)
			}
			if min := int32((held + maxStreams - 1) / maxStreams); conns < min {
				t.Errorf("%d server connections carried %d streams at once, want at least %d", conns, peak, min)
			}
			// The connections after the first resume its TLS session.
			if back == "h2" && b.resumed.Load() == 0 {
				t.Error("no request came over a resumed TLS session")
			}
		})
	}
}

// goawayBackend is an h2c server whose connections are served one by one,
// so that a test can send GOAWAY on one of them. Responses name the
// connection that carried them (X-Conn, from 1).
type goawayBackend struct {
	addr string
	gate chan struct{}
	held atomic.Int32

	mu    sync.Mutex
	conns []*http.Server // one per connection, in accept order
}

func startGoawayBackend(t *testing.T) *goawayBackend {
	t.Helper()
	b := &goawayBackend{gate: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			n := len(b.conns) + 1
			hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Conn", fmt.Sprint(n))
				if r.URL.Path == "/hold" {
					b.held.Add(1)
					select {
					case <-b.gate:
					case <-time.After(10 * time.Second):
					}
				}
				io.WriteString(w, "ok")
			})}
			h2s := &http2.Server{}
			if err := http2.ConfigureServer(hs, h2s); err != nil {
				panic(err)
			}
			b.conns = append(b.conns, hs)
			b.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				h2s.ServeConn(c, &http2.ServeConnOpts{BaseConfig: hs, Handler: hs.Handler})
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		for _, hs := range b.conns {
			hs.Close()
		}
		b.mu.Unlock()
		wg.Wait()
	})
	return b
}

// goaway sends GOAWAY on connection n (from 1); streams in flight finish.
func (b *goawayBackend) goaway(n int) {
	b.mu.Lock()
	hs := b.conns[n-1]
	b.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // GOAWAY at once, without waiting for the streams
	hs.Shutdown(ctx)
}

func (b *goawayBackend) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.conns)
}

// TestH2BackendGoAway: a server's GOAWAY lets the streams in flight on
// that connection finish, and new requests go to a new connection.
func TestH2BackendGoAway(t *testing.T) {
	b := startGoawayBackend(t)
	addr := freeAddr(t)
	client, base, _ := frontClient(t, nil, "http", addr)
	startStrata(t, fmt.Sprintf("frontends:\n  web:\n    bind: %q\n    mode: http\n    default_backend: app\n%s",
		addr, h2BackendYAML(nil, false, b.addr)))
	get := func(path string) (string, error) {
		resp, err := client.Get(base + path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 || string(body) != "ok" {
			return "", fmt.Errorf("status %d, body %q, read %v", resp.StatusCode, body, err)
		}
		return resp.Header.Get("X-Conn"), nil
	}
	held := make(chan string, 1)
	go func() {
		conn, err := get("/hold")
		if err != nil {
			t.Error(err)
		}
		held <- conn
	}()
	deadline := time.Now().Add(5 * time.Second)
	for b.held.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	b.goaway(1)
	for i := range 5 {
		conn, err := get("/")
		if err != nil {
			t.Fatalf("GET %d after GOAWAY: %v", i, err)
		}
		if conn != "2" {
			t.Errorf("GET %d after GOAWAY on connection 1 was served on connection %s, want 2", i, conn)
		}
	}
	close(b.gate)
	if conn := <-held; conn != "1" {
		t.Errorf("the request in flight at the GOAWAY was served on connection %q, want 1", conn)
	}
	if n := b.count(); n != 2 {
		t.Errorf("the server accepted %d connections, want 2", n)
	}
}

// TestH2BackendKilled: a server killed while GETs flow through shared
// HTTP/2 connections costs no GET: they are retried on the other server.
func TestH2BackendKilled(t *testing.T) {
	p := newPKI(t)
	b1, b2 := startH2Backend(t, p, false, 100), startH2Backend(t, p, false, 100)
	addr := freeAddr(t)
	client, base, _ := frontClient(t, p, "http", addr)
	startStrata(t, fmt.Sprintf("frontends:\n  web:\n    bind: %q\n    mode: http\n    default_backend: app\n%s    retries: 3\n",
		addr, h2BackendYAML(p, false, b1.addr, b2.addr)))
	var ok, failed atomic.Int32
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(base + "/hold")
				if err != nil {
					failed.Add(1)
					t.Error(err)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					t.Errorf("status %d", resp.StatusCode)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	before := ok.Load()
	b1.srv.Close() // listener and connections, abruptly
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("%d GETs, %d before the kill, %d failed", ok.Load(), before, failed.Load())
	if failed.Load() != 0 || ok.Load() <= before {
		t.Fatalf("%d GETs failed, %d succeeded after the kill", failed.Load(), ok.Load()-before)
	}
}

// TestH2BackendReload: a reload closes the retired backend's idle shared
// connections; the new configuration opens its own.
func TestH2BackendReload(t *testing.T) {
	p := newPKI(t)
	b := startH2Backend(t, p, true, 100)
	closed := &b.closed
	addr := freeAddr(t)
	client, base, _ := frontClient(t, p, "http", addr)
	text := fmt.Sprintf("frontends:\n  web:\n    bind: %q\n    mode: http\n    default_backend: app\n%s",
		addr, h2BackendYAML(p, true, b.addr))
	rt, _ := startStrata(t, text)
	get := func() {
		t.Helper()
		resp, err := client.Get(base + "/hold")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	get()
	get()
	if n := b.conns.Load(); n != 1 {
		t.Fatalf("%d server connections before the reload, want 1", n)
	}
	client.CloseIdleConnections() // the client's connection holds the old configuration
	file := filepath.Join(t.TempDir(), "strata.yaml")
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for closed.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if closed.Load() != 1 {
		t.Fatalf("the retired backend's idle connection was not closed (%d closed)", closed.Load())
	}
	get()
	if n := b.conns.Load(); n != 2 {
		t.Errorf("%d server connections after the reload, want 2", n)
	}
}

// TestH2BackendHealthCheck: the "http" check of a server spoken to over
// HTTP/2 is an HTTP/2 request, over TLS and h2c.
func TestH2BackendHealthCheck(t *testing.T) {
	p := newPKI(t)
	for _, back := range []string{"h2", "h2c"} {
		t.Run(back, func(t *testing.T) {
			b := startH2Backend(t, p, back == "h2", 100)
			addr := freeAddr(t)
			client, base, _ := frontClient(t, p, "http", addr)
			startStrata(t, fmt.Sprintf("frontends:\n  web:\n    bind: %q\n    mode: http\n    default_backend: app\n%s"+
				"    health: { type: http, path: /health, interval: 50ms, rise: 1, fall: 1 }\n",
				addr, h2BackendYAML(p, back == "h2", b.addr)))
			deadline := time.Now().Add(5 * time.Second)
			for b.checks.Load() < 2 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if b.checks.Load() < 2 {
				t.Fatalf("%d HTTP/2 health checks reached the server", b.checks.Load())
			}
			resp, err := client.Get(base + "/hold")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: the checked server is not up", resp.StatusCode)
			}
		})
	}
}

// TestH2BackendEarlyHints: a 103 from an HTTP/2 server reaches HTTP/1.1
// and HTTP/2 clients before the final response.
func TestH2BackendEarlyHints(t *testing.T) {
	p := newPKI(t)
	b := startH2Backend(t, p, false, 100)
	for _, front := range []string{"http", "h2"} {
		t.Run(front, func(t *testing.T) {
			addr := freeAddr(t)
			client, base, frontYAML := frontClient(t, p, front, addr)
			startStrata(t, fmt.Sprintf("frontends:\n  web:\n    bind: %q\n    mode: http\n%s    default_backend: app\n%s",
				addr, frontYAML, h2BackendYAML(p, false, b.addr)))
			var hints []string
			trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
				hints = append(hints, fmt.Sprint(code, " ", h.Get("Link")))
				return nil
			}}
			req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", base+"/hints", nil)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "page" {
				t.Fatalf("status %d, body %q", resp.StatusCode, body)
			}
			if len(hints) != 1 || hints[0] != "103 </style.css>; rel=preload" {
				t.Fatalf("interim responses %q, want one 103 with its Link", hints)
			}
		})
	}
}

// TestH2BackendFullDuplex: an h2c server that streams the request body
// back as it reads it gets it while its answer flows back (64 MiB
// byte-exact both ways), and one that refuses a large upload early with
// 413 has its answer reach the client.
func TestH2BackendFullDuplex(t *testing.T) {
	p := newPKI(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", streamEcho)
	mux.HandleFunc("/refuse", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "refused early", http.StatusRequestEntityTooLarge)
	})
	srv := &http.Server{Handler: mux, Protocols: new(http.Protocols)}
	srv.Protocols.SetUnencryptedHTTP2(true)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	for _, front := range []string{"http", "h2"} {
		t.Run(front, func(t *testing.T) {
			addr := freeAddr(t)
			client, base, frontYAML := frontClient(t, p, front, addr)
			_, logs := startStrata(t, fmt.Sprintf("frontends:\n  web:\n    bind: %q\n    mode: http\n%s    default_backend: app\n%s",
				addr, frontYAML, h2BackendYAML(p, false, ln.Addr().String())))
			size := int64(64 << 20)
			if front == "h2" {
				size = 16 << 20
			}
			req, err := http.NewRequest("POST", base+"/echo", io.NopCloser(newStream(3, size)))
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = size
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			n, err := io.Copy(h, resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("echo: status %d, %d bytes: %v", resp.StatusCode, n, err)
			}
			if n != size || !bytes.Equal(h.Sum(nil), sliceOf(digest(3, size))) {
				t.Fatalf("echo: got %d bytes back, want %d byte-exact", n, size)
			}
			logs.waitAccess(t, func(m map[string]any) bool {
				return m["path"] == "/echo" && m["bytes_in"] == float64(size) && m["bytes_out"] == float64(size)
			})

			// A large upload the server refuses at once: its 413 comes
			// back, and the rest of the upload is cut short. (Go's HTTP/1
			// client reports the cut upload rather than the answer: a raw
			// client reads it.)
			if front == "http" {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				fmt.Fprintf(c, "POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 64<<20)
				go io.Copy(c, newStream(4, 64<<20))
				resp, err = http.ReadResponse(bufio.NewReader(c), nil)
			} else {
				req, err = http.NewRequest("POST", base+"/refuse", io.NopCloser(newStream(4, 64<<20)))
				if err != nil {
					t.Fatal(err)
				}
				req.ContentLength = 64 << 20
				resp, err = client.Do(req)
			}
			if err != nil {
				t.Fatalf("refuse: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 413 || !strings.Contains(string(body), "refused early") {
				t.Fatalf("refuse: got %d %q, want the server's 413; log:\n%s", resp.StatusCode, body, logs)
			}
			logs.waitAccess(t, func(m map[string]any) bool { return m["path"] == "/refuse" && m["status"] == float64(413) })
		})
	}
}
