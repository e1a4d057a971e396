package session

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// echoHeaders answers with the request's fields as "Name: value" lines.
func echoHeaders(w http.ResponseWriter, r *http.Request) {
	var b strings.Builder
	fmt.Fprintf(&b, "host=%s\n", r.Host)
	for _, k := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded",
		"X-Request-Id", "X-Set", "X-Add", "X-Del", "X-Secret", "Keep-Alive", "Te", "Expect"} {
		for _, v := range r.Header.Values(k) {
			fmt.Fprintf(&b, "%s=%s\n", k, v)
		}
	}
	w.Header().Set("X-Internal", "1")
	w.Header().Set("Connection", "X-Hop")
	w.Header().Set("X-Hop", "1")
	io.WriteString(w, b.String())
}

// rawExchange sends req on a new connection and reads one response.
func rawExchange(t *testing.T, h *httpHarness, req, method string) (*http.Response, string) {
	t.Helper()
	c := h.dial(t)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	return readResponse(t, bufio.NewReader(c), method)
}

func TestHTTPBodylessResponses(t *testing.T) {
	checkGoroutines(t)
	be := startServer(t, func(c *net.TCPConn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			switch req.URL.Path {
			case "/204":
				io.WriteString(c, "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n")
			case "/304":
				io.WriteString(c, "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n")
			case "/head":
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
			case "/close":
				io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\nuntil the end")
				return
			case "/close10":
				io.WriteString(c, "HTTP/1.0 200 OK\r\n\r\nold style")
				return
			}
		}
	})
	b := newBackend(t, "app", "", 0, be)
	h := startHTTP(t, HTTPFrontendOptions{DefaultBackend: b})
	tests := []struct {
		name, method, path string
		status             int
		body, cl, te       string
	}{
		{"204", "GET", "/204", 204, "", "", ""},
		{"304 keeps length", "GET", "/304", 304, "", "10", ""},
		{"HEAD keeps length", "HEAD", "/head", 200, "", "1234", ""},
		{"until close re-framed chunked", "GET", "/close", 200, "until the end", "", "chunked"},
		{"1.0 until close", "GET", "/close10", 200, "old style", "", "chunked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := h.dial(t)
			c.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: x\r\n\r\nGET /204 HTTP/1.1\r\nHost: x\r\n\r\n", tt.method, tt.path)
			br := bufio.NewReader(c)
			resp, body := readResponse(t, br, tt.method)
			raw := resp.Header
			if resp.StatusCode != tt.status || body != tt.body {
				t.Fatalf("got %d %q", resp.StatusCode, body)
			}
			if tt.cl != "" && resp.Header.Get("Content-Length") != tt.cl && fmt.Sprint(resp.ContentLength) != tt.cl {
				t.Errorf("Content-Length %d, want %s (%v)", resp.ContentLength, tt.cl, raw)
			}
			if te := strings.Join(resp.TransferEncoding, ","); te != tt.te {
				t.Errorf("Transfer-Encoding %q, want %q", te, tt.te)
			}
			// The connection carries on with the next, pipelined request.
			if resp2, _ := readResponse(t, br, "GET"); resp2.StatusCode != 204 {
				t.Fatalf("second response %d", resp2.StatusCode)
			}
		})
	}
}

func TestHTTPExpectContinue(t *testing.T) {
	checkGoroutines(t)
	be := startHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "got %s expect=%q", body, r.Header.Get("Expect"))
	})
	b := newBackend(t, "app", "", 0, be.addr())
	h := startHTTP(t, HTTPFrontendOptions{DefaultBackend: b, Rules: []HTTPRule{{Match: HTTPMatch{PathPrefixes: []string{"/deny"}}, Deny: true}}})

	t.Run("continue", func(t *testing.T) {
		c := h.dial(t)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
		br := bufio.NewReader(c)
		line, err := br.ReadString('\n')
		if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
			t.Fatalf("first line %q, %v", line, err)
		}
		br.ReadString('\n')
		io.WriteString(c, "data")
		resp, body := readResponse(t, br, "POST")
		if resp.StatusCode != 200 || body != `got data expect=""` {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
	})
	t.Run("refused without 100", func(t *testing.T) {
		c := h.dial(t)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "POST /deny HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
		resp, _ := readResponse(t, bufio.NewReader(c), "POST")
		if resp.StatusCode != 403 || !resp.Close {
			t.Fatalf("got %d close=%v", resp.StatusCode, resp.Close)
		}
	})
	t.Run("net/http client", func(t *testing.T) {
		req, _ := http.NewRequest("PUT", h.url("/x"), strings.NewReader("payload"))
		req.Header.Set("Expect", "100-continue")
		resp, err := h.client(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != `got payload expect=""` {
			t.Fatalf("got %q", body)
		}
	})
}

func TestHTTPRouting(t *testing.T) {
	checkGoroutines(t)
	mk := func(name string) *Backend {
		be := startHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) })
		return newBackend(t, name, "", 0, be.addr())
	}
	api, wild, static, canary, def := mk("api"), mk("wild"), mk("static"), mk("canary"), mk("default")
	h := startHTTP(t, HTTPFrontendOptions{
		Routes: []HTTPRoute{
			{Match: HTTPMatch{Header: "X-Canary", HeaderValues: []string{"1"}}, Backend: canary},
			{Match: HTTPMatch{Hosts: []string{"api.example.com"}}, Backend: api},
			{Match: HTTPMatch{Hosts: []string{"*.example.com"}, PathPrefixes: []string{"/static/"}}, Backend: static},
			{Match: HTTPMatch{Hosts: []string{"*.example.com"}}, Backend: wild},
		},
		DefaultBackend: def,
	})
	tests := []struct{ host, path, header, want string }{
		{"api.example.com", "/", "", "api"},
		{"API.Example.COM:8080", "/", "", "api"},
		{"www.example.com", "/", "", "wild"},
		{"www.example.com", "/static/a.css", "", "static"},
		{"a.b.example.com", "/", "", "default"},
		{"example.com", "/", "", "default"},
		{"api.example.com", "/", "1", "canary"},
		{"api.example.com", "/", "2", "api"},
	}
	for _, tt := range tests {
		t.Run(tt.host+tt.path+tt.header, func(t *testing.T) {
			req := "GET " + tt.path + " HTTP/1.1\r\nHost: " + tt.host + "\r\n"
			if tt.header != "" {
				req += "X-Canary: " + tt.header + "\r\n"
			}
			resp, body := rawExchange(t, h, req+"\r\n", "GET")
			if resp.StatusCode != 200 || body != tt.want {
				t.Fatalf("got %d %q, want %q", resp.StatusCode, body, tt.want)
			}
			wantRecord(t, h.record(t), map[string]any{"backend": tt.want})
		})
	}
	t.Run("no route", func(t *testing.T) {
		h := startHTTP(t, HTTPFrontendOptions{Routes: []HTTPRoute{{Match: HTTPMatch{Hosts: []string{"a"}}, Backend: api}}})
		resp, _ := rawExchange(t, h, "GET / HTTP/1.1\r\nHost: b\r\n\r\n", "GET")
		if resp.StatusCode != 503 {
			t.Fatalf("got %d", resp.StatusCode)
		}
		wantRecord(t, h.record(t), map[string]any{"status": 503.0, "term": "proxy route: no route"})
	})
}

func TestHTTPHeaders(t *testing.T) {
	checkGoroutines(t)
	be := startHTTPBackend(t, echoHeaders)
	b := newBackend(t, "app", "", 0, be.addr())
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	untrusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	base := HTTPFrontendOptions{
		DefaultBackend: b,
		RequestHeaders: []HeaderRule{
			{Op: HeaderSet, Name: "X-Set", Value: "s"},
			{Op: HeaderAdd, Name: "X-Add", Value: "a2"},
			{Op: HeaderDel, Name: "X-Secret"},
		},
		ResponseHeaders: []HeaderRule{{Op: HeaderDel, Name: "X-Internal"}, {Op: HeaderAdd, Name: "X-Proxy", Value: "strata"}},
		RequestID:       RequestIDOptions{Enabled: true},
	}
	const req = "GET / HTTP/1.1\r\nHost: h.example\r\nX-Set: old\r\nX-Add: a1\r\nX-Secret: s\r\n" +
		"X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\nForwarded: for=1.2.3.4\r\n" +
		"Connection: keep-alive, X-Drop\r\nX-Drop: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n\r\n"
	tests := []struct {
		name    string
		trusted []netip.Prefix
		want    []string
		absent  []string
	}{
		{"trusted peer", trusted, []string{
			"X-Forwarded-For=1.2.3.4, 127.0.0.1", "X-Forwarded-Proto=https", "X-Forwarded-Host=h.example",
			"Forwarded=for=1.2.3.4, for=127.0.0.1;proto=http;host=\"h.example\"",
		}, nil},
		{"untrusted peer", untrusted, []string{
			"X-Forwarded-For=127.0.0.1\n", "X-Forwarded-Proto=http\n", "Forwarded=for=127.0.0.1;proto=http;host=\"h.example\"\n",
		}, []string{"1.2.3.4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base
			o.Forwarded = ForwardedOptions{XForwardedFor: true, XForwardedProto: true, XForwardedHost: true, Forwarded: true, Trusted: tt.trusted}
			h := startHTTP(t, o)
			resp, body := rawExchange(t, h, req, "GET")
			common := []string{"X-Set=s\n", "X-Add=a1\nX-Add=a2\n", "X-Request-Id="}
			for _, w := range append(common, tt.want...) {
				if !strings.Contains(body, w) {
					t.Errorf("backend saw\n%s\nwant %q", body, w)
				}
			}
			for _, w := range append([]string{"X-Secret", "X-Drop", "Keep-Alive", "Te="}, tt.absent...) {
				if strings.Contains(body, w) {
					t.Errorf("backend saw\n%s\nwant no %q", body, w)
				}
			}
			if resp.Header.Get("X-Internal") != "" || resp.Header.Get("X-Proxy") != "strata" || resp.Header.Get("X-Hop") != "" {
				t.Errorf("response header %v", resp.Header)
			}
			r := h.record(t)
			id, _ := r["request_id"].(string)
			if len(id) != 32 || !strings.Contains(body, "X-Request-Id="+id) {
				t.Errorf("request id %q not the one forwarded:\n%s", id, body)
			}
		})
	}
	t.Run("request id passed on", func(t *testing.T) {
		h := startHTTP(t, base)
		_, body := rawExchange(t, h, "GET / HTTP/1.1\r\nHost: x\r\nX-Request-ID: abc-123\r\n\r\n", "GET")
		if !strings.Contains(body, "X-Request-Id=abc-123\n") || strings.Count(body, "X-Request-Id") != 1 {
			t.Errorf("backend saw\n%s", body)
		}
		wantRecord(t, h.record(t), map[string]any{"request_id": "abc-123"})
	})
	t.Run("connection cannot strip proxy fields", func(t *testing.T) {
		o := base
		o.Forwarded = ForwardedOptions{XForwardedFor: true}
		h := startHTTP(t, o)
		_, body := rawExchange(t, h, "GET / HTTP/1.1\r\nHost: x\r\nConnection: X-Forwarded-For, X-Request-ID, Host\r\n\r\n", "GET")
		if !strings.Contains(body, "X-Forwarded-For=127.0.0.1") || !strings.Contains(body, "X-Request-Id=") || !strings.Contains(body, "host=x") {
			t.Errorf("backend saw\n%s", body)
		}
	})
}

func TestHTTPRulesAndRedirects(t *testing.T) {
	checkGoroutines(t)
	be := startHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	b := newBackend(t, "app", "", 0, be.addr())
	h := startHTTP(t, HTTPFrontendOptions{
		DefaultBackend: b,
		Rules: []HTTPRule{
			{Match: HTTPMatch{PathPrefixes: []string{"/admin"}, Sources: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}},
			{Match: HTTPMatch{PathPrefixes: []string{"/admin"}}, Deny: true},
			{Match: HTTPMatch{Methods: []string{"TRACE"}}, Deny: true, Status: 405},
			{Match: HTTPMatch{Header: "X-Bad"}, Deny: true},
		},
		Routes: []HTTPRoute{
			{Match: HTTPMatch{Hosts: []string{"old.example"}}, Redirect: &HTTPRedirect{Status: 301, Scheme: "https", Host: "new.example"}},
			{Match: HTTPMatch{PathPrefixes: []string{"/moved"}}, Redirect: &HTTPRedirect{Status: 308, Path: "/here"}},
		},
		ErrorPages: map[int]string{403: "go away\n"},
	})
	tests := []struct {
		name, req string
		status    int
		location  string
		body      string
	}{
		{"deny path", "GET /admin/x HTTP/1.1\r\nHost: a\r\n\r\n", 403, "", "go away\n"},
		{"deny method", "TRACE / HTTP/1.1\r\nHost: a\r\n\r\n", 405, "", ""},
		{"deny header", "GET / HTTP/1.1\r\nHost: a\r\nX-Bad: 1\r\n\r\n", 403, "", "go away\n"},
		{"allow", "GET /ok HTTP/1.1\r\nHost: a\r\n\r\n", 200, "", "ok"},
		{"redirect https host", "GET /p?q=1 HTTP/1.1\r\nHost: old.example\r\n\r\n", 301, "https://new.example/p?q=1", ""},
		{"redirect path", "GET /moved/x?y HTTP/1.1\r\nHost: a:81\r\n\r\n", 308, "http://a:81/here?y", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := rawExchange(t, h, tt.req, "GET")
			if resp.StatusCode != tt.status || resp.Header.Get("Location") != tt.location || (tt.body != "" && body != tt.body) {
				t.Fatalf("got %d %v %q", resp.StatusCode, resp.Header, body)
			}
			r := h.record(t)
			wantRecord(t, r, map[string]any{"status": float64(tt.status)})
		})
	}
}

// TestHTTPRetries: a GET moves to the live server when one is dead (connect
// refused) or closes without answering; a POST whose body was sent is not
// replayed.
func TestHTTPRetries(t *testing.T) {
	checkGoroutines(t)
	var hits atomic.Int64
	good := startHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.ReadAll(r.Body)
		io.WriteString(w, "good")
	})
	var mute atomic.Int64
	muteAddr := startServer(t, func(c *net.TCPConn) {
		mute.Add(1)
		br := bufio.NewReader(c)
		if req, err := http.ReadRequest(br); err == nil {
			io.Copy(io.Discard, req.Body)
		}
	})
	t.Run("GET moves off a refused server", func(t *testing.T) {
		b := newBackend(t, "app", "roundrobin", 1, refusedAddr(t), good.addr())
		h := startHTTP(t, HTTPFrontendOptions{DefaultBackend: b})
		for range 4 {
			resp, body := rawExchange(t, h, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "GET")
			if resp.StatusCode != 200 || body != "good" {
				t.Fatalf("got %d %q", resp.StatusCode, body)
			}
			h.record(t)
		}
	})
	t.Run("GET moves off a server closing without answer", func(t *testing.T) {
		b := newBackend(t, "app", "first", 1, muteAddr, good.addr())
		h := startHTTP(t, HTTPFrontendOptions{DefaultBackend: b})
		before := mute.Load()
		resp, body := rawExchange(t, h, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "GET")
		if resp.StatusCode != 200 || body != "good" || mute.Load() != before+1 {
			t.Fatalf("got %d %q, mute server hit %d times", resp.StatusCode, body, mute.Load()-before)
		}
		wantRecord(t, h.record(t), map[string]any{"server": "s1", "retries": 1.0})
	})
	t.Run("POST not replayed", func(t *testing.T) {
		b := newBackend(t, "app", "first", 1, muteAddr, good.addr())
		h := startHTTP(t, HTTPFrontendOptions{DefaultBackend: b})
		before, hitsBefore := mute.Load(), hits.Load()
		resp, _ := rawExchange(t, h, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", "POST")
		if resp.StatusCode != 502 || mute.Load() != before+1 || hits.Load() != hitsBefore {
			t.Fatalf("got %d; mute hit %d, good hit %d", resp.StatusCode, mute.Load()-before, hits.Load()-hitsBefore)
		}
		wantRecord(t, h.record(t), map[string]any{"status": 502.0, "term": "server http response: closed before responding"})
	})
	t.Run("dead pooled connection replaced", func(t *testing.T) {
		var n atomic.Int64
		// Answers one request per connection, keeping it open, then closes
		// it silently when the next request arrives.
		addr := startServer(t, func(c *net.TCPConn) {
			br := bufio.NewReader(c)
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			n.Add(1)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			http.ReadRequest(br)
		})
		b := newBackend(t, "app", "", 0, addr)
		h := startHTTP(t, HTTPFrontendOptions{DefaultBackend: b})
		for i := range 3 {
			resp, body := rawExchange(t, h, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "GET")
			if resp.StatusCode != 200 || body != "ok" {
				t.Fatalf("request %d: got %d %q", i, resp.StatusCode, body)
			}
			h.record(t)
		}
	})
	t.Run("pooled connection closed right after its response", func(t *testing.T) {
		// The server answers and closes at once, without saying so: the
		// next request takes the connection from the pool without a probe
		// (it was pooled an instant ago), finds it dead, and is replayed on
		// a fresh one.
		var conns atomic.Int64
		addr := startServer(t, func(c *net.TCPConn) {
			conns.Add(1)
			if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		})
		b := newBackend(t, "app", "", 0, addr)
		h := startHTTP(t, HTTPFrontendOptions{DefaultBackend: b})
		for i := range 5 {
			resp, body := rawExchange(t, h, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "GET")
			if resp.StatusCode != 200 || body != "ok" {
				t.Fatalf("request %d: got %d %q", i, resp.StatusCode, body)
			}
			wantRecord(t, h.record(t), map[string]any{"status": 200.0, "retries": 0.0})
		}
		if n := conns.Load(); n < 5 {
			t.Errorf("5 requests made %d server connections; each needs its own", n)
		}
	})
}

// TestHTTPTimeouts checks each timeout's answer and its timing.
//
// A connection that sends nothing until http_request passes gets a 408
// and a log line, as one that sent part of a head does: that is what
// HAProxy 2.6 does by default (checked against Debian's 2.6.12 with
// "timeout http-request 1s": 408 and a "cR--" log line in both cases;
// only "option http-ignore-probes" closes the empty one quietly, and
// "option dontlognull" only drops its log line). A keep-alive connection
// idle past keep_alive closes quietly, as in HAProxy.
func TestHTTPTimeouts(t *testing.T) {
	checkGoroutines(t)
	const d = 300 * time.Millisecond
	slow := startHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(3 * d):
		case <-r.Context().Done():
		}
		io.WriteString(w, "late")
	})
	ok := startHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	tests := []struct {
		name    string
		backend func(t *testing.T) *Backend
		send    string
		status  int
		term    string
	}{
		{"408 request head", func(t *testing.T) *Backend { return newBackend(t, "app", "", 0, ok.addr()) },
			"GET / HTTP/1.1\r\nHost: x\r\n", 408, "client http request timeout"},
		{"408 nothing sent", func(t *testing.T) *Backend { return newBackend(t, "app", "", 0, ok.addr()) },
			"", 408, "client http request timeout"},
		{"504 server", func(t *testing.T) *Backend { return newBackend(t, "app", "", 0, slow.addr()) },
			"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 504, "server http response timeout"},
		{"503 queue", func(t *testing.T) *Backend {
			b, err := NewBackend(BackendOptions{Name: "app", QueueTimeout: d, Servers: []ServerOptions{
				{Name: "s0", Address: slow.addr(), Weight: 1, MaxConn: 1, Connector: dialerTo(slow.addr())}}})
			if err != nil {
				t.Fatal(err)
			}
			// Hold the only slot.
			srv, _, err := b.Acquire(t.Context(), netip.Addr{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(srv.Release)
			return b
		}, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 503, "proxy queue timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startHTTP(t, HTTPFrontendOptions{
				DefaultBackend: tt.backend(t),
				Timeouts:       HTTPTimeouts{HTTPRequest: d, Server: d},
			})
			c := h.dial(t)
			c.SetDeadline(time.Now().Add(5 * time.Second))
			start := time.Now()
			io.WriteString(c, tt.send)
			resp, _ := readResponse(t, bufio.NewReader(c), "GET")
			took := time.Since(start)
			if resp.StatusCode != tt.status {
				t.Fatalf("got %d, want %d", resp.StatusCode, tt.status)
			}
			if took < d-20*time.Millisecond || took > d+500*time.Millisecond {
				t.Errorf("answered after %v, want about %v", took, d)
			}
			wantRecord(t, h.record(t), map[string]any{"status": float64(tt.status), "term": tt.term, "level": "WARN"})
		})
	}
	t.Run("keep-alive closes quietly", func(t *testing.T) {
		b := newBackend(t, "app", "", 0, ok.addr())
		h := startHTTP(t, HTTPFrontendOptions{DefaultBackend: b, Timeouts: HTTPTimeouts{HTTPRequest: time.Second, KeepAlive: d}})
		c := h.dial(t)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(c)
		readResponse(t, br, "GET")
		h.record(t)
		start := time.Now()
		if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
			t.Fatalf("after keep-alive timeout: %q, %v", rest, err)
		}
		if took := time.Since(start); took < d-20*time.Millisecond || took > d+500*time.Millisecond {
			t.Errorf("closed after %v, want about %v", took, d)
		}
		h.noRecord(t)
	})
}

// TestHTTPUpgrade runs a WebSocket-style upgrade and echoes 1 MiB through
// the tunnel.
func TestHTTPUpgrade(t *testing.T) {
	checkGoroutines(t)
	addr := startServer(t, func(c *net.TCPConn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil || req.Header.Get("Upgrade") != "websocket" || !strings.EqualFold(req.Header.Get("Connection"), "upgrade") {
			io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		io.Copy(c, br)
		c.CloseWrite()
	})
	b := newBackend(t, "app", "", 0, addr)
	h := startHTTP(t, HTTPFrontendOptions{DefaultBackend: b, Timeouts: HTTPTimeouts{Tunnel: 5 * time.Second}})
	c := h.dial(t)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "websocket" {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	payload := make([]byte, 1<<20)
	rand.Read(payload)
	go func() {
		c.Write(payload)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("echo differs: %d bytes back of %d", len(got), len(payload))
	}
	wantRecord(t, h.record(t), map[string]any{"status": 101.0, "bytes_in": float64(len(payload)), "bytes_out": float64(len(payload))})
}

// TestHTTPCodecErrors: each codec error is answered with its status and
// Connection: close, and the backend receives nothing.
func TestHTTPCodecErrors(t *testing.T) {
	checkGoroutines(t)
	rec := &recorder{}
	b := newBackend(t, "app", "", 0, startServer(t, rec.serve))
	h := startHTTP(t, HTTPFrontendOptions{DefaultBackend: b, Limits: limitsForTest})
	tests := []struct {
		name, req string
		status    int
	}{
		{"400 cl-te", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"400 bad chunk", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
		{"413 length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n", 413},
		{"413 chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n" + strings.Repeat("a", 2048) + "\r\n0\r\n\r\n", 413},
		{"414", "GET /" + strings.Repeat("a", 600) + " HTTP/1.1\r\nHost: x\r\n\r\n", 414},
		{"431 count", "GET / HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("A: b\r\n", 20) + "\r\n", 431},
		{"501", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501},
		{"505", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec.reset(nil)
			resp, _ := rawExchange(t, h, tt.req, "GET")
			if resp.StatusCode != tt.status || !resp.Close {
				t.Fatalf("got %d close=%v, want %d and close", resp.StatusCode, resp.Close, tt.status)
			}
			if got := rec.received(); len(got) != 0 {
				t.Fatalf("backend received %q", got)
			}
			wantRecord(t, h.record(t), map[string]any{"status": float64(tt.status), "level": "WARN"})
		})
	}
}
