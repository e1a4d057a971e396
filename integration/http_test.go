package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
	"golang.org/x/net/http2"

	"github.com/strata-proxy/strata/certs"
)

// httpBackend is a net/http server, plain or TLS with a certificate from
// our CA for backend.test, that counts the connections it accepts.
type httpBackend struct {
	addr  string
	conns atomic.Int32
}

func startHTTPBackend(t *testing.T, p *pki, useTLS bool) *httpBackend {
	t.Helper()
	b := &httpBackend{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		w.Header().Set("X-Body-Sha256", fmt.Sprintf("%x", h.Sum(nil)))
		w.Header().Set("X-Body-Len", fmt.Sprint(n))
		w.Header().Set("X-Seen-XFF", r.Header.Get("X-Forwarded-For"))
		w.Header().Set("X-Seen-Proto", r.Header.Get("X-Forwarded-Proto"))
		w.Header().Set("X-Seen-Request-Id", r.Header.Get("X-Request-ID"))
		io.Copy(w, newStream(9, n)) // a response body as long as the request's
	})
	srv := &http.Server{Handler: mux, ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			b.conns.Add(1)
		}
	}}
	if useTLS {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{p.leaf(t, certs.IssueOptions{}, "backend.test")}}
		go srv.ServeTLS(ln, "", "")
	} else {
		go srv.Serve(ln)
	}
	t.Cleanup(func() { srv.Close() })
	return b
}

// TestHTTPModes runs one test body through every pairing of a front (HTTP/1
// plain or over TLS, HTTP/2 over TLS by ALPN, cleartext HTTP/2 with prior
// knowledge, HTTP/3 over QUIC) with a plain or TLS backend.
func TestHTTPModes(t *testing.T) {
	p := newPKI(t)
	for _, front := range []string{"http", "https", "h2", "h2c", "h3"} {
		for _, back := range []string{"http", "https"} {
			t.Run(front+"-to-"+back, func(t *testing.T) {
				b := startHTTPBackend(t, p, back == "https")
				addr := freeAddr(t)
				var tlsFront, tlsBack string
				scheme := "http"
				bind := fmt.Sprintf("%q", addr)
				switch front {
				case "h3":
					bind = fmt.Sprintf("[ { address: %q, quic: true } ]", addr)
					fallthrough
				case "https", "h2":
					cert, key := p.issue(t, "front", certs.IssueOptions{}, "localhost")
					tlsFront = fmt.Sprintf("    tls: { certificates: [ { cert: %q, key: %q } ] }\n", cert, key)
					scheme = "https"
				case "h2c":
					tlsFront = "    h2c: true\n"
				}
				if back == "https" {
					tlsBack = fmt.Sprintf("    tls: { sni: backend.test, ca: %q }\n", p.rootFile())
				}
				_, logs := startStrata(t, fmt.Sprintf(`frontends:
  web:
    bind: %s
    mode: http
%s    default_backend: app
    headers:
      response: { set: { X-Served-By: strata } }
backends:
  app:
    servers: [ { address: %q } ]
%s`, bind, tlsFront, b.addr, tlsBack))
				client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
					TLSClientConfig:     &tls.Config{RootCAs: p.pool(), ServerName: "localhost"},
					MaxIdleConnsPerHost: 4,
					ForceAttemptHTTP2:   front == "h2",
				}}
				wantMajor := 1
				switch front {
				case "h2", "h2c":
					wantMajor = 2
				case "h3":
					wantMajor = 3
				}
				switch front {
				case "h2c":
					client.Transport = &http2.Transport{AllowHTTP: true, DialTLSContext: dialPlain}
				case "h3":
					tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: p.pool(), ServerName: "localhost"}}
					t.Cleanup(func() { tr.Close() })
					client.Transport = tr
				}
				t.Cleanup(client.CloseIdleConnections)
				url := scheme + "://" + addr + "/echo"
				for i, size := range []int64{0, 13, 64 << 10, 1 << 20, 3<<20 + 7} {
					body := io.Reader(newStream(byte(i), size))
					resp, err := client.Post(url, "application/octet-stream", body)
					if err != nil {
						t.Fatalf("POST %d bytes: %v", size, err)
					}
					h := sha256.New()
					n, err := io.Copy(h, resp.Body)
					resp.Body.Close()
					if err != nil || resp.StatusCode != 200 {
						t.Fatalf("POST %d bytes: status %d, read %v", size, resp.StatusCode, err)
					}
					if resp.ProtoMajor != wantMajor {
						t.Fatalf("POST %d bytes: answered over %s, want HTTP/%d", size, resp.Proto, wantMajor)
					}
					if want := fmt.Sprintf("%x", digest(byte(i), size)); resp.Header.Get("X-Body-Sha256") != want {
						t.Fatalf("POST %d bytes: the backend received a different body", size)
					}
					if n != size || !bytes.Equal(h.Sum(nil), sliceOf(digest(9, size))) {
						t.Fatalf("POST %d bytes: the response body differs (%d bytes)", size, n)
					}
					if got := resp.Header.Get("X-Seen-XFF"); got != "127.0.0.1" {
						t.Errorf("backend saw X-Forwarded-For %q", got)
					}
					if got := resp.Header.Get("X-Seen-Proto"); got != scheme {
						t.Errorf("backend saw X-Forwarded-Proto %q, want %s", got, scheme)
					}
					if resp.Header.Get("X-Seen-Request-Id") == "" || resp.Header.Get("X-Served-By") != "strata" {
						t.Errorf("request id %q, X-Served-By %q", resp.Header.Get("X-Seen-Request-Id"), resp.Header.Get("X-Served-By"))
					}
				}
				logs.waitAccess(t, func(m map[string]any) bool {
					return m["method"] == "POST" && m["bytes_in"] == float64(1<<20) && m["bytes_out"] == float64(1<<20)
				})
				// A POST never rides a reused connection (it could not be
				// replayed if that one turned out dead); GETs reuse them.
				// Let the connections of earlier requests settle in the pool.
				time.Sleep(50 * time.Millisecond)
				before := b.conns.Load()
				for i := 0; i < 20; i++ {
					resp, err := client.Get(url)
					if err != nil {
						t.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if n := b.conns.Load() - before; n > 0 {
					t.Errorf("20 GETs opened %d new server connections; want them to reuse the pooled ones", n)
				}
				r := logs.waitAccess(t, func(m map[string]any) bool { return m["method"] == "GET" })
				if r["status"] != float64(200) || r["path"] != "/echo" || r["backend"] != "app" {
					t.Errorf("access log line: %v", r)
				}
			})
		}
	}
}

func sliceOf(d [32]byte) []byte { return d[:] }

// dialPlain dials without TLS, for an HTTP/2 client speaking h2c.
func dialPlain(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}
