package session

import (
	"bytes"
	"errors"
	"github.com/strata-proxy/strata/layers/h1/h1test"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/strata-proxy/strata/layers/h1"
	"github.com/strata-proxy/strata/layers/msg"
)

// vector is one block of the shared vectors (layers/h1/h1test).
type vector struct {
	name     string
	response bool
	method   string // the request's method, for a response
	in       []byte
	accept   bool
	status   int // for a rejection
}

// readVectors returns the shared vectors of layers/h1/h1test in this
// file's form.
func readVectors() ([]vector, error) {
	hs, err := h1test.Vectors()
	if err != nil {
		return nil, err
	}
	vs := make([]vector, len(hs))
	for i, h := range hs {
		vs[i] = vector{name: h.Name, response: h.Response, method: h.Method, in: h.In, accept: h.Accept, status: h.Status}
	}
	return vs, nil
}

// message is one parsed request: head, body, trailers and its length.
type message struct {
	head     msg.Head
	body     []byte
	trailers msg.Fields
	n        int
}

// parseRequest parses one whole request from b with h1's codec.
func parseRequest(b []byte, lim h1.Limits) (*message, error) {
	m := &message{}
	n, err := h1.ParseRequestHead(b, &m.head, lim)
	if err != nil {
		return nil, err
	}
	rest := b[n:]
	switch m.head.Body {
	case msg.BodyLength:
		if int64(len(rest)) < m.head.ContentLength {
			return nil, h1.ErrIncomplete
		}
		m.body = rest[:m.head.ContentLength]
		n += int(m.head.ContentLength)
	case msg.BodyChunked:
		d := h1.ChunkedDecoder{Limits: lim}
		for {
			data, k, err := d.Decode(rest)
			m.body = append(m.body, data...)
			rest = rest[k:]
			n += k
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, err
			}
		}
		m.trailers = d.Trailers
	}
	m.n = n
	return m, nil
}

// recorder is a raw backend that records every byte it receives and
// answers each whole request it parses with 200 "ok".
type recorder struct {
	mu   sync.Mutex
	got  []byte
	resp []byte // what to answer instead of 200 (the response vectors)
}

func (r *recorder) reset(resp []byte) {
	r.mu.Lock()
	r.got, r.resp = nil, resp
	r.mu.Unlock()
}

func (r *recorder) received() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.got)
}

func (r *recorder) serve(c *net.TCPConn) {
	var pending []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			r.mu.Lock()
			r.got = append(r.got, buf[:n]...)
			resp := r.resp
			r.mu.Unlock()
			pending = append(pending, buf[:n]...)
			for {
				m, perr := parseRequest(pending, h1.Limits{})
				if perr != nil {
					break
				}
				pending = pending[m.n:]
				if resp != nil {
					c.Write(resp)
					c.Close()
					return
				}
				c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
			}
		}
		if err != nil {
			return
		}
	}
}

// finalStatus returns the status of the first non-1xx response in b.
func finalStatus(b []byte) int {
	for len(b) > 12 && bytes.HasPrefix(b, []byte("HTTP/1.")) {
		st, _ := strconv.Atoi(string(b[9:12]))
		if st >= 200 {
			return st
		}
		i := bytes.Index(b, []byte("\r\n\r\n"))
		if i < 0 {
			return 0
		}
		b = b[i+4:]
	}
	return 0
}

func countFramingFields(head []byte) int {
	n := 0
	for _, line := range bytes.Split(head, []byte("\r\n")) {
		name, _, ok := bytes.Cut(line, []byte(":"))
		if ok && (msg.EqualFold(name, "content-length") || msg.EqualFold(name, "transfer-encoding")) {
			n++
		}
	}
	return n
}

// TestHTTPVectors replays every smuggling and malformed-input vector
// against the running proxy with a recording backend: a refused request
// vector is answered with its status and the backend receives 0 bytes; an
// accepted one reaches the backend as exactly one canonical request (one
// framing field, same method, target and body). A response vector is sent
// by the backend: refused ones become 502, accepted ones are forwarded.
func TestHTTPVectors(t *testing.T) {
	checkGoroutines(t)
	vs, err := readVectors()
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	b := newBackend(t, "app", "", 0, startServer(t, rec.serve))
	h := startHTTP(t, HTTPFrontendOptions{DefaultBackend: b, AccessLog: slog.New(slog.NewJSONHandler(io.Discard, nil)), Timeouts: HTTPTimeouts{HTTPRequest: 2 * time.Second, Server: 2 * time.Second}})
	ran := 0
	for _, v := range vs {
		if v.response {
			// 1xx alone and a 2xx to CONNECT are not whole exchanges.
			if st := finalStatus(v.in); st == 0 || v.method == "CONNECT" || bytes.HasPrefix(v.in, []byte("HTTP/1.1 1")) {
				continue
			}
		}
		ran++
		t.Run(v.name, func(t *testing.T) {
			var resp []byte
			req := []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			if v.response {
				resp = v.in
				req = []byte(v.method + " / HTTP/1.1\r\nHost: x\r\n\r\n")
			} else {
				req = v.in
			}
			rec.reset(resp)
			c := h.dial(t)
			if _, err := c.Write(req); err != nil {
				t.Fatal(err)
			}
			c.(*net.TCPConn).CloseWrite()
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			out, err := io.ReadAll(c)
			if err != nil && !errors.Is(err, net.ErrClosed) {
				t.Fatalf("reading: %v (after %q)", err, out)
			}
			got := rec.received()
			status := finalStatus(out)
			switch {
			case v.response && !v.accept:
				if status != 502 {
					t.Fatalf("response %q forwarded as %q, want 502", v.in, out)
				}
			case v.response:
				if status != finalStatus(v.in) {
					t.Fatalf("response %q forwarded as %q", v.in, out)
				}
			case !v.accept:
				if status != v.status {
					t.Fatalf("request %q answered %q, want status %d", v.in, out, v.status)
				}
				if len(got) != 0 {
					t.Fatalf("request %q refused but the backend received %q", v.in, got)
				}
			default:
				if status != 200 {
					t.Fatalf("request %q answered %q, want 200 from the backend", v.in, out)
				}
				checkForwarded(t, v.in, got)
			}
		})
	}
	if ran < 150 {
		t.Fatalf("only %d vectors ran", ran)
	}
	t.Logf("%d vectors ran end to end", ran)
}

// checkForwarded asserts that got, what the backend received for the
// accepted request in, is exactly one canonical request equivalent to in.
func checkForwarded(t *testing.T, in, got []byte) {
	t.Helper()
	want, err := parseRequest(in, h1.Limits{})
	if err != nil {
		t.Fatalf("vector %q does not parse: %v", in, err)
	}
	m, err := parseRequest(got, h1.Limits{})
	if err != nil {
		t.Fatalf("backend received %q for %q: %v", got, in, err)
	}
	if m.n != len(got) {
		t.Fatalf("backend received more than one request: %q for %q", got, in)
	}
	headLen := bytes.Index(got, []byte("\r\n\r\n")) + 4
	framing := countFramingFields(got[:headLen])
	if (want.head.Body == msg.BodyNone && framing != 0) || (want.head.Body != msg.BodyNone && framing != 1) {
		t.Fatalf("forwarded head %q has %d framing fields", got[:headLen], framing)
	}
	if string(m.head.Method) != string(want.head.Method) || string(m.head.Path) != string(want.head.Path) ||
		string(m.head.Authority) != string(want.head.Authority) || !bytes.Equal(m.body, want.body) || m.head.Body != want.head.Body {
		t.Fatalf("forwarded %q differs from %q", got, in)
	}
}
