package session

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-proxy/strata/layers"
)

// serveAlso serves h's frontend on ln too, until t's cleanup.
func (h *httpHarness) serveAlso(t testing.TB, ln net.Listener) {
	t.Helper()
	l := layers.ListenFrom(ln, ln.Addr().String())
	l.SetHandler(h.f)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.Serve(nil)
	}()
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
}

// namedBackend is a backend of one server answering its name.
func namedBackend(t *testing.T, name string) *Backend {
	t.Helper()
	be := startHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) })
	return newBackend(t, name, "", 0, be.addr())
}

// TestHTTPRouteOrder: backend and redirect routes are one list, tried in
// order, so a redirect after a backend route only answers what the earlier
// routes did not take, and a redirect before one shadows it.
func TestHTTPRouteOrder(t *testing.T) {
	checkGoroutines(t)
	api, def := namedBackend(t, "api"), namedBackend(t, "default")
	h := startHTTP(t, HTTPFrontendOptions{
		Routes: []HTTPRoute{
			{Match: HTTPMatch{PathPrefixes: []string{"/old-api/"}}, Redirect: &HTTPRedirect{Status: 308, Prefix: "/api/"}},
			{Match: HTTPMatch{PathPrefixes: []string{"/api/"}}, Backend: api},
			{Match: HTTPMatch{Hosts: []string{"example.com"}}, Redirect: &HTTPRedirect{Status: 301, Host: "www.example.com"}},
		},
		DefaultBackend: def,
	})
	tests := []struct {
		name, host, path string
		status           int
		location, body   string
	}{
		{"earlier backend route wins over a later redirect", "example.com", "/api/x", 200, "", "api"},
		{"later redirect answers what earlier routes left", "example.com", "/other?q=1", 301, "http://www.example.com/other?q=1", ""},
		{"earlier redirect wins over a later backend route", "a", "/old-api/v1?k=v", 308, "http://a/api/v1?k=v", ""},
		{"no route matches", "b", "/other", 200, "", "default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := rawExchange(t, h, "GET "+tt.path+" HTTP/1.1\r\nHost: "+tt.host+"\r\n\r\n", "GET")
			if resp.StatusCode != tt.status || resp.Header.Get("Location") != tt.location || body != tt.body {
				t.Fatalf("got %d Location %q body %q; want %d %q %q", resp.StatusCode, resp.Header.Get("Location"), body, tt.status, tt.location, tt.body)
			}
			h.record(t)
		})
	}
}

// TestHTTPRedirectRewrite checks how a redirect builds its Location.
func TestHTTPRedirectRewrite(t *testing.T) {
	checkGoroutines(t)
	def := namedBackend(t, "default")
	prefix := func(p, with string) HTTPRoute {
		return HTTPRoute{Match: HTTPMatch{Hosts: []string{p[1:len(p)-1] + ".test"}, PathPrefixes: []string{p, "/other/"}},
			Redirect: &HTTPRedirect{Prefix: with}}
	}
	h := startHTTP(t, HTTPFrontendOptions{
		Routes: []HTTPRoute{
			prefix("/blog/", "/news/"),
			prefix("/strip/", "/"),
			prefix("/noslash/", "/to"),
			{Match: HTTPMatch{Hosts: []string{"bare.test"}, PathPrefixes: []string{"/bare"}}, Redirect: &HTTPRedirect{Prefix: "/"}},
			{Match: HTTPMatch{Hosts: []string{"secure.test"}}, Redirect: &HTTPRedirect{Scheme: "https"}},
			{Match: HTTPMatch{Hosts: []string{"plain.test"}}, Redirect: &HTTPRedirect{Scheme: "http", Path: "/p"}},
			{Match: HTTPMatch{Hosts: []string{"moved.test"}}, Redirect: &HTTPRedirect{Scheme: "https", Host: "new.test:8443"}},
		},
		DefaultBackend: def,
	})
	tests := []struct{ host, path, location string }{
		{"blog.test", "/blog/2024/a?x=1&y", "http://blog.test/news/2024/a?x=1&y"},
		{"blog.test", "/blog/", "http://blog.test/news/"},
		{"blog.test", "/other/z?q", "http://blog.test/news/z?q"}, // the prefix that matched is replaced
		{"strip.test", "/strip/a/b?q=/strip/", "http://strip.test/a/b?q=/strip/"},
		{"strip.test", "/strip/", "http://strip.test/"},
		{"noslash.test", "/noslash/a", "http://noslash.test/toa"},
		{"bare.test", "/bare/x?y", "http://bare.test/x?y"},
		{"bare.test", "/bare", "http://bare.test/"},
		{"bare.test", "/barely", "http://bare.test/ly"},
		// A changed scheme drops the request's port; a kept one keeps it.
		{"secure.test:8080", "/s?1", "https://secure.test/s?1"},
		{"plain.test:8080", "/x?2", "http://plain.test:8080/p?2"},
		{"moved.test:8080", "/m", "https://new.test:8443/m"},
	}
	for _, tt := range tests {
		t.Run(tt.host+tt.path, func(t *testing.T) {
			resp, _ := rawExchange(t, h, "GET "+tt.path+" HTTP/1.1\r\nHost: "+tt.host+"\r\n\r\n", "GET")
			if resp.StatusCode != 302 || resp.Header.Get("Location") != tt.location {
				t.Fatalf("got %d Location %q; want 302 %q", resp.StatusCode, resp.Header.Get("Location"), tt.location)
			}
			h.record(t)
		})
	}
}

// TestHTTPRouteDstPort routes by the port the client connected to.
func TestHTTPRouteDstPort(t *testing.T) {
	checkGoroutines(t)
	admin, def := namedBackend(t, "admin"), namedBackend(t, "default")
	// A second listener of the same frontend, whose port the route names.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := netip.MustParseAddrPort(ln.Addr().String()).Port()
	h := startHTTP(t, HTTPFrontendOptions{
		Routes: []HTTPRoute{
			{Match: HTTPMatch{DstPorts: []uint16{1, port}}, Backend: admin},
			{Match: HTTPMatch{DstPorts: []uint16{1}}, Redirect: &HTTPRedirect{Path: "/never"}},
		},
		DefaultBackend: def,
	})
	h.serveAlso(t, ln)
	for _, tt := range []struct{ addr, want string }{{h.addr, "default"}, {ln.Addr().String(), "admin"}} {
		c, err := net.Dial("tcp", tt.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, body := readResponse(t, bufio.NewReader(c), "GET")
		if resp.StatusCode != 200 || body != tt.want {
			t.Fatalf("via %s: got %d %q, want %q", tt.addr, resp.StatusCode, body, tt.want)
		}
		wantRecord(t, h.record(t), map[string]any{"backend": tt.want})
	}
}

func TestHTTPRouteErrors(t *testing.T) {
	b := newBackend(t, "app", "", 0, "127.0.0.1:1")
	tests := []struct {
		name  string
		route HTTPRoute
		want  string
	}{
		{"neither", HTTPRoute{}, "neither a backend nor a redirect"},
		{"both", HTTPRoute{Backend: b, Redirect: &HTTPRedirect{Path: "/"}}, "both a backend and a redirect"},
		{"prefix without path prefix", HTTPRoute{Redirect: &HTTPRedirect{Prefix: "/"}}, "the route has none"},
		{"path and prefix", HTTPRoute{Match: HTTPMatch{PathPrefixes: []string{"/a"}}, Redirect: &HTTPRedirect{Path: "/", Prefix: "/"}}, "mutually exclusive"},
		{"status", HTTPRoute{Redirect: &HTTPRedirect{Status: 200, Path: "/"}}, "redirect status 200"},
		{"scheme", HTTPRoute{Redirect: &HTTPRedirect{Scheme: "ftp"}}, `redirect scheme "ftp"`},
		{"header injection", HTTPRoute{Redirect: &HTTPRedirect{Path: "/a\r\nSet-Cookie: x"}}, "control character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewHTTPFrontend(HTTPFrontendOptions{Name: "web", Routes: []HTTPRoute{tt.route}})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "route 0") {
				t.Fatalf("err = %v; want one saying %q", err, tt.want)
			}
		})
	}
}
