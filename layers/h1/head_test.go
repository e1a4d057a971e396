package h1

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/strata-proxy/strata/layers/msg"
)

func fieldStrings(fs msg.Fields) []string {
	var out []string
	for _, f := range fs {
		out = append(out, string(f.Name)+": "+string(f.Value))
	}
	return out
}

func TestParseRequestHead(t *testing.T) {
	tests := []struct {
		name                  string
		in                    string
		method, auth, path    string
		scheme                string
		minor                 uint8
		fields                []string
		body                  msg.BodyKind
		length                int64
		close, expect, hasTrl bool
		upgrade               string
	}{
		{name: "simple get", in: "GET /a?b=c HTTP/1.1\r\nHost: example.com\r\n\r\n",
			method: "GET", auth: "example.com", path: "/a?b=c", minor: 1, fields: []string{"Host: example.com"}, length: -1},
		{name: "order and case kept, OWS trimmed", in: "GET / HTTP/1.1\r\nhOsT: a\r\nX-B:  two \t\r\nx-a:\tone\r\nX-B: three\r\n\r\n",
			method: "GET", auth: "a", path: "/", minor: 1, fields: []string{"hOsT: a", "X-B: two", "x-a: one", "X-B: three"}, length: -1},
		{name: "inner whitespace kept", in: "GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: Mozilla/5.0 (X11;\tLinux)\r\n\r\n",
			method: "GET", auth: "a", path: "/", minor: 1, fields: []string{"Host: a", "User-Agent: Mozilla/5.0 (X11;\tLinux)"}, length: -1},
		{name: "content-length removed from fields", in: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nX: y\r\n\r\n",
			method: "POST", auth: "a", path: "/p", minor: 1, fields: []string{"Host: a", "X: y"}, body: msg.BodyLength, length: 3},
		{name: "chunked", in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n",
			method: "POST", auth: "a", path: "/", minor: 1, fields: []string{"Host: a", "Trailer: X-Sum"}, body: msg.BodyChunked, length: -1, hasTrl: true},
		{name: "http/1.0 closes by default", in: "GET / HTTP/1.0\r\n\r\n",
			method: "GET", path: "/", minor: 0, length: -1, close: true},
		{name: "http/1.0 keep-alive", in: "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
			method: "GET", path: "/", minor: 0, fields: []string{"Connection: Keep-Alive"}, length: -1},
		{name: "connection close list", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n",
			method: "GET", auth: "a", path: "/", minor: 1, fields: []string{"Host: a", "Connection: foo, Close"}, length: -1, close: true},
		{name: "expect 100-continue", in: "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 10\r\n\r\n",
			method: "PUT", auth: "a", path: "/", minor: 1, fields: []string{"Host: a", "Expect: 100-Continue"}, body: msg.BodyLength, length: 10, expect: true},
		{name: "websocket upgrade", in: "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
			method: "GET", auth: "a", path: "/ws", minor: 1, fields: []string{"Host: a", "Upgrade: websocket", "Connection: Upgrade"}, length: -1, upgrade: "websocket"},
		{name: "upgrade without connection option ignored", in: "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
			method: "GET", auth: "a", path: "/", minor: 1, fields: []string{"Host: a", "Upgrade: websocket"}, length: -1},
		{name: "absolute-form replaces host", in: "GET HTTP://Example.com:8080/x?y HTTP/1.1\r\nX: 1\r\nHost: evil\r\n\r\n",
			method: "GET", scheme: "http", auth: "Example.com:8080", path: "/x?y", minor: 1, fields: []string{"X: 1", "Host: Example.com:8080"}, length: -1},
		{name: "absolute-form adds host in 1.0", in: "GET https://a.example HTTP/1.0\r\n\r\n",
			method: "GET", scheme: "https", auth: "a.example", path: "/", minor: 0, fields: []string{"Host: a.example"}, length: -1, close: true},
		{name: "connect", in: "CONNECT [::1]:443 HTTP/1.1\r\nHost: x\r\n\r\n",
			method: "CONNECT", auth: "[::1]:443", minor: 1, fields: []string{"Host: [::1]:443"}, length: -1},
		{name: "options asterisk", in: "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
			method: "OPTIONS", auth: "a", path: "*", minor: 1, fields: []string{"Host: a"}, length: -1},
		{name: "leading empty lines", in: "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
			method: "GET", auth: "a", path: "/", minor: 1, fields: []string{"Host: a"}, length: -1},
		{name: "folded identical content-length", in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7, 7\r\nContent-Length: 007\r\n\r\n",
			method: "POST", auth: "a", path: "/", minor: 1, fields: []string{"Host: a"}, body: msg.BodyLength, length: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h msg.Head
			b := []byte(tt.in)
			n, err := ParseRequestHead(b, &h, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if n != len(b) {
				t.Errorf("n = %d, want %d", n, len(b))
			}
			if string(h.Method) != tt.method || string(h.Authority) != tt.auth || string(h.Path) != tt.path || string(h.Scheme) != tt.scheme {
				t.Errorf("method %q authority %q path %q scheme %q", h.Method, h.Authority, h.Path, h.Scheme)
			}
			if h.Major != 1 || h.Minor != tt.minor {
				t.Errorf("version %d.%d", h.Major, h.Minor)
			}
			if got := fieldStrings(h.Fields); !slices.Equal(got, tt.fields) {
				t.Errorf("fields %q, want %q", got, tt.fields)
			}
			if h.Body != tt.body || h.ContentLength != tt.length {
				t.Errorf("body %v %d, want %v %d", h.Body, h.ContentLength, tt.body, tt.length)
			}
			if h.Close != tt.close || h.Expect100 != tt.expect || h.HasTrailers != tt.hasTrl || string(h.Upgrade) != tt.upgrade {
				t.Errorf("flags close=%v expect=%v trailers=%v upgrade=%q", h.Close, h.Expect100, h.HasTrailers, h.Upgrade)
			}
			checkRoundTrip(t, headOnly(h), nil)
		})
	}
}

// headOnly makes a message of a parsed head, with a body of the declared
// length.
func headOnly(h msg.Head) *message {
	m := &message{head: h}
	if h.Body == msg.BodyLength {
		m.body = bytes.Repeat([]byte("x"), int(h.ContentLength))
	}
	return m
}

func TestParseRequestHeadRejects(t *testing.T) {
	small := Limits{MaxHeadBytes: 64, MaxFields: 2, MaxURI: 8, MaxBody: 100}
	tests := []struct {
		name   string
		in     string
		lim    Limits
		status int
	}{
		{"cl and te", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", Limits{}, 400},
		{"differing cl", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", Limits{}, 400},
		{"signed cl", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", Limits{}, 400},
		{"overflowing cl", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n", Limits{}, 400},
		{"te not ending in chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", Limits{}, 400},
		{"unknown coding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: br, chunked\r\n\r\n", Limits{}, 501},
		{"chunked twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", Limits{}, 400},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", Limits{}, 400},
		{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", Limits{}, 400},
		{"bare cr", "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", Limits{}, 400},
		{"bare lf", "GET / HTTP/1.1\nHost: a\n\n", Limits{}, 400},
		{"nul in value", "GET / HTTP/1.1\r\nHost: a\r\nX: \x00\r\n\r\n", Limits{}, 400},
		{"invalid method", "GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", Limits{}, 400},
		{"invalid name", "GET / HTTP/1.1\r\nHost: a\r\nX{: 1\r\n\r\n", Limits{}, 400},
		{"empty name", "GET / HTTP/1.1\r\nHost: a\r\n: 1\r\n\r\n", Limits{}, 400},
		{"space in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", Limits{}, 400},
		{"http/0.9", "GET /\r\n\r\n", Limits{}, 400},
		{"http/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", Limits{}, 505},
		{"garbage version", "GET / HTXP/1.1\r\nHost: a\r\n\r\n", Limits{}, 400},
		{"missing host", "GET / HTTP/1.1\r\n\r\n", Limits{}, 400},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", Limits{}, 400},
		{"connect origin-form", "CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", Limits{}, 400},
		{"asterisk for get", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", Limits{}, 400},
		{"head too large", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("x", 64) + "\r\n\r\n", small, 431},
		{"head too large incomplete", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("x", 64), small, 431},
		{"too many fields", "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n", small, 431},
		{"uri too long", "GET /123456789 HTTP/1.1\r\nHost: a\r\n\r\n", small, 414},
		{"uri too long incomplete", "GET /123456789", small, 414},
		{"body too large", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n", small, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h msg.Head
			n, err := ParseRequestHead([]byte(tt.in), &h, tt.lim)
			if got := statusOf(err); got != tt.status || n != 0 {
				t.Fatalf("got n=%d %v, want %d", n, err, tt.status)
			}
			if len(h.Fields) != 0 || h.Method != nil {
				t.Errorf("head not reset after an error: %+v", h)
			}
		})
	}
}

func TestParseRequestHeadIncomplete(t *testing.T) {
	full := "\r\nPOST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"
	var h msg.Head
	for i := range len(full) {
		if n, err := ParseRequestHead([]byte(full[:i]), &h, Limits{}); err != ErrIncomplete || n != 0 {
			t.Fatalf("prefix %q: n=%d err=%v", full[:i], n, err)
		}
	}
}

func TestPipelined(t *testing.T) {
	in := []byte("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n" +
		"POST /2 HTTP/1.1\r\nHost: b\r\nContent-Length: 5\r\n\r\nhello" +
		"GET /3 HTTP/1.1\r\nHost: c\r\n\r\n" +
		"GET /4 HTT")
	var paths []string
	var h msg.Head
	for {
		n, err := ParseRequestHead(in, &h, Limits{})
		if err == ErrIncomplete {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, string(h.Path)+"@"+string(h.Authority))
		in = in[n:]
		if h.Body == msg.BodyLength {
			in = in[h.ContentLength:]
		}
	}
	if want := []string{"/1@a", "/2@b", "/3@c"}; !slices.Equal(paths, want) {
		t.Errorf("paths %q, want %q", paths, want)
	}
	if string(in) != "GET /4 HTT" {
		t.Errorf("rest %q", in)
	}
}

func TestParseResponseHead(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		method string
		status int
		reason string
		fields []string
		body   msg.BodyKind
		length int64
		close  bool
	}{
		{"ok with length", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\n", "GET", 200, "OK", []string{"Content-Type: text/plain"}, msg.BodyLength, 12, false},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", 200, "OK", nil, msg.BodyChunked, -1, false},
		{"until close", "HTTP/1.1 200 OK\r\nX: y\r\n\r\n", "GET", 200, "OK", []string{"X: y"}, msg.BodyUntilClose, -1, true},
		{"http/1.0 until close", "HTTP/1.0 200 OK\r\n\r\n", "GET", 200, "OK", nil, msg.BodyUntilClose, -1, true},
		{"head keeps declared length", "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", "HEAD", 200, "OK", nil, msg.BodyNone, 99, false},
		{"head without length", "HTTP/1.1 200 OK\r\n\r\n", "HEAD", 200, "OK", nil, msg.BodyNone, -1, false},
		{"304", "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n", "GET", 304, "Not Modified", []string{"ETag: \"x\""}, msg.BodyNone, -1, false},
		{"204 drops length", "HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n", "GET", 204, "No Content", nil, msg.BodyNone, -1, false},
		{"100 continue", "HTTP/1.1 100 Continue\r\n\r\n", "POST", 100, "Continue", nil, msg.BodyNone, -1, false},
		{"connect tunnel", "HTTP/1.1 200 Connection Established\r\n\r\n", "CONNECT", 200, "Connection Established", nil, msg.BodyNone, -1, false},
		{"no reason", "HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n", "GET", 404, "", nil, msg.BodyLength, 0, false},
		{"empty reason", "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n", "GET", 404, "", nil, msg.BodyLength, 0, false},
		{"close", "HTTP/1.1 500 Oops\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", "GET", 500, "Oops", []string{"Connection: close"}, msg.BodyLength, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h msg.Head
			n, err := ParseResponseHead([]byte(tt.in), &h, []byte(tt.method), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if n != len(tt.in) || h.Status != tt.status || string(h.Reason) != tt.reason {
				t.Errorf("n=%d status %d %q", n, h.Status, h.Reason)
			}
			if got := fieldStrings(h.Fields); !slices.Equal(got, tt.fields) {
				t.Errorf("fields %q, want %q", got, tt.fields)
			}
			if h.Body != tt.body || h.ContentLength != tt.length || h.Close != tt.close {
				t.Errorf("body %v %d close %v", h.Body, h.ContentLength, h.Close)
			}
			checkRoundTrip(t, headOnly(h), []byte(tt.method))
		})
	}
}

func TestAppendFromOtherVersions(t *testing.T) {
	// A head as an HTTP/2 stage would build it: no Host field, version 2,
	// a framing field left by mistake among the fields.
	h := msg.Head{Method: []byte("POST"), Scheme: []byte("https"), Authority: []byte("a.example"), Path: []byte("/up"),
		Major: 2, Body: msg.BodyChunked, ContentLength: -1}
	h.Add([]byte("content-length"), []byte("3"))
	h.Add([]byte("accept"), []byte("*/*"))
	got := string(AppendRequestHead(nil, &h))
	want := "POST /up HTTP/1.1\r\nHost: a.example\r\naccept: */*\r\nTransfer-Encoding: chunked\r\n\r\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	r := msg.Head{Status: 200, Major: 2, Body: msg.BodyLength, ContentLength: 0}
	if got, want := string(AppendResponseHead(nil, &r)), "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestParseAllocs(t *testing.T) {
	req := []byte(browserRequest)
	resp := []byte(typicalResponse)
	var h msg.Head
	if _, err := ParseRequestHead(req, &h, Limits{}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, 1024)
	body := []byte(chunkedBody)
	var d ChunkedDecoder
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := ParseRequestHead(req, &h, Limits{}); err != nil {
			t.Fatal(err)
		}
		buf = AppendRequestHead(buf[:0], &h)
		if _, err := ParseResponseHead(resp, &h, []byte("GET"), Limits{}); err != nil {
			t.Fatal(err)
		}
		buf = AppendResponseHead(buf[:0], &h)
		d.Reset()
		in := body
		for {
			_, n, err := d.Decode(in)
			in = in[n:]
			if err != nil {
				break
			}
		}
		buf = AppendChunk(buf[:0], body[:10])
		buf = AppendLastChunk(buf, d.Trailers)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per request", allocs)
	}
}
