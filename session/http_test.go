package session

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestHTTPGet(t *testing.T) {
	checkGoroutines(t)
	be := startHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Path", r.URL.Path)
		fmt.Fprintf(w, "hello %s %s", r.Method, r.Host)
	})
	b := newBackend(t, "app", "", 0, be.addr())
	h := startHTTP(t, HTTPFrontendOptions{DefaultBackend: b})
	c := h.client(t)
	resp, err := c.Get(h.url("/a/b?x=1"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "hello GET "+h.addr || resp.Header.Get("X-Path") != "/a/b" {
		t.Fatalf("got %d %q %v", resp.StatusCode, body, resp.Header)
	}
	wantRecord(t, h.record(t), map[string]any{
		"method": "GET", "path": "/a/b?x=1", "status": 200.0, "backend": "app", "server": "s0",
		"term": "none", "level": "INFO", "frontend": "web",
	})
}

// TestHTTPPost forwards request bodies, length-delimited and chunked (with
// trailers), and chunked responses with trailers.
func TestHTTPPost(t *testing.T) {
	checkGoroutines(t)
	be := startHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("backend: %v", err)
		}
		w.Header().Set("Trailer", "X-Sum")
		w.Header().Set("X-TE", strings.Join(r.TransferEncoding, ","))
		w.Header().Set("X-CL", fmt.Sprint(r.ContentLength))
		w.Write(bytes.ToUpper(body))
		w.(http.Flusher).Flush()
		w.Write([]byte("!"))
		w.Header().Set("X-Sum", fmt.Sprint(len(body))+"/"+r.Trailer.Get("X-In"))
	})
	b := newBackend(t, "app", "", 0, be.addr())
	h := startHTTP(t, HTTPFrontendOptions{DefaultBackend: b})
	tests := []struct {
		name   string
		req    string
		wantTE string
		wantCL string
		body   string
		sum    string
	}{
		{"length", "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", "", "5", "HELLO!", "5/"},
		{"chunked with trailers", "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;e=1\r\nde\r\n0\r\nX-In: t1\r\n\r\n",
			"chunked", "-1", "ABCDE!", "5/t1"},
		{"empty length", "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", "", "0", "!", "0/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := h.dial(t)
			if _, err := io.WriteString(c, tt.req); err != nil {
				t.Fatal(err)
			}
			resp, body := readResponse(t, bufio.NewReader(c), "POST")
			if resp.StatusCode != 200 || body != tt.body || resp.Header.Get("X-TE") != tt.wantTE || resp.Header.Get("X-CL") != tt.wantCL {
				t.Fatalf("got %d %q %v", resp.StatusCode, body, resp.Header)
			}
			if got := resp.Trailer.Get("X-Sum"); got != tt.sum {
				t.Fatalf("trailer X-Sum = %q, want %q (TE %v)", got, tt.sum, resp.TransferEncoding)
			}
			h.record(t)
		})
	}
}

// TestHTTPKeepAlive checks connection reuse on both sides.
func TestHTTPKeepAlive(t *testing.T) {
	checkGoroutines(t)
	be := startHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	b := newBackend(t, "app", "", 0, be.addr())
	h := startHTTP(t, HTTPFrontendOptions{DefaultBackend: b})
	c := h.client(t)
	const n = 20
	for i := range n {
		resp, err := c.Get(h.url(fmt.Sprintf("/%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		h.record(t)
	}
	if got := be.accepted(); got != 1 {
		t.Errorf("backend accepted %d connections for %d sequential requests, want 1", got, n)
	}
	if got := b.Servers()[0].IdleConns(); got != 1 {
		t.Errorf("idle pool holds %d connections, want 1", got)
	}
}

func TestHTTPPipelining(t *testing.T) {
	checkGoroutines(t)
	be := startHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/1" {
			time.Sleep(20 * time.Millisecond) // the later ones must still come after
		}
		io.WriteString(w, "r"+r.URL.Path)
	})
	b := newBackend(t, "app", "", 0, be.addr())
	h := startHTTP(t, HTTPFrontendOptions{DefaultBackend: b})
	c := h.dial(t)
	io.WriteString(c, "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nHEAD /3 HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	for i, m := range []string{"GET", "GET", "HEAD"} {
		resp, body := readResponse(t, br, m)
		want := fmt.Sprintf("r/%d", i+1)
		if m == "HEAD" {
			want = ""
		}
		if resp.StatusCode != 200 || body != want {
			t.Fatalf("response %d: %d %q, want %q", i, resp.StatusCode, body, want)
		}
	}
}

// TestHTTPAccessLogTimers checks the HTTP keys of the record.
func TestHTTPAccessLogTimers(t *testing.T) {
	checkGoroutines(t)
	be := startHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(30 * time.Millisecond)
		io.WriteString(w, "ok")
	})
	b := newBackend(t, "app", "", 0, be.addr())
	h := startHTTP(t, HTTPFrontendOptions{DefaultBackend: b, RequestID: RequestIDOptions{Enabled: true}})
	c := h.dial(t)
	io.WriteString(c, "GET /x HTTP/1.1\r\nHost: Example.com:80\r\n")
	time.Sleep(20 * time.Millisecond)
	io.WriteString(c, "\r\n")
	readResponse(t, bufio.NewReader(c), "GET")
	r := h.record(t)
	wantRecord(t, r, map[string]any{"method": "GET", "host": "Example.com", "path": "/x", "status": 200.0, "term": "none"})
	for _, k := range []string{"request_ms", "queue_ms", "connect_ms", "response_ms", "total_ms"} {
		if _, ok := r[k].(float64); !ok {
			t.Errorf("record has no %s: %v", k, r)
		}
	}
	if r["request_ms"].(float64) < 15 || r["response_ms"].(float64) < 25 || r["total_ms"].(float64) < r["response_ms"].(float64) {
		t.Errorf("timers do not add up: %v", r)
	}
	if id, _ := r["request_id"].(string); len(id) != 32 {
		t.Errorf("request_id %q", id)
	}
}

// TestHTTPShutdown: an idle kept-alive connection is closed at once by
// Shutdown; a busy one finishes its response first.
func TestHTTPShutdown(t *testing.T) {
	checkGoroutines(t)
	release := make(chan struct{})
	be := startHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "ok")
	})
	b := newBackend(t, "app", "", 0, be.addr())
	h := startHTTP(t, HTTPFrontendOptions{DefaultBackend: b})
	idle := h.dial(t)
	io.WriteString(idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	ibr := bufio.NewReader(idle)
	readResponse(t, ibr, "GET")
	busy := h.dial(t)
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(50 * time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- h.f.Shutdown(t.Context()) }()
	idle.SetReadDeadline(time.Now().Add(2 * time.Second))
	if rest, err := io.ReadAll(ibr); err != nil || len(rest) != 0 {
		t.Fatalf("idle connection: %q %v", rest, err)
	}
	close(release)
	busy.SetReadDeadline(time.Now().Add(2 * time.Second))
	bbr := bufio.NewReader(busy)
	if resp, body := readResponse(t, bbr, "GET"); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("busy connection: %d %q", resp.StatusCode, body)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestHTTPHealthCheck: an "http" check takes a server down on an
// unexpected status and up again on the expected one.
func TestHTTPHealthCheck(t *testing.T) {
	checkGoroutines(t)
	var healthy atomic.Bool
	healthy.Store(true)
	be := startHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" || r.Method != "HEAD" || !healthy.Load() {
			w.WriteHeader(503)
			return
		}
		w.WriteHeader(204)
	})
	b, err := NewBackend(BackendOptions{Name: "app", Servers: []ServerOptions{{Name: "s0", Address: be.addr(), Weight: 1, Connector: dialerTo(be.addr())}},
		Health: &HealthOptions{Kind: "http", Interval: 20 * time.Millisecond, Rise: 1, Fall: 1,
			HTTP: HTTPCheck{Method: "HEAD", Path: "/healthz", Status: []int{204}}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	b.Start(ctx)
	t.Cleanup(func() { cancel(); b.checks.Wait() })
	srv := b.Servers()[0]
	waitUp := func(want bool) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for srv.Up() != want {
			if time.Now().After(deadline) {
				t.Fatalf("server up = %v, want %v", srv.Up(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	time.Sleep(100 * time.Millisecond)
	waitUp(true)
	healthy.Store(false)
	waitUp(false)
	healthy.Store(true)
	waitUp(true)
}
