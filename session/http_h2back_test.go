package session

import (
	"io"
	"net/http"
	"testing"
	"time"
)

// TestHTTPToH2Server: requests to a server spoken to over HTTP/2 (h2c)
// share one connection, which is kept shared, not pooled as idle, and
// closed by CloseIdle; nothing is left running after.
func TestHTTPToH2Server(t *testing.T) {
	checkGoroutines(t)
	be := startH2CBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Proto", r.Proto)
		io.WriteString(w, "ok")
	})
	b, err := NewBackend(BackendOptions{Name: "app", Servers: []ServerOptions{
		{Name: "s0", Address: be.addr(), Weight: 1, Connector: dialerTo(be.addr()), Proto: ProtoH2},
	}})
	if err != nil {
		t.Fatal(err)
	}
	h := startHTTP(t, HTTPFrontendOptions{DefaultBackend: b})
	c := h.client(t)
	for i := range 20 {
		resp, err := c.Get(h.url("/"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "ok" || resp.Header.Get("X-Proto") != "HTTP/2.0" {
			t.Fatalf("request %d: %d %q over %q", i, resp.StatusCode, body, resp.Header.Get("X-Proto"))
		}
		r := h.record(t)
		if i > 0 && r["connect_ms"] != float64(0) {
			t.Errorf("request %d on the shared connection: connect_ms %v, want 0", i, r["connect_ms"])
		}
	}
	srv := b.Servers()[0]
	if got := be.accepted(); got != 1 {
		t.Errorf("the server accepted %d connections for 20 requests, want 1", got)
	}
	if n, idle := srv.SharedConns(), srv.IdleConns(); n != 1 || idle != 0 {
		t.Errorf("%d shared and %d idle connections, want 1 and 0", n, idle)
	}
	b.CloseIdle()
	if n := srv.SharedConns(); n != 0 {
		t.Errorf("%d shared connections after CloseIdle, want 0", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for be.closed() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if be.closed() != 1 {
		t.Errorf("the server saw %d connections closed after CloseIdle, want 1", be.closed())
	}
}

// TestHTTPToH2ServerIdle: a shared connection that carried no stream for
// the backend's idle timeout is closed.
func TestHTTPToH2ServerIdle(t *testing.T) {
	checkGoroutines(t)
	be := startH2CBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	b, err := NewBackend(BackendOptions{Name: "app", IdleTimeout: 100 * time.Millisecond, Servers: []ServerOptions{
		{Name: "s0", Address: be.addr(), Weight: 1, Connector: dialerTo(be.addr()), Proto: ProtoH2},
	}})
	if err != nil {
		t.Fatal(err)
	}
	h := startHTTP(t, HTTPFrontendOptions{DefaultBackend: b})
	resp, err := h.client(t).Get(h.url("/"))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	srv := b.Servers()[0]
	if n := srv.SharedConns(); n != 1 {
		t.Fatalf("%d shared connections after a request, want 1", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for (be.closed() != 1 || srv.SharedConns() != 0) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if be.closed() != 1 || srv.SharedConns() != 0 {
		t.Fatalf("after the idle timeout: %d shared connections, %d closed at the server; want 0 and 1", srv.SharedConns(), be.closed())
	}
}
