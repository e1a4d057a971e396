package integration

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-proxy/strata/certs"
	"golang.org/x/net/http2"
)

// h2Backend is a Go HTTP/2 server, h2c (prior knowledge only) or over TLS
// (ALPN h2 only), with a certificate from our CA for backend.test. It
// counts the connections it accepts and the requests in flight.
type h2Backend struct {
	addr     string
	srv      *http.Server
	conns    atomic.Int32
	inflight atomic.Int32
	peak     atomic.Int32
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
	mux.HandleFunc("/hold", func(w http.ResponseWriter, r *http.Request) {
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
		if s == http.StateNew {
			b.conns.Add(1)
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
		})
	}
}
