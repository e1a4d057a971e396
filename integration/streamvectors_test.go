package integration

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// The downgrade vectors of multiplexed fronts (HTTP/2, HTTP/3): requests a
// normal client never sends, each of which must be refused (the stream
// reset, the connection closed, or a 4xx/501 answer) with 0 bytes reaching
// the HTTP/1 backend; and a few valid requests that must be forwarded as
// exactly one request. A row says only what is sent on the stream — the
// header section in order (pseudo-header fields included), the DATA, the
// trailers — so that every protocol has a driver of its own that encodes
// the same rows (h2vectors_test.go: HTTP/2 with x/net's Framer and HPACK
// encoder).

// hfield is one field of a header section, sent exactly as written.
type hfield struct{ name, value string }

// streamVector is one request on a stream of its own.
type streamVector struct {
	name     string
	fields   []hfield // the header section, in order, pseudo-headers included
	body     []string // the request body, one DATA frame each
	trailers []hfield // a trailer section after the body, if any
	forward  bool     // valid: forwarded as exactly one request, answered 200
}

// streamOutcome is what a client saw of one vector.
type streamOutcome struct {
	status int    // the final status received, 0 = none
	reset  bool   // the stream was reset
	closed bool   // the connection was closed (GOAWAY or EOF)
	detail string // for failure messages: the reset code, the error
}

func (o streamOutcome) String() string {
	switch {
	case o.status != 0:
		return "status " + strconv.Itoa(o.status)
	case o.reset:
		return "stream reset (" + o.detail + ")"
	case o.closed:
		return "connection closed (" + o.detail + ")"
	}
	return "nothing (" + o.detail + ")"
}

// refused reports whether the outcome is a refusal.
func (o streamOutcome) refused() bool {
	switch o.status {
	case 400, 413, 414, 431, 501:
		return true
	}
	return o.status == 0 && (o.reset || o.closed)
}

// streamDriver sends v on a new connection to the front and returns what
// came back.
type streamDriver func(t *testing.T, v streamVector) streamOutcome

// reqFields is a valid GET's header section with extra appended.
func reqFields(extra ...hfield) []hfield {
	return append([]hfield{
		{":method", "GET"}, {":scheme", "https"}, {":authority", "localhost"}, {":path", "/"},
	}, extra...)
}

// postFields is a valid POST's header section with extra appended.
func postFields(extra ...hfield) []hfield {
	f := reqFields(extra...)
	f[0].value = "POST"
	return f
}

// without is fields without the ones named name.
func without(fields []hfield, name string) []hfield {
	var out []hfield
	for _, f := range fields {
		if f.name != name {
			out = append(out, f)
		}
	}
	return out
}

// replace is fields with the value of the field named name changed.
func replace(fields []hfield, name, value string) []hfield {
	out := append([]hfield(nil), fields...)
	for i := range out {
		if out[i].name == name {
			out[i].value = value
		}
	}
	return out
}

// manyFields is n distinct regular fields.
func manyFields(n int) []hfield {
	out := make([]hfield, n)
	for i := range out {
		out[i] = hfield{"x-f" + strconv.Itoa(i), "v"}
	}
	return out
}

// streamVectors is the table every multiplexed front runs.
func streamVectors() []streamVector {
	hello := []string{"hello"}
	vs := []streamVector{
		// Pseudo-header fields (RFC 9113 §8.3, RFC 9114 §4.3).
		{name: "missing :method", fields: without(reqFields(), ":method")},
		{name: "missing :path", fields: without(reqFields(), ":path")},
		{name: "missing :scheme", fields: without(reqFields(), ":scheme")},
		{name: "duplicated :method", fields: append(reqFields(), hfield{":method", "POST"})},
		{name: "duplicated :path", fields: append(reqFields()[:4:4], hfield{":path", "/admin"})},
		{name: "pseudo-header after a regular field", fields: []hfield{
			{":method", "GET"}, {":scheme", "https"}, {"x-a", "1"}, {":authority", "localhost"}, {":path", "/"}}},
		{name: "unknown pseudo-header", fields: reqFields(hfield{":foo", "bar"})},
		{name: "response pseudo-header :status in a request", fields: append([]hfield{{":status", "200"}}, reqFields()...)},
		{name: ":protocol without CONNECT", fields: reqFields(hfield{":protocol", "websocket"})},
		{name: "empty :path", fields: replace(reqFields(), ":path", "")},
		{name: ":path with a space", fields: replace(reqFields(), ":path", "/a b")},
		{name: ":path with a fragment", fields: replace(reqFields(), ":path", "/a#b")},
		{name: ":path not starting with /", fields: replace(reqFields(), ":path", "a/b")},
		{name: ":path absolute-form", fields: replace(reqFields(), ":path", "http://evil.test/")},
		{name: ":path with a control byte", fields: replace(reqFields(), ":path", "/a\x01b")},
		{name: ":path with a non-ASCII byte", fields: replace(reqFields(), ":path", "/a\xffb")},
		{name: ":scheme not http or https", fields: replace(reqFields(), ":scheme", "ftp")},
		{name: ":authority with a space", fields: replace(reqFields(), ":authority", "local host")},
		{name: ":authority with userinfo", fields: replace(reqFields(), ":authority", "user@localhost")},
		{name: ":authority with a comma", fields: replace(reqFields(), ":authority", "localhost,evil.test")},
		{name: "CONNECT with :path", fields: []hfield{{":method", "CONNECT"}, {":authority", "localhost:443"}, {":path", "/"}}},
		{name: "CONNECT with :scheme", fields: []hfield{{":method", "CONNECT"}, {":authority", "localhost:443"}, {":scheme", "https"}}},
		{name: "CONNECT without :authority", fields: []hfield{{":method", "CONNECT"}}},
		{name: "CONNECT (a tunnel a stream cannot become)", fields: []hfield{{":method", "CONNECT"}, {":authority", "localhost:443"}}},

		// Connection-specific fields (RFC 9113 §8.2.2).
		{name: "connection", fields: reqFields(hfield{"connection", "close"})},
		{name: "connection naming a field", fields: reqFields(hfield{"connection", "x-a"}, hfield{"x-a", "1"})},
		{name: "keep-alive", fields: reqFields(hfield{"keep-alive", "timeout=5"})},
		{name: "proxy-connection", fields: reqFields(hfield{"proxy-connection", "keep-alive"})},
		{name: "transfer-encoding chunked", fields: postFields(hfield{"transfer-encoding", "chunked"}), body: []string{"5\r\nhello\r\n0\r\n\r\n"}},
		{name: "transfer-encoding identity", fields: reqFields(hfield{"transfer-encoding", "identity"})},
		{name: "upgrade", fields: reqFields(hfield{"upgrade", "websocket"})},
		{name: "te: gzip", fields: reqFields(hfield{"te", "gzip"})},
		{name: "te: trailers, gzip", fields: reqFields(hfield{"te", "trailers, gzip"})},
		{name: "host differing from :authority", fields: reqFields(hfield{"host", "evil.test"})},
		{name: "two host fields", fields: without(reqFields(hfield{"host", "localhost"}, hfield{"host", "evil.test"}), ":authority")},

		// Field names and values (RFC 9113 §8.2.1).
		{name: "uppercase field name", fields: reqFields(hfield{"X-Upper", "1"})},
		{name: "empty field name", fields: reqFields(hfield{"", "1"})},
		{name: "space in a field name", fields: reqFields(hfield{"x a", "1"})},
		{name: "colon in a field name", fields: reqFields(hfield{"x:a", "1"})},
		{name: "CR in a value", fields: reqFields(hfield{"x-a", "1\rx-b: 2"})},
		{name: "LF in a value", fields: reqFields(hfield{"x-a", "1\nx-b: 2"})},
		{name: "CRLF in a value", fields: reqFields(hfield{"x-a", "1\r\n\r\nGET /smuggled HTTP/1.1"})},
		{name: "NUL in a value", fields: reqFields(hfield{"x-a", "1\x00"})},
		{name: "leading space in a value", fields: reqFields(hfield{"x-a", " 1"})},
		{name: "trailing space in a value", fields: reqFields(hfield{"x-a", "1 "})},
		{name: "leading tab in a value", fields: reqFields(hfield{"x-a", "\t1"})},
		{name: "trailing tab in a value", fields: reqFields(hfield{"x-a", "1\t"})},

		// Framing (RFC 9113 §8.1.1).
		{name: "content-length larger than the DATA", fields: postFields(hfield{"content-length", "10"}), body: hello},
		{name: "content-length smaller than the DATA", fields: postFields(hfield{"content-length", "2"}), body: hello},
		{name: "content-length with an empty DATA", fields: postFields(hfield{"content-length", "5"}), body: []string{""}},
		{name: "content-length with no DATA", fields: postFields(hfield{"content-length", "5"})},
		{name: "two differing content-lengths", fields: postFields(hfield{"content-length", "5"}, hfield{"content-length", "6"}), body: hello},
		{name: "content-length list", fields: postFields(hfield{"content-length", "5, 5"}), body: hello},
		{name: "negative content-length", fields: postFields(hfield{"content-length", "-1"}), body: hello},
		{name: "content-length with a sign", fields: postFields(hfield{"content-length", "+5"}), body: hello},

		// Limits: 431 (or a reset) for the header section, 414 for :path.
		{name: "header section over the size limit", fields: reqFields(hfield{"x-big", strings.Repeat("a", 40<<10)})},
		{name: "too many fields", fields: reqFields(manyFields(150)...)},
		{name: ":path over the URI limit", fields: replace(reqFields(), ":path", "/"+strings.Repeat("a", 12<<10))},

		// Trailers (RFC 9113 §8.1).
		{name: "trailers with a pseudo-header", fields: postFields(hfield{"trailer", "x-sum"}), body: hello,
			trailers: []hfield{{":path", "/admin"}}},
		{name: "trailers with content-length", fields: postFields(hfield{"trailer", "x-sum"}), body: hello,
			trailers: []hfield{{"content-length", "5"}}},
		{name: "trailers with transfer-encoding", fields: postFields(hfield{"trailer", "x-sum"}), body: hello,
			trailers: []hfield{{"transfer-encoding", "chunked"}}},
		{name: "trailers with CR in a value", fields: postFields(hfield{"trailer", "x-sum"}), body: hello,
			trailers: []hfield{{"x-sum", "1\r\nx-b: 2"}}},

		// Valid requests: the harness forwards.
		{name: "valid GET", fields: reqFields(hfield{"user-agent", "vectors"}), forward: true},
		{name: "valid GET with host equal to :authority", fields: reqFields(hfield{"host", "localhost"}), forward: true},
		{name: "valid POST", fields: postFields(hfield{"content-length", "5"}), body: hello, forward: true},
		{name: "valid POST without content-length", fields: postFields(), body: []string{"hel", "lo"}, forward: true},
		{name: "valid te: trailers", fields: reqFields(hfield{"te", "trailers"}), forward: true},
	}
	return vs
}

// runStreamVectors sends every vector through drive to a front whose
// backend is rec and checks the outcome: a refused vector must leave the
// backend with 0 bytes; a valid one must reach it as exactly one request.
func runStreamVectors(t *testing.T, drive streamDriver, rec *recorder) {
	t.Helper()
	runStreamVectorsWithGaps(t, drive, rec, nil)
}

// runStreamVectorsWithGaps is runStreamVectors for a front with known
// gaps: a vector named in gaps (with the reason) that is not refused must
// reach the backend as exactly one request, and is logged as a gap.
func runStreamVectorsWithGaps(t *testing.T, drive streamDriver, rec *recorder, gaps map[string]string) {
	t.Helper()
	refused := 0
	for _, v := range streamVectors() {
		t.Run(v.name, func(t *testing.T) {
			rec.take()
			o := drive(t, v)
			got := rec.take()
			t.Logf("%v; %d bytes to the backend", o, len(got))
			if why, ok := gaps[v.name]; ok && !o.refused() {
				t.Logf("known gap (%s): forwarded", why)
				if n := countRequests(got); n != 1 {
					t.Errorf("known gap: the backend received %d requests, want exactly 1:\n%.400q", n, got)
				}
				return
			}
			if v.forward {
				if o.status != 200 {
					t.Errorf("valid request: got %v, want status 200", o)
				}
				if n := countRequests(got); n != 1 || !bytes.HasPrefix(got, []byte(v.fields[0].value+" ")) {
					t.Errorf("valid request: the backend received %d requests, want 1:\n%.400q", n, got)
				}
				return
			}
			if !o.refused() {
				t.Errorf("not refused: got %v, want a reset or 400/413/414/431/501", o)
			}
			if len(got) > 0 {
				t.Errorf("the backend received %d bytes, want 0:\n%.400q", len(got), got)
			}
			if !t.Failed() {
				refused++
			}
		})
	}
	t.Logf("%d vectors refused with 0 bytes to the backend", refused)
}

// countRequests counts the HTTP/1 requests in b, bodies read by their
// framing; -1 when b does not parse to its end.
func countRequests(b []byte) int {
	br := bufio.NewReader(bytes.NewReader(b))
	n := 0
	for {
		if _, err := br.Peek(1); err == io.EOF {
			return n
		}
		req, err := http.ReadRequest(br)
		if err != nil {
			return -1
		}
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return -1
		}
		n++
	}
}
