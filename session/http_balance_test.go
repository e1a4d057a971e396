package session

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/strata-proxy/strata/layers/msg"
)

// quiet is an access log for tests that send more requests than the
// harness's log channel holds.
var quiet = slog.New(slog.DiscardHandler)

// namedServers starts n HTTP servers answering their name (s0, s1, …) and
// echoing the request's Cookie fields in X-Cookie, and returns o with them
// as its servers, built into a Backend.
func namedServers(t *testing.T, o BackendOptions, n int) *Backend {
	t.Helper()
	for i := range n {
		name := fmt.Sprintf("s%d", i)
		be := startHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Cookie", strings.Join(r.Header.Values("Cookie"), " | "))
			io.WriteString(w, name)
		})
		o.Servers = append(o.Servers, ServerOptions{Name: name, Address: be.addr(), Weight: 1, Connector: dialerTo(be.addr())})
	}
	if o.Name == "" {
		o.Name = "app"
	}
	b, err := NewBackend(o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// get sends one request through h with the given extra header lines and
// returns the response and the name of the server that answered.
func get(t *testing.T, c *http.Client, h *httpHarness, path string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", h.url(path), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %q %v", path, resp.StatusCode, body, err)
	}
	return resp, string(body)
}

// stickiness sends each key twice (varied by vary) and returns which server
// each key went to, failing when a key moved between its requests.
func stickiness(t *testing.T, keys []string, send func(key string, round int) string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for round := range 2 {
		for _, k := range keys {
			srv := send(k, round)
			if prev, ok := got[k]; ok && prev != srv {
				t.Fatalf("key %q went to %s, then to %s", k, prev, srv)
			}
			got[k] = srv
		}
	}
	return got
}

// checkSpreadAndMoves checks that keys spread over the servers and that
// taking s2 out moves only s2's keys.
func checkSpreadAndMoves(t *testing.T, b *Backend, before, after map[string]string) {
	t.Helper()
	count := map[string]int{}
	for _, s := range before {
		count[s]++
	}
	for _, s := range b.Servers() {
		if n := count[s.Name()]; n < len(before)/10 {
			t.Errorf("%s got %d of %d keys; want a fair share (%v)", s.Name(), n, len(before), count)
		}
	}
	moved := 0
	for k, was := range before {
		switch now := after[k]; {
		case was == "s2" && now == "s2":
			t.Fatalf("key %q still on s2, which is down", k)
		case was == "s2":
			moved++
		case now != was:
			t.Fatalf("key %q moved from %s to %s; only s2's keys should move", k, was, now)
		}
	}
	if moved != count["s2"] || moved == 0 {
		t.Fatalf("%d keys moved; want s2's %d", moved, count["s2"])
	}
}

func TestHTTPBalanceURI(t *testing.T) {
	checkGoroutines(t)
	b := namedServers(t, BackendOptions{Balance: "uri"}, 4)
	h := startHTTP(t, HTTPFrontendOptions{DefaultBackend: b, AccessLog: quiet})
	c := h.client(t)
	var paths []string
	for i := range 120 {
		paths = append(paths, fmt.Sprintf("/item/%d", i))
	}
	send := func(p string, round int) string {
		// The query is not part of the key.
		_, srv := get(t, c, h, fmt.Sprintf("%s?round=%d", p, round))
		return srv
	}
	before := stickiness(t, paths, send)
	b.Servers()[2].healthy.Store(false)
	after := stickiness(t, paths, send)
	checkSpreadAndMoves(t, b, before, after)
	b.Servers()[2].healthy.Store(true)
	back := stickiness(t, paths, send)
	if fmt.Sprint(back) != fmt.Sprint(before) {
		t.Fatal("paths did not return to s2 when it came back")
	}
}

func TestHTTPBalanceHeader(t *testing.T) {
	checkGoroutines(t)
	b := namedServers(t, BackendOptions{Balance: "header", HashHeader: "X-User"}, 4)
	h := startHTTP(t, HTTPFrontendOptions{DefaultBackend: b, AccessLog: quiet})
	c := h.client(t)
	var users []string
	for i := range 120 {
		users = append(users, fmt.Sprintf("user-%d", i))
	}
	send := func(u string, round int) string {
		// The path does not matter; the field's name is case-insensitive.
		name := []string{"X-User", "x-user"}[round]
		_, srv := get(t, c, h, fmt.Sprintf("/r/%d", round), name, u)
		return srv
	}
	before := stickiness(t, users, send)
	b.Servers()[2].healthy.Store(false)
	after := stickiness(t, users, send)
	checkSpreadAndMoves(t, b, before, after)
	b.Servers()[2].healthy.Store(true)

	for _, tt := range []struct {
		name   string
		header []string
	}{
		{"absent field goes round-robin", nil},
		{"empty field goes round-robin", []string{"X-User", ""}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := map[string]int{}
			for range 8 {
				_, srv := get(t, c, h, "/same", tt.header...)
				got[srv]++
			}
			if len(got) != 4 || got["s0"] != 2 || got["s1"] != 2 || got["s2"] != 2 || got["s3"] != 2 {
				t.Fatalf("8 requests went to %v; want 2 on each of 4 servers", got)
			}
		})
	}
}

func TestHTTPCookiePersistence(t *testing.T) {
	checkGoroutines(t)
	b := namedServers(t, BackendOptions{Cookie: &CookieOptions{Name: "SRV", Insert: true}}, 3)
	h := startHTTP(t, HTTPFrontendOptions{DefaultBackend: b, AccessLog: quiet})
	c := h.client(t)

	// First visit: balanced, and the cookie names the server.
	resp, first := get(t, c, h, "/")
	if sc := resp.Header.Values("Set-Cookie"); len(sc) != 1 || sc[0] != "SRV="+first+"; Path=/; HttpOnly" {
		t.Fatalf("first response Set-Cookie %q from %s", sc, first)
	}
	// Later visits stick, round-robin notwithstanding, with no new cookie;
	// the cookie is forwarded unchanged.
	for range 6 {
		resp, srv := get(t, c, h, "/", "Cookie", "a=1; SRV="+first+"; b=2")
		if srv != first || resp.Header.Get("Set-Cookie") != "" {
			t.Fatalf("with SRV=%s: went to %s, Set-Cookie %q", first, srv, resp.Header.Get("Set-Cookie"))
		}
		if got := resp.Header.Get("X-Cookie"); got != "a=1; SRV="+first+"; b=2" {
			t.Fatalf("server saw Cookie %q", got)
		}
	}
	// A quoted value, and the cookie in a second Cookie field, work too.
	if _, srv := get(t, c, h, "/", "Cookie", "x=y", "Cookie", `SRV="`+first+`"`); srv != first {
		t.Fatalf("quoted cookie in a second field went to %s, want %s", srv, first)
	}

	t.Run("down server: rebalanced and cookie re-inserted", func(t *testing.T) {
		idx := int(first[1] - '0')
		b.Servers()[idx].healthy.Store(false)
		defer b.Servers()[idx].healthy.Store(true)
		for range 4 {
			resp, srv := get(t, c, h, "/", "Cookie", "SRV="+first)
			if srv == first {
				t.Fatalf("went to %s, which is down", srv)
			}
			if sc := resp.Header.Get("Set-Cookie"); sc != "SRV="+srv+"; Path=/; HttpOnly" {
				t.Fatalf("rebalanced to %s with Set-Cookie %q", srv, sc)
			}
		}
	})
	t.Run("unknown server: balanced and cookie inserted", func(t *testing.T) {
		resp, srv := get(t, c, h, "/", "Cookie", "SRV=gone")
		if sc := resp.Header.Get("Set-Cookie"); sc != "SRV="+srv+"; Path=/; HttpOnly" {
			t.Fatalf("went to %s with Set-Cookie %q", srv, sc)
		}
	})
	t.Run("name is case-sensitive", func(t *testing.T) {
		resp, _ := get(t, c, h, "/", "Cookie", "srv="+first)
		if resp.Header.Get("Set-Cookie") == "" {
			t.Fatal("cookie srv taken for SRV")
		}
	})
	t.Run("read only without insert", func(t *testing.T) {
		b := namedServers(t, BackendOptions{Cookie: &CookieOptions{Name: "SRV"}}, 3)
		h := startHTTP(t, HTTPFrontendOptions{DefaultBackend: b, AccessLog: quiet})
		c := h.client(t)
		for range 4 {
			resp, srv := get(t, c, h, "/", "Cookie", "SRV=s2")
			if srv != "s2" || resp.Header.Get("Set-Cookie") != "" {
				t.Fatalf("went to %s with Set-Cookie %q; want s2 and none", srv, resp.Header.Get("Set-Cookie"))
			}
		}
		if resp, _ := get(t, c, h, "/"); resp.Header.Get("Set-Cookie") != "" {
			t.Fatalf("Set-Cookie %q without insert", resp.Header.Get("Set-Cookie"))
		}
	})
	t.Run("with hashing: the cookie wins", func(t *testing.T) {
		b := namedServers(t, BackendOptions{Balance: "uri", Cookie: &CookieOptions{Name: "SRV", Insert: true}}, 3)
		h := startHTTP(t, HTTPFrontendOptions{DefaultBackend: b, AccessLog: quiet})
		c := h.client(t)
		_, hashed := get(t, c, h, "/p")
		other := "s0"
		if hashed == "s0" {
			other = "s1"
		}
		if resp, srv := get(t, c, h, "/p", "Cookie", "SRV="+other); srv != other || resp.Header.Get("Set-Cookie") != "" {
			t.Fatalf("went to %s (Set-Cookie %q); want the cookie's %s", srv, resp.Header.Get("Set-Cookie"), other)
		}
	})
}

func TestCookieValue(t *testing.T) {
	f := func(vals ...string) msg.Fields {
		var fs msg.Fields
		fs.Add([]byte("Host"), []byte("x"))
		for _, v := range vals {
			fs.Add([]byte("cookie"), []byte(v))
		}
		return fs
	}
	tests := []struct {
		name   string
		fields msg.Fields
		want   string
		ok     bool
	}{
		{"none", f(), "", false},
		{"only", f("SRV=a"), "a", true},
		{"among others", f("x=1; SRV=b; y=2"), "b", true},
		{"spaces", f("x=1 ;  SRV = c ; y"), "c", true},
		{"quoted", f(`SRV="d"`), "d", true},
		{"empty", f("SRV="), "", true},
		{"first wins", f("SRV=e; SRV=f"), "e", true},
		{"second field", f("x=1", "SRV=g"), "g", true},
		{"case-sensitive", f("srv=h"), "", false},
		{"longer name", f("SRVX=i; XSRV=j"), "", false},
		{"no equals", f("SRV; x=1"), "", false},
		{"trailing semicolon", f("x=1;"), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, ok := cookieValue(tt.fields, "SRV")
			if string(v) != tt.want || ok != tt.ok {
				t.Fatalf("got %q, %v; want %q, %v", v, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestNewBackendHTTPBalanceErrors(t *testing.T) {
	tests := []struct {
		name string
		o    BackendOptions
		want string
	}{
		{"header without name", BackendOptions{Balance: "header", Servers: lbServers(1, 0)}, "balance header needs HashHeader"},
		{"bad cookie name", BackendOptions{Cookie: &CookieOptions{Name: "a b"}, Servers: lbServers(1, 0)}, `cookie name "a b"`},
		{"server name not a cookie value", BackendOptions{Cookie: &CookieOptions{Name: "SRV"},
			Servers: []ServerOptions{{Name: "a;b", Address: "127.0.0.1:1", Weight: 1}}}, `server name "a;b" cannot be a cookie value`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.Name = "api"
			if _, err := NewBackend(tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v; want %q", err, tt.want)
			}
		})
	}
}
