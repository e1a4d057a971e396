package integration

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/strata-proxy/strata/certs"
)

// bodyFronts are the client-side protocols TestHTTPBodies runs through:
// each names how strata's frontend is configured and how the client
// speaks to it.
var bodyFronts = []string{"h1", "h2", "h3"}

// bodyBacks are the server-side protocols: HTTP/1.1 and HTTP/2 (proto: h2,
// over TLS) on TCP, HTTP/3 on QUIC (h3: true).
var bodyBacks = []string{"h1", "h2", "h3"}

// bodyBackend serves the body checks: /upload hashes the request body and
// its trailers, /download?n= streams n bytes with a trailer, /step writes
// /stream-down and /stream-up check that neither direction waits for a
// whole message.
func bodyBackend(t *testing.T, p *pki, proto string, steps *streamSteps) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Body-Len", strconv.FormatInt(n, 10))
		w.Header().Set("X-Body-Sha256", fmt.Sprintf("%x", h.Sum(nil)))
		w.Header().Set("X-Seen-Trailer", r.Trailer.Get("X-Request-Trailer"))
	})
	mux.HandleFunc("/download", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		w.Header().Set("Trailer", "X-Response-Sha256")
		h := sha256.New()
		io.Copy(io.MultiWriter(w, h), newStream(7, n))
		w.Header().Set("X-Response-Sha256", fmt.Sprintf("%x", h.Sum(nil)))
	})
	mux.HandleFunc("/stream-down", func(w http.ResponseWriter, r *http.Request) {
		// The second chunk is written only once the client has the first:
		// a proxy that held the response back would stall here.
		io.WriteString(w, "pong1")
		w.(http.Flusher).Flush()
		if !wait(steps.down) {
			return
		}
		io.WriteString(w, "pong2")
	})
	mux.HandleFunc("/stream-up", func(w http.ResponseWriter, r *http.Request) {
		// The client sends the second part only once the backend has the
		// first: a proxy that waited for the whole body would stall here.
		// (strata holds up to one buffer of a request body, 16 KiB by
		// default, to check its framing before forwarding, as HAProxy's
		// http-buffer-request does; the first part is larger.)
		buf := make([]byte, stepFirst)
		if _, err := io.ReadFull(r.Body, buf); err != nil || !bytes.Equal(buf, stepPart()) {
			http.Error(w, fmt.Sprintf("first part: %v", err), http.StatusBadRequest)
			return
		}
		steps.up <- struct{}{}
		rest, _ := io.ReadAll(r.Body)
		io.WriteString(w, "got:"+string(rest))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	switch proto {
	case "h1":
		go srv.Serve(ln)
	case "h2":
		srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ProtoMajor != 2 {
				http.Error(w, "not HTTP/2", http.StatusBadRequest)
				return
			}
			mux.ServeHTTP(w, r)
		})
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{p.leaf(t, certs.IssueOptions{}, "backend.test")}, NextProtos: []string{"h2"}}
		go srv.ServeTLS(ln, "", "")
	case "h3":
		// Only QUIC on this port: a request that fell back to TCP fails.
		ln.Close()
		pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		h3srv := &http3.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.ProtoMajor != 3 {
					http.Error(w, "not HTTP/3", http.StatusBadRequest)
					return
				}
				mux.ServeHTTP(w, r)
			}),
			TLSConfig: http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{p.leaf(t, certs.IssueOptions{}, "backend.test")}}),
		}
		go h3srv.Serve(pc)
		t.Cleanup(func() { h3srv.Close(); pc.Close() })
		return pc.LocalAddr().String()
	default:
		t.Fatalf("no %s backend", proto)
	}
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// streamSteps are the signals of the streaming checks: down when the
// client has the response's first chunk, up when the backend has the
// request's first part.
type streamSteps struct{ down, up chan struct{} }

// wait waits for a signal, or gives up after a while.
func wait(c chan struct{}) bool {
	select {
	case <-c:
		return true
	case <-time.After(20 * time.Second):
		return false
	}
}

// stepFirst is the size of the first part of /step's request body: more
// than strata's default buffer.
const stepFirst = 64 << 10

func stepPart() []byte { return bytes.Repeat([]byte("ping1..."), stepFirst/8) }

// bodyClient is an HTTP client speaking proto to strata.
func bodyClient(t *testing.T, p *pki, proto string) *http.Client {
	t.Helper()
	tc := &tls.Config{RootCAs: p.pool(), ServerName: "localhost"}
	var rt http.RoundTripper
	switch proto {
	case "h1":
		tc.NextProtos = []string{"http/1.1"}
		tr := &http.Transport{TLSClientConfig: tc}
		t.Cleanup(tr.CloseIdleConnections)
		rt = tr
	case "h2":
		tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}
		t.Cleanup(tr.CloseIdleConnections)
		rt = tr
	case "h3":
		tr := &http3.Transport{TLSClientConfig: tc}
		t.Cleanup(func() { tr.Close() })
		rt = tr
	}
	return &http.Client{Transport: rt, Timeout: 120 * time.Second}
}

// TestHTTPBodies runs one test body over every front protocol and every
// back protocol: bodies byte-exact both ways (up to 64 MiB), trailers both
// ways, and streaming both ways (neither side waits for a whole message).
func TestHTTPBodies(t *testing.T) {
	p := newPKI(t)
	cert, key := p.issue(t, "front", certs.IssueOptions{}, "localhost")
	for _, front := range bodyFronts {
		for _, back := range bodyBacks {
			t.Run(front+"-to-"+back, func(t *testing.T) {
				steps := &streamSteps{down: make(chan struct{}, 1), up: make(chan struct{}, 1)}
				backend := bodyBackend(t, p, back, steps)
				addr := freeAddr(t)
				yamlText := h3Config(addr, cert, key, backend, "", "")
				switch back {
				case "h2":
					yamlText += fmt.Sprintf("    tls: { sni: backend.test, ca: %q }\n    proto: h2\n", p.rootFile())
				case "h3":
					yamlText += fmt.Sprintf("    tls: { sni: backend.test, ca: %q }\n    h3: true\n", p.rootFile())
				}
				_, logs := startStrata(t, yamlText)
				client := bodyClient(t, p, front)
				base := "https://" + addr
				major := map[string]int{"h1": 1, "h2": 2, "h3": 3}[front]

				for i, size := range []int64{0, 1, 16<<10 + 3, 64 << 20} {
					req, _ := http.NewRequest(http.MethodPost, base+"/upload", io.NopCloser(newStream(byte(i), size)))
					req.ContentLength = size
					resp, err := client.Do(req)
					if err != nil {
						t.Fatalf("upload %d bytes: %v", size, err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 || resp.ProtoMajor != major {
						t.Fatalf("upload %d bytes: %s %s", size, resp.Proto, resp.Status)
					}
					if want := fmt.Sprintf("%x", digest(byte(i), size)); resp.Header.Get("X-Body-Sha256") != want {
						t.Fatalf("upload %d bytes: the backend received %s bytes, a different body", size, resp.Header.Get("X-Body-Len"))
					}

					resp, err = client.Get(base + "/download?n=" + strconv.FormatInt(size, 10))
					if err != nil {
						t.Fatalf("download %d bytes: %v", size, err)
					}
					h := sha256.New()
					n, err := io.Copy(h, resp.Body)
					resp.Body.Close()
					if err != nil || resp.StatusCode != 200 {
						t.Fatalf("download %d bytes: %s, read %v", size, resp.Status, err)
					}
					if n != size || !bytes.Equal(h.Sum(nil), sliceOf(digest(7, size))) {
						t.Fatalf("download %d bytes: got %d bytes, a different body", size, n)
					}
					if got, want := resp.Trailer.Get("X-Response-Sha256"), fmt.Sprintf("%x", digest(7, size)); got != want {
						t.Errorf("download %d bytes: response trailer %q, want %q", size, got, want)
					}
				}
				logs.waitAccess(t, func(m map[string]any) bool {
					return m["path"] == "/upload" && m["bytes_in"] == float64(64<<20)
				})

				// A request body of unknown length with a trailer.
				pr, pw := io.Pipe()
				go func() {
					io.Copy(pw, newStream(3, 100_000))
					pw.Close()
				}()
				req, _ := http.NewRequest(http.MethodPost, base+"/upload", pr)
				req.Trailer = http.Header{"X-Request-Trailer": {"sent-after-the-body"}}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatalf("chunked upload with a trailer: %v", err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if want := fmt.Sprintf("%x", digest(3, 100_000)); resp.Header.Get("X-Body-Sha256") != want {
					t.Errorf("chunked upload: the backend received %s bytes, a different body", resp.Header.Get("X-Body-Len"))
				}
				if got := resp.Header.Get("X-Seen-Trailer"); got != "sent-after-the-body" {
					t.Errorf("request trailer reached the backend as %q", got)
				}

				// Streaming, each way.
				resp, err = client.Get(base + "/stream-down")
				if err != nil {
					t.Fatalf("streaming down: %v", err)
				}
				first := make([]byte, 5)
				if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "pong1" {
					t.Fatalf("streaming down: first chunk %q, %v", first, err)
				}
				steps.down <- struct{}{}
				rest, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || string(rest) != "pong2" {
					t.Fatalf("streaming down: rest %q, %v", rest, err)
				}

				pr, pw = io.Pipe()
				go func() {
					pw.Write(stepPart())
					if wait(steps.up) {
						pw.Write([]byte("ping2"))
					}
					pw.Close()
				}()
				resp, err = client.Post(base+"/stream-up", "application/octet-stream", pr)
				if err != nil {
					t.Fatalf("streaming up: %v", err)
				}
				rest, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || string(rest) != "got:ping2" {
					t.Fatalf("streaming up: %s %q, %v (was the request body held back?)", resp.Status, rest, err)
				}
			})
		}
	}
}
