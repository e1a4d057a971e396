package hstream

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/strata-proxy/strata/layers/h1"
	"github.com/strata-proxy/strata/layers/msg"
)

// fuzzRequest builds the request a mux stage could hand over from the
// fuzzer's values: fields is "name:value" lines; cl, when not empty, is a
// Content-Length field (and the request's ContentLength when it parses).
func fuzzRequest(method, host, path string, fields []byte, cl string, body []byte) *http.Request {
	r := &http.Request{
		Method: method, Host: host, RequestURI: path,
		Proto: "HTTP/2.0", ProtoMajor: 2,
		Header: http.Header{}, ContentLength: -1, Body: http.NoBody,
	}
	for _, line := range bytes.Split(fields, []byte("\n")) {
		name, value, ok := bytes.Cut(line, []byte(":"))
		if ok {
			r.Header[string(name)] = append(r.Header[string(name)], string(value))
		}
	}
	if cl != "" {
		r.Header["Content-Length"] = []string{cl}
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil {
			r.ContentLength = n
		}
	}
	if len(body) > 0 || cl != "" {
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	return r
}

// FuzzNew checks the stream's validation and conversion of a request: it
// never panics, and a request it accepts reads the same once written as
// HTTP/1 — one request, with the same method, target, fields and framing,
// none of them carrying a control byte, surrounding whitespace or a
// connection-specific meaning — and its body is exactly what its framing
// says.
func FuzzNew(f *testing.F) {
	f.Add("GET", "example.com", "/", []byte("accept:*/*\nuser-agent:fuzz"), "", []byte(nil))
	f.Add("POST", "example.com:8443", "/upload?x=1", []byte("content-type:text/plain"), "5", []byte("hello"))
	f.Add("POST", "example.com", "/", []byte("te:trailers\ntrailer:x-sum"), "", []byte("abc"))
	f.Add("GET", "example.com", "/a b", []byte(nil), "", []byte(nil))
	f.Add("GET", "example.com", "/", []byte("x-a:1\r\nx-b: 2"), "", []byte(nil))
	f.Add("POST", "example.com", "/", []byte("transfer-encoding:chunked"), "", []byte("0\r\n\r\n"))
	f.Add("POST", "example.com", "/", []byte("content-length:6"), "5", []byte("hello"))
	f.Add("CONNECT", "example.com:443", "", []byte(nil), "", []byte(nil))
	f.Add("OPTIONS", "example.com", "*", []byte(nil), "", []byte(nil))
	f.Fuzz(func(t *testing.T, method, host, path string, fields []byte, cl string, body []byte) {
		r := fuzzRequest(method, host, path, fields, cl, body)
		if method == "" || !validName(method) {
			return // the mux stages refuse an invalid :method themselves
		}
		st := New(httptest.NewRecorder(), r, Options{MaxBody: 1 << 20})
		defer st.Close()
		if err := st.Err(); err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("refusal %v is not an *Error", err)
			}
			return
		}
		h := st.Head()
		checkAccepted(t, h)
		checkHTTP1(t, h)
		checkBody(t, st, h, len(body))
	})
}

func checkAccepted(t *testing.T, h *msg.Head) {
	t.Helper()
	for _, f := range h.Fields {
		if !validName(string(f.Name)) {
			t.Fatalf("field name %q accepted", f.Name)
		}
		if checkValue(string(f.Value)) != nil {
			t.Fatalf("field value %q accepted", f.Value)
		}
		switch http.CanonicalHeaderKey(string(f.Name)) {
		case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Content-Length", "Host":
			t.Fatalf("field %q forwarded", f.Name)
		case "Te":
			if string(f.Value) != "trailers" {
				t.Fatalf("te %q forwarded", f.Value)
			}
		}
	}
	switch h.Body {
	case msg.BodyNone:
	case msg.BodyLength:
		if h.ContentLength < 0 {
			t.Fatalf("length body with content-length %d", h.ContentLength)
		}
	case msg.BodyChunked:
		if h.ContentLength != -1 {
			t.Fatalf("chunked body with content-length %d", h.ContentLength)
		}
	default:
		t.Fatalf("request body framing %v", h.Body)
	}
}

// checkHTTP1 writes h as the session would to an HTTP/1 server and parses
// it back: exactly one request head, the same in every part.
func checkHTTP1(t *testing.T, h *msg.Head) {
	t.Helper()
	b := h1.AppendRequestHead(nil, h)
	var back msg.Head
	n, err := h1.ParseRequestHead(b, &back, h1.Limits{MaxHeadBytes: 1 << 20, MaxFields: 1 << 10, MaxURI: 1 << 20})
	if err != nil {
		t.Fatalf("written as %q: does not parse back: %v", b, err)
	}
	if n != len(b) {
		t.Fatalf("written as %q: parses as a head of %d bytes", b, n)
	}
	if !bytes.Equal(back.Method, h.Method) || !bytes.Equal(back.Path, h.Path) || !bytes.Equal(back.Authority, h.Authority) {
		t.Fatalf("written as %q: read back as %s %s %s", b, back.Method, back.Authority, back.Path)
	}
	if back.Body != h.Body || (h.Body == msg.BodyLength && back.ContentLength != h.ContentLength) {
		t.Fatalf("written as %q: framing %v %d read back as %v %d", b, h.Body, h.ContentLength, back.Body, back.ContentLength)
	}
	for _, f := range h.Fields {
		if !bytes.Equal(back.Get(string(f.Name)), h.Get(string(f.Name))) {
			t.Fatalf("written as %q: field %s read back as %q", b, f.Name, back.Get(string(f.Name)))
		}
	}
}

// checkBody reads the whole body: it is what the framing says, or an
// error.
func checkBody(t *testing.T, st *Stream, h *msg.Head, sent int) {
	t.Helper()
	var got int64
	for range 1 << 12 {
		p, err := st.ReadBody()
		got += int64(len(p))
		if err == io.EOF {
			if h.Body == msg.BodyLength && got != h.ContentLength {
				t.Fatalf("body of %d bytes accepted for content-length %d", got, h.ContentLength)
			}
			if h.Body == msg.BodyNone && got != 0 {
				t.Fatalf("no-body request gave %d bytes", got)
			}
			return
		}
		if err != nil {
			if h.Body == msg.BodyLength && got <= h.ContentLength && int64(sent) == h.ContentLength {
				t.Fatalf("body of the declared length refused: %v", err)
			}
			return
		}
	}
	t.Fatalf("body never ended (%d of %d bytes)", got, sent)
}

func TestValidTarget(t *testing.T) {
	for _, tc := range []struct {
		path, method string
		ok           bool
	}{
		{"/", "GET", true},
		{"/a?b=c&d=%20", "GET", true},
		{"*", "OPTIONS", true},
		{"*", "GET", false},
		{"a", "GET", false},
		{"/a b", "GET", false},
		{"/a#b", "GET", false},
		{"/a\x7f", "GET", false},
		{"/\xc3\xa9", "GET", false},
	} {
		if got := validTarget(tc.path, tc.method); got != tc.ok {
			t.Errorf("validTarget(%q, %s) = %v", tc.path, tc.method, got)
		}
	}
	if !validAuthority("[::1]:443") || validAuthority("a,b") || validAuthority("a b") || validAuthority("a@b") {
		t.Error("validAuthority")
	}
}
