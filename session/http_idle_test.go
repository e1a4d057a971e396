package session

import (
	"bufio"
	"io"
	"net/http"
	"testing"
	"time"
)

// TestHTTPIdleHandOver: a connection idle longer than idleGrace is handed
// over to its small-stack goroutine and back when the client speaks
// again, before the first request and between requests, and its timers
// still count from the start of the wait.
func TestHTTPIdleHandOver(t *testing.T) {
	checkGoroutines(t)
	be := startHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok "+r.URL.Path) })
	b := newBackend(t, "app", "", 0, be.addr())
	const keepAlive = 20 * idleGrace
	h := startHTTP(t, HTTPFrontendOptions{DefaultBackend: b, Timeouts: HTTPTimeouts{HTTPRequest: 10 * time.Second, KeepAlive: keepAlive}})
	c := h.dial(t)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for i, path := range []string{"/first", "/second", "/third"} {
		time.Sleep(3 * idleGrace) // idle: handed over
		if i == 2 {
			// Pipelined, after a hand-over: both answered in order.
			io.WriteString(c, "GET /third HTTP/1.1\r\nHost: x\r\n\r\nGET /fourth HTTP/1.1\r\nHost: x\r\n\r\n")
		} else {
			io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		}
		resp, body := readResponse(t, br, "GET")
		if resp.StatusCode != 200 || body != "ok "+path {
			t.Fatalf("%s: %d %q", path, resp.StatusCode, body)
		}
		wantRecord(t, h.record(t), map[string]any{"path": path, "status": 200.0, "term": "none"})
	}
	resp, body := readResponse(t, br, "GET")
	if resp.StatusCode != 200 || body != "ok /fourth" {
		t.Fatalf("/fourth: %d %q", resp.StatusCode, body)
	}
	h.record(t)
	// The keep-alive timer runs from the end of the last response, across
	// the hand-over.
	start := time.Now()
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Fatalf("after the keep-alive timeout: %q, %v", rest, err)
	}
	if took := time.Since(start); took < keepAlive-20*time.Millisecond || took > keepAlive+500*time.Millisecond {
		t.Errorf("closed after %v, want about %v", took, keepAlive)
	}
	h.noRecord(t)
}

// TestHTTPShutdownHandedOver: Shutdown closes at once a connection that
// was handed over idle (waiting on its socket).
func TestHTTPShutdownHandedOver(t *testing.T) {
	checkGoroutines(t)
	be := startHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	b := newBackend(t, "app", "", 0, be.addr())
	h := startHTTP(t, HTTPFrontendOptions{DefaultBackend: b, Timeouts: HTTPTimeouts{KeepAlive: time.Minute}})
	c := h.dial(t)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	readResponse(t, br, "GET")
	h.record(t)
	time.Sleep(3 * idleGrace)
	start := time.Now()
	if err := h.f.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Fatalf("idle connection: %q %v", rest, err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Shutdown took %v with only an idle connection", took)
	}
	h.noRecord(t)
}
