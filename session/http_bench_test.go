package session

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/strata-proxy/strata/layers"
	"github.com/strata-proxy/strata/layers/h1"
	"github.com/strata-proxy/strata/layers/msg"
)

// benchRequest is what a browser sends for a page.
const benchRequest = "GET /articles/2024/strata-proxy?utm_source=feed&page=2 HTTP/1.1\r\n" +
	"Host: www.example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
	"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
	"Accept-Language: en-US,en;q=0.5\r\n" +
	"Accept-Encoding: gzip, deflate, br, zstd\r\n" +
	"Connection: keep-alive\r\n" +
	"Cookie: session=8f14e45fceea167a5a36dedd4bea2543; theme=dark\r\n" +
	"X-Forwarded-For: 10.1.2.3\r\n" +
	"\r\n"

// BenchmarkAnalysers runs a parsed request through the request analysers
// between the head wait and the body wait (rules, routing with redirects,
// hop-by-hop, header rules, forwarding fields, request id) and the
// response analysers.
func BenchmarkAnalysers(b *testing.B) {
	be := newBackend(b, "app", "", 0, "127.0.0.1:1")
	other := newBackend(b, "other", "", 0, "127.0.0.1:1")
	f, err := NewHTTPFrontend(HTTPFrontendOptions{
		Rules: []HTTPRule{{Match: HTTPMatch{PathPrefixes: []string{"/admin"}}, Deny: true}},
		Routes: []HTTPRoute{
			{Match: HTTPMatch{Hosts: []string{"old.example.com"}}, Redirect: &HTTPRedirect{Scheme: "https"}},
			{Match: HTTPMatch{Hosts: []string{"api.example.com"}}, Backend: other},
			{Match: HTTPMatch{Hosts: []string{"*.example.com"}, PathPrefixes: []string{"/articles/"}}, Backend: be},
		},
		RequestHeaders:  []HeaderRule{{Op: HeaderSet, Name: "X-Env", Value: "prod"}, {Op: HeaderDel, Name: "X-Debug"}},
		ResponseHeaders: []HeaderRule{{Op: HeaderDel, Name: "Server"}},
		Forwarded: ForwardedOptions{XForwardedFor: true, XForwardedProto: true, XForwardedHost: true, Forwarded: true,
			Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		RequestID: RequestIDOptions{Enabled: true},
	})
	if err != nil {
		b.Fatal(err)
	}
	in := &layers.Initiator{Source: netip.MustParseAddrPort("127.0.0.1:5555"), Accepted: time.Now()}
	c := &httpConn{f: f, in: in}
	s := &httpSession{c: c}
	c.s = s
	raw := []byte(benchRequest)
	var req msg.Head
	resp := msg.Head{Status: 200, Fields: msg.Fields{{Name: []byte("Server"), Value: []byte("app")},
		{Name: []byte("Content-Type"), Value: []byte("text/html")}}}
	respFields := append(msg.Fields(nil), resp.Fields...)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		s.reset()
		if _, err := h1.ParseRequestHead(raw, &req, h1.Limits{}); err != nil {
			b.Fatal(err)
		}
		s.req = &req
		for i := 1; i < len(requestAnalysers)-2; i++ {
			if r := requestAnalysers[i].run(s); r.action != resContinue {
				b.Fatalf("%s: %+v", requestAnalysers[i].name, r)
			}
		}
		resp.Fields = append(resp.Fields[:0], respFields...)
		s.resp = &resp
		for i := range responseAnalysers {
			responseAnalysers[i].run(s)
		}
	}
	if s.backend != be {
		b.Fatal("routed elsewhere")
	}
}

// BenchmarkHTTPSession sends keep-alive requests through the whole session
// over loopback: client → listener → HTTP/1 stage → analysers → pooled
// server connection → a minimal raw backend, and back.
func BenchmarkHTTPSession(b *testing.B) {
	addr := startServer(b, benchServer)
	be := newBackend(b, "app", "", 0, addr)
	benchSession(b, be, strings.Replace(benchRequest, "X-Forwarded-For: 10.1.2.3\r\n", "", 1))
}

// BenchmarkHTTPSessionBalance is BenchmarkHTTPSession with the HTTP
// balancing decisions: hashing the path or a header field, and cookie
// persistence (a request whose cookie names a server, and one without,
// which gets a Set-Cookie).
func BenchmarkHTTPSessionBalance(b *testing.B) {
	addr := startServer(b, benchServer)
	req := strings.Replace(benchRequest, "X-Forwarded-For: 10.1.2.3\r\n", "X-User: 8f14e45f\r\n", 1)
	tests := []struct {
		name string
		o    BackendOptions
		req  string
	}{
		{"uri", BackendOptions{Balance: "uri"}, req},
		{"header", BackendOptions{Balance: "header", HashHeader: "X-User"}, req},
		{"cookie", BackendOptions{Cookie: &CookieOptions{Name: "SRV", Insert: true}},
			strings.Replace(req, "theme=dark", "theme=dark; SRV=s2", 1)},
		{"cookie insert", BackendOptions{Cookie: &CookieOptions{Name: "SRV", Insert: true}}, req},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			o := tt.o
			o.Name = "app"
			for i := range 4 {
				o.Servers = append(o.Servers, ServerOptions{Name: fmt.Sprintf("s%d", i), Address: addr, Weight: 1, Connector: dialerTo(addr)})
			}
			be, err := NewBackend(o)
			if err != nil {
				b.Fatal(err)
			}
			benchSession(b, be, tt.req)
		})
	}
}

// benchServer is a minimal raw backend: one fixed response per request.
func benchServer(c *net.TCPConn) {
	br := bufio.NewReaderSize(c, 16<<10)
	for {
		// Each request ends with an empty line.
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(line) == 2 {
				break
			}
		}
		if _, err := c.Write(benchResponse); err != nil {
			return
		}
	}
}

var benchResponse = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nhello, world\n")

// benchSession sends req over one keep-alive client connection through a
// frontend whose default backend is be, and reads each response head and
// body.
func benchSession(b *testing.B, be *Backend, req string) {
	h := startHTTP(b, HTTPFrontendOptions{
		DefaultBackend: be,
		AccessLog:      slog.New(slog.DiscardHandler), // the forwarding path without log formatting
		Forwarded:      ForwardedOptions{XForwardedFor: true},
		RequestID:      RequestIDOptions{Enabled: true},
		Timeouts:       HTTPTimeouts{HTTPRequest: 5 * time.Second, Client: 5 * time.Second, Server: 5 * time.Second},
	})
	c := h.dial(b)
	br := bufio.NewReaderSize(c, 4096)
	raw := []byte(req)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(raw); err != nil {
			b.Fatal(err)
		}
		// The head ends with an empty line; the body is 13 bytes.
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				b.Fatal(err)
			}
			if len(line) == 2 {
				break
			}
		}
		if _, err := br.Discard(13); err != nil {
			b.Fatal(err)
		}
	}
}
