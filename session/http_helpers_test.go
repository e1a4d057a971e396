package session

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-proxy/strata/layers"
	"github.com/strata-proxy/strata/layers/h1"
)

// httpHarness is an HTTPFrontend served by a real layers.Listener.
type httpHarness struct {
	f    *HTTPFrontend
	addr string
	logs logLines
}

// startHTTP serves o on 127.0.0.1:0 until t's cleanup, which closes the
// listener, drains the frontend and closes the backends' idle
// connections.
func startHTTP(t testing.TB, o HTTPFrontendOptions) *httpHarness {
	t.Helper()
	h := &httpHarness{logs: make(logLines, 256)}
	if o.AccessLog == nil {
		o.AccessLog = slog.New(slog.NewJSONHandler(h.logs, nil))
	}
	if o.Name == "" {
		o.Name = "web"
	}
	f, err := NewHTTPFrontend(o)
	if err != nil {
		t.Fatal(err)
	}
	h.f = f
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = ln.Addr().String()
	l := layers.ListenFrom(ln, h.addr)
	l.SetHandler(f)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.Serve(nil)
	}()
	backends := map[*Backend]bool{}
	if o.DefaultBackend != nil {
		backends[o.DefaultBackend] = true
	}
	for _, r := range o.Routes {
		if r.Backend != nil {
			backends[r.Backend] = true
		}
	}
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := f.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		for b := range backends {
			b.CloseIdle()
		}
	})
	return h
}

// client is a net/http client through the harness, with its own
// keep-alive pool, closed by t's cleanup.
func (h *httpHarness) client(t testing.TB) *http.Client {
	t.Helper()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", h.addr)
		},
		MaxIdleConnsPerHost: 4,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// url is the harness's address as an http URL with path p.
func (h *httpHarness) url(p string) string { return "http://" + h.addr + p }

// dial opens a raw client connection.
func (h *httpHarness) dial(t testing.TB) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// record waits for the next access-log line.
func (h *httpHarness) record(t testing.TB) map[string]any {
	t.Helper()
	select {
	case line := <-h.logs:
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("access log line %q: %v", line, err)
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no access log line within 5s")
	}
	return nil
}

// noRecord checks that no access-log line is waiting.
func (h *httpHarness) noRecord(t testing.TB) {
	t.Helper()
	select {
	case line := <-h.logs:
		t.Fatalf("unexpected access log line %s", line)
	case <-time.After(50 * time.Millisecond):
	}
}

// httpBackend runs a net/http server as one backend server, counting the
// connections it accepted.
type httpBackend struct {
	*httptest.Server
	mu     sync.Mutex
	conns  int
	closes int
}

func startHTTPBackend(t testing.TB, handler http.HandlerFunc) *httpBackend {
	t.Helper()
	b := &httpBackend{}
	b.Server = httptest.NewUnstartedServer(handler)
	b.Server.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			b.mu.Lock()
			b.conns++
			b.mu.Unlock()
		}
	}
	b.Start()
	t.Cleanup(b.Close)
	return b
}

// startH2CBackend is startHTTPBackend speaking only cleartext HTTP/2 with
// prior knowledge (h2c).
func startH2CBackend(t testing.TB, handler http.HandlerFunc) *httpBackend {
	t.Helper()
	b := &httpBackend{}
	b.Server = httptest.NewUnstartedServer(handler)
	b.Server.Config.Protocols = new(http.Protocols)
	b.Server.Config.Protocols.SetUnencryptedHTTP2(true)
	b.Server.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		b.mu.Lock()
		switch st {
		case http.StateNew:
			b.conns++
		case http.StateClosed:
			b.closes++
		}
		b.mu.Unlock()
	}
	b.Start()
	t.Cleanup(b.Close)
	return b
}

func (b *httpBackend) closed() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closes
}

func (b *httpBackend) addr() string { return strings.TrimPrefix(b.URL, "http://") }

func (b *httpBackend) accepted() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.conns
}

// readResponse reads one response from br for a request of method.
func readResponse(t testing.TB, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading response body: %v", err)
	}
	return resp, string(body)
}

// wantRecord checks fields of an access-log record.
func wantRecord(t testing.TB, r map[string]any, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if r[k] != v {
			t.Errorf("record[%q] = %v (%T), want %v; record %v", k, r[k], r[k], v, r)
		}
	}
}

// limitsForTest are small codec limits for the limit tests.
var limitsForTest = h1.Limits{MaxURI: 512, MaxFields: 10, MaxBody: 1024}

func dialerTo(addr string) layers.Connector { return &layers.Dialer{Address: addr} }
