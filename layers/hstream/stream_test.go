package hstream

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/strata-proxy/strata/layers"
	"github.com/strata-proxy/strata/layers/msg"
)

// fakeBody hands out its chunks one read at a time, as a mux stage's body
// does as DATA frames arrive, then err (io.EOF when nil). At the end it
// fills the request's declared trailers, as x/net and quic-go do.
type fakeBody struct {
	chunks   []string
	err      error
	r        *http.Request
	trailers map[string]string
}

func (b *fakeBody) Read(p []byte) (int, error) {
	if len(b.chunks) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		for k, v := range b.trailers {
			b.r.Trailer[k] = []string{v}
		}
		return 0, io.EOF
	}
	n := copy(p, b.chunks[0])
	if n == len(b.chunks[0]) {
		b.chunks = b.chunks[1:]
	} else {
		b.chunks[0] = b.chunks[0][n:]
	}
	return n, nil
}

func (b *fakeBody) Close() error { return nil }

// postRequest is a POST with the given content-length ("" for none) whose
// body is body.
func postRequest(cl string, body *fakeBody) *http.Request {
	r := httptest.NewRequest("POST", "https://example.com/up", nil)
	r.RequestURI = "/up"
	r.ContentLength = -1
	if cl != "" {
		r.Header.Set("Content-Length", cl)
	}
	if len(body.trailers) > 0 {
		r.Trailer = http.Header{}
		for k := range body.trailers {
			r.Trailer[k] = nil
		}
	}
	body.r = r
	r.Body = body
	return r
}

func TestStreamBody(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cl       string
		body     fakeBody
		maxBody  int64
		want     string
		status   int  // the refusal's status, 0 for none
		stageErr bool // a failure of the client side that has no status
		trailers string
	}{
		{name: "length, one read", cl: "5", body: fakeBody{chunks: []string{"hello"}}, want: "hello"},
		{name: "length, several reads", cl: "10", body: fakeBody{chunks: []string{"hel", "lo", "world"}}, want: "helloworld"},
		{name: "no length", body: fakeBody{chunks: []string{"a", "", "b"}}, want: "ab"},
		{name: "empty with no length", body: fakeBody{}, want: ""},
		{name: "shorter than content-length", cl: "10", body: fakeBody{chunks: []string{"hello"}}, status: 400},
		{name: "longer than content-length", cl: "2", body: fakeBody{chunks: []string{"hello"}}, status: 400},
		{name: "over max body", body: fakeBody{chunks: []string{"hel", "lo"}}, maxBody: 4, status: 413},
		{name: "at max body", body: fakeBody{chunks: []string{"hel", "lo"}}, maxBody: 5, want: "hello"},
		{name: "reader fails", body: fakeBody{chunks: []string{"he"}, err: io.ErrUnexpectedEOF}, stageErr: true},
		{name: "trailers", body: fakeBody{chunks: []string{"abc"}, trailers: map[string]string{"X-Sum": "6"}},
			want: "abc", trailers: "X-Sum: 6"},
		{name: "trailer with a control byte dropped", body: fakeBody{chunks: []string{"abc"}, trailers: map[string]string{"X-Sum": "6\r\nx: y"}},
			want: "abc"},
	} {
		for _, mode := range []string{"ReadBody", "WaitBody"} {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				body := tc.body
				body.chunks = append([]string(nil), tc.body.chunks...)
				st := New(httptest.NewRecorder(), postRequest(tc.cl, &body), Options{MaxBody: tc.maxBody})
				defer st.Close()
				if err := st.Err(); err != nil {
					t.Fatalf("refused: %v", err)
				}
				var got []byte
				var err error
				if mode == "WaitBody" {
					for i := 0; i < 100; i++ {
						var done bool
						if done, err = st.WaitBody(); done || err != nil {
							break
						}
					}
					if err == nil {
						var p []byte
						p, err = st.ReadBodyBuffered()
						got = append(got, p...)
					}
				}
				for i := 0; i < 100 && err == nil; i++ {
					var p []byte
					p, err = st.ReadBody()
					got = append(got, p...)
				}
				switch {
				case tc.status != 0:
					var e *Error
					if !errors.As(err, &e) || e.Status != tc.status {
						t.Fatalf("got %v, want a %d refusal", err, tc.status)
					}
					return
				case tc.stageErr:
					var se *layers.StageError
					if !errors.As(err, &se) || se.Side != layers.SideClient {
						t.Fatalf("got %v, want a client-side stage error", err)
					}
					return
				case err != io.EOF:
					t.Fatalf("got %v after %q, want io.EOF", err, got)
				}
				if string(got) != tc.want {
					t.Errorf("body %q, want %q", got, tc.want)
				}
				if !st.BodyDone() {
					t.Error("BodyDone is false at the end")
				}
				var tr []string
				for _, f := range st.Trailers() {
					tr = append(tr, string(f.Name)+": "+string(f.Value))
				}
				if strings.Join(tr, ", ") != tc.trailers {
					t.Errorf("trailers %q, want %q", tr, tc.trailers)
				}
			})
		}
	}
}

// TestStreamWaitBodyFillsBuffer: a body longer than the buffer is waited
// for until the buffer is full, then streamed.
func TestStreamWaitBodyFillsBuffer(t *testing.T) {
	pool := layers.NewBufferPool(4096)
	size := pool.Size()
	chunk := strings.Repeat("x", 1000)
	var chunks []string
	for n := 0; n < 3*size; n += len(chunk) {
		chunks = append(chunks, chunk)
	}
	body := &fakeBody{chunks: chunks}
	st := New(httptest.NewRecorder(), postRequest("", body), Options{Buffers: pool})
	defer st.Close()
	var done bool
	var err error
	steps := 0
	for !done && err == nil && steps < 100 {
		done, err = st.WaitBody()
		steps++
	}
	if err != nil || !done {
		t.Fatalf("WaitBody: done %v, %v", done, err)
	}
	p, err := st.ReadBodyBuffered()
	if len(p) != size || err != nil {
		t.Fatalf("buffered %d bytes (%v), want the full buffer of %d", len(p), err, size)
	}
	total := len(p)
	for err == nil {
		p, err = st.ReadBody()
		total += len(p)
	}
	if err != io.EOF || total != len(chunks)*len(chunk) {
		t.Fatalf("read %d bytes, %v; want %d", total, err, len(chunks)*len(chunk))
	}
}

func TestStreamRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mod    func(r *http.Request)
		o      Options
		status int
	}{
		{"content-length over max body", func(r *http.Request) {
			r.Header.Set("Content-Length", "10")
			r.Body = io.NopCloser(strings.NewReader("0123456789"))
		}, Options{MaxBody: 5}, 413},
		{"content-length with no body", func(r *http.Request) { r.Header.Set("Content-Length", "10") }, Options{}, 400},
		{"too many fields", func(r *http.Request) {
			for i := 0; i < 5; i++ {
				r.Header.Add("X-A", "1")
			}
		}, Options{MaxFields: 4}, 431},
		{"head too large", func(r *http.Request) { r.Header.Set("X-Big", strings.Repeat("a", 200)) }, Options{MaxHeadBytes: 128}, 431},
		{"uri too long", func(r *http.Request) { r.RequestURI = "/" + strings.Repeat("a", 100) }, Options{MaxURI: 64}, 414},
		{"connection", func(r *http.Request) { r.Header.Set("Connection", "close") }, Options{}, 400},
		{"te gzip", func(r *http.Request) { r.Header.Set("Te", "gzip") }, Options{}, 400},
		{"host differs", func(r *http.Request) { r.Header.Set("Host", "evil.test") }, Options{}, 400},
		{"differing content-lengths", func(r *http.Request) { r.Header["Content-Length"] = []string{"1", "2"} }, Options{}, 400},
		{"value with NUL", func(r *http.Request) { r.Header.Set("X-A", "a\x00") }, Options{}, 400},
		{"value with trailing tab", func(r *http.Request) { r.Header.Set("X-A", "a\t") }, Options{}, 400},
		{"name with a slash", func(r *http.Request) { r.Header["X/A"] = []string{"1"} }, Options{}, 400},
		{"no authority", func(r *http.Request) { r.Host = "" }, Options{}, 400},
		{"CONNECT", func(r *http.Request) { r.Method, r.RequestURI = "CONNECT", "example.com:443" }, Options{}, 501},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "https://example.com/", nil)
			r.RequestURI = "/"
			tc.mod(r)
			st := New(httptest.NewRecorder(), r, tc.o)
			defer st.Close()
			var e *Error
			if !errors.As(st.Err(), &e) || e.Status != tc.status {
				t.Fatalf("got %v, want a %d refusal", st.Err(), tc.status)
			}
		})
	}
}

func TestStreamHead(t *testing.T) {
	r := httptest.NewRequest("GET", "https://example.com/a?b", nil)
	r.RequestURI = "/a?b"
	r.Header.Set("Host", "example.com")
	r.Header.Set("Te", "trailers")
	r.Header["Accept"] = []string{"a", "b"}
	r.Header.Set("Expect", "100-continue")
	st := New(httptest.NewRecorder(), r, Options{})
	defer st.Close()
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	h := st.Head()
	if string(h.Method) != "GET" || string(h.Path) != "/a?b" || string(h.Authority) != "example.com" || h.Body != msg.BodyNone {
		t.Fatalf("head %s %s %s %v", h.Method, h.Authority, h.Path, h.Body)
	}
	var fields []string
	for _, f := range h.Fields {
		fields = append(fields, string(f.Name)+": "+string(f.Value))
	}
	// Sorted by name; Host (carried by Authority) and Expect (answered by
	// the mux stage) are not forwarded as fields.
	if got := strings.Join(fields, ", "); got != "Accept: a, Accept: b, Te: trailers" {
		t.Errorf("fields %q", got)
	}
}

func TestStreamWriteResponse(t *testing.T) {
	r := httptest.NewRequest("GET", "https://example.com/", nil)
	r.RequestURI = "/"
	w := httptest.NewRecorder()
	st := New(w, r, Options{})
	defer st.Close()
	h := &msg.Head{Status: 200, Body: msg.BodyChunked, ContentLength: -1, Fields: msg.Fields{
		{Name: []byte("X-A"), Value: []byte("1")},
		{Name: []byte("Connection"), Value: []byte("keep-alive")},
		{Name: []byte("Transfer-Encoding"), Value: []byte("chunked")},
		{Name: []byte("Trailer"), Value: []byte("X-Sum")},
	}}
	if err := st.WriteHead(h, []byte("<html>"), false); err != nil {
		t.Fatal(err)
	}
	if err := st.WriteBody([]byte("</html>")); err != nil {
		t.Fatal(err)
	}
	if st.Ended() {
		t.Fatal("ended before EndBody")
	}
	if err := st.EndBody(msg.Fields{{Name: []byte("X-Sum"), Value: []byte("13")}}); err != nil {
		t.Fatal(err)
	}
	if !st.Ended() {
		t.Fatal("not ended after EndBody")
	}
	res := w.Result()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || string(b) != "<html></html>" {
		t.Fatalf("%d %q", res.StatusCode, b)
	}
	if v, ok := res.Header["Content-Type"]; ok && len(v) > 0 {
		t.Errorf("a content type was sniffed: %q", v)
	}
	for _, name := range []string{"Connection", "Transfer-Encoding"} {
		if res.Header.Get(name) != "" {
			t.Errorf("%s forwarded to the client", name)
		}
	}
	if res.Header.Get("X-A") != "1" {
		t.Errorf("X-A %q", res.Header.Get("X-A"))
	}
	if res.Trailer.Get("X-Sum") != "13" {
		t.Errorf("trailers %v", res.Trailer)
	}
}

func TestStreamWriteLengths(t *testing.T) {
	for _, tc := range []struct {
		name   string
		method string
		status int
		body   msg.BodyKind
		cl     int64
		want   string // the Content-Length sent, "" for none
	}{
		{"length", "GET", 200, msg.BodyLength, 5, "5"},
		{"HEAD keeps the length", "HEAD", 200, msg.BodyNone, 42, "42"},
		{"HEAD without a length", "HEAD", 200, msg.BodyNone, -1, ""},
		{"204", "GET", 204, msg.BodyNone, 0, ""},
		{"304", "GET", 304, msg.BodyNone, 42, ""},
		{"chunked", "GET", 200, msg.BodyChunked, -1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "https://example.com/", nil)
			r.RequestURI = "/"
			w := httptest.NewRecorder()
			st := New(w, r, Options{})
			defer st.Close()
			var body []byte
			if tc.body == msg.BodyLength {
				body = []byte("hello")
			}
			h := &msg.Head{Status: tc.status, Body: tc.body, ContentLength: tc.cl,
				Fields: msg.Fields{{Name: []byte("Content-Length"), Value: []byte("999")}}}
			if err := st.WriteHead(h, body, true); err != nil {
				t.Fatal(err)
			}
			if got := w.Result().Header.Get("Content-Length"); got != tc.want {
				t.Errorf("Content-Length %q, want %q", got, tc.want)
			}
		})
	}
}

func TestStreamRefusesUpgrade(t *testing.T) {
	r := httptest.NewRequest("GET", "https://example.com/", nil)
	r.RequestURI = "/"
	st := New(httptest.NewRecorder(), r, Options{})
	defer st.Close()
	if err := st.WriteHead(&msg.Head{Status: 101}, nil, false); err == nil {
		t.Fatal("a 101 was written on a stream")
	}
	if st.Tunnel() != nil {
		t.Fatal("a stream offered a tunnel")
	}
}

// benchWriter is a ResponseWriter that keeps nothing, for benchmarks.
type benchWriter struct{ h http.Header }

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *benchWriter) WriteHeader(int)             { clear(w.h) }
func (w *benchWriter) FlushError() error           { return nil }

// BenchmarkStream is one request's conversion (a browser's GET) and the
// writing of its response head and body.
func BenchmarkStream(b *testing.B) {
	r := httptest.NewRequest("GET", "https://www.example.com/articles/2024/strata-proxy?utm_source=feed&page=2", nil)
	r.RequestURI = "/articles/2024/strata-proxy?utm_source=feed&page=2"
	r.Header = http.Header{
		"User-Agent":      {"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"},
		"Accept":          {"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
		"Accept-Language": {"en-US,en;q=0.5"},
		"Accept-Encoding": {"gzip, deflate, br, zstd"},
		"Cookie":          {"session=8f14e45fceea167a5a36dedd4bea2543; theme=dark"},
	}
	resp := &msg.Head{Status: 200, Body: msg.BodyLength, ContentLength: 13, Fields: msg.Fields{
		{Name: []byte("Server"), Value: []byte("nginx")},
		{Name: []byte("Content-Type"), Value: []byte("text/plain")},
		{Name: []byte("Date"), Value: []byte("Wed, 25 Nov 2026 03:40:00 GMT")},
	}}
	w := &benchWriter{h: http.Header{}}
	body := []byte("hello, world\n")
	b.ReportAllocs()
	for b.Loop() {
		st := New(w, r, Options{})
		if st.Err() != nil {
			b.Fatal(st.Err())
		}
		if err := st.WriteHead(resp, body, true); err != nil {
			b.Fatal(err)
		}
		st.Close()
		st.Release()
	}
}
