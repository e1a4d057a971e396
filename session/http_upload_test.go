package session

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// pattern is a deterministic pseudo-random byte stream of n bytes.
type pattern struct {
	r *rand.ChaCha8
	n int64
}

func newPattern(seed byte, n int64) *pattern {
	var s [32]byte
	s[0] = seed
	return &pattern{r: rand.NewChaCha8(s), n: n}
}

func (p *pattern) Read(b []byte) (int, error) {
	if p.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.n {
		b = b[:p.n]
	}
	p.r.Read(b)
	p.n -= int64(len(b))
	return len(b), nil
}

func patternSum(seed byte, n int64) string {
	h := sha256.New()
	io.Copy(h, newPattern(seed, n))
	return fmt.Sprintf("%x", h.Sum(nil))
}

// echoBackend streams each request body back as it reads it: it answers
// before the body is in, so a proxy that sends the whole body before
// reading the response deadlocks with it once the socket buffers fill.
func echoBackend(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	if err := rc.EnableFullDuplex(); err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	w.WriteHeader(200)
	rc.Flush()
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			rc.Flush()
		}
		if err != nil {
			return
		}
	}
}

// TestHTTPFullDuplex streams a 64 MiB upload through an echo backend that
// answers while it reads: the response must flow while the body does, and
// both must arrive byte-exact. Length-delimited and chunked uploads.
func TestHTTPFullDuplex(t *testing.T) {
	checkGoroutines(t)
	be := startHTTPBackend(t, echoBackend)
	b := newBackend(t, "app", "", 0, be.addr())
	h := startHTTP(t, HTTPFrontendOptions{DefaultBackend: b, Timeouts: HTTPTimeouts{Client: 20 * time.Second, Server: 20 * time.Second}})
	c := h.client(t)
	c.Timeout = 60 * time.Second
	for _, tt := range []struct {
		name    string
		size    int64
		chunked bool
	}{
		{"length 64MiB", 64 << 20, false},
		{"chunked 8MiB", 8 << 20, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader = newPattern(7, tt.size)
			if tt.chunked {
				body = io.MultiReader(body) // hides the length: net/http sends it chunked
			}
			req, err := http.NewRequest("POST", h.url("/echo"), body)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.chunked {
				req.ContentLength = tt.size
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.New()
			n, err := io.Copy(sum, resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("status %d, read %d bytes: %v", resp.StatusCode, n, err)
			}
			if n != tt.size || fmt.Sprintf("%x", sum.Sum(nil)) != patternSum(7, tt.size) {
				t.Fatalf("echoed %d bytes, want %d, or they differ", n, tt.size)
			}
			wantRecord(t, h.record(t), map[string]any{
				"method": "POST", "status": 200.0, "term": "none",
				"bytes_in": float64(tt.size), "bytes_out": float64(tt.size),
			})
		})
	}
}

// TestHTTPEarlyResponse: a server answers 413 without reading a 64 MiB
// upload. The client gets the 413 (no deadlock), the rest of the body is
// abandoned and both connections close; the proxy serves the next client.
func TestHTTPEarlyResponse(t *testing.T) {
	checkGoroutines(t)
	be := startHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ok" {
			io.Copy(io.Discard, r.Body)
			io.WriteString(w, "ok")
			return
		}
		w.Header().Set("Connection", "close")
		http.Error(w, "too big for me", http.StatusRequestEntityTooLarge)
	})
	b := newBackend(t, "app", "", 0, be.addr())
	h := startHTTP(t, HTTPFrontendOptions{DefaultBackend: b, Timeouts: HTTPTimeouts{Client: 20 * time.Second, Server: 20 * time.Second}})

	const size = 64 << 20
	c := h.dial(t)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the client keeps uploading until the proxy stops reading
		defer wg.Done()
		io.Copy(c, newPattern(1, size))
	}()
	resp, body := readResponse(t, bufio.NewReader(c), "POST")
	if resp.StatusCode != 413 || !strings.Contains(body, "too big for me") {
		t.Fatalf("got %d %q, want the server's 413", resp.StatusCode, body)
	}
	if !resp.Close {
		t.Errorf("the 413 to a request whose body is unread does not close the connection: %v", resp.Header)
	}
	wg.Wait() // the upload ends: the proxy closed the connection
	r := h.record(t)
	wantRecord(t, r, map[string]any{"method": "POST", "status": 413.0, "term": "none"})
	if in := r["bytes_in"].(float64); in <= 0 || in >= size {
		t.Errorf("bytes_in = %v: want part of the body", in)
	}

	// The proxy is not stuck: a plain request on a new connection works.
	c2 := h.client(t)
	res, err := c2.Post(h.url("/ok"), "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("next request: %d", res.StatusCode)
	}
	h.record(t)
}

// recordingServer is a raw HTTP/1 backend that records everything it
// receives on each connection and answers nothing until the request is
// complete (it never is in the test that uses it).
type recordingServer struct {
	mu   sync.Mutex
	got  []*bytes.Buffer
	done chan struct{} // closed when a connection ended
}

func (rs *recordingServer) handle(c *net.TCPConn) {
	var buf bytes.Buffer
	rs.mu.Lock()
	rs.got = append(rs.got, &buf)
	rs.mu.Unlock()
	p := make([]byte, 32<<10)
	for {
		n, err := c.Read(p)
		rs.mu.Lock()
		buf.Write(p[:n])
		rs.mu.Unlock()
		if err != nil {
			rs.done <- struct{}{}
			return
		}
	}
}

// writeChunks writes 256 KiB of valid chunks of b (many buffers' worth),
// then tail.
func writeChunks(c net.Conn, b byte, tail string) error {
	chunk := bytes.Repeat([]byte{b}, 4096)
	w := bufio.NewWriter(c)
	for range 64 {
		fmt.Fprintf(w, "%x\r\n", len(chunk))
		w.Write(chunk)
		w.WriteString("\r\n")
	}
	w.WriteString(tail)
	return w.Flush()
}

// TestHTTPLateFramingError: a chunked body whose framing breaks far past
// the first buffer, after the server got part of it. The server
// connection is aborted (the server never sees a terminated request), the
// client gets 400 and the log says "client http body: …".
func TestHTTPLateFramingError(t *testing.T) {
	checkGoroutines(t)
	rs := &recordingServer{done: make(chan struct{}, 4)}
	addr := startServer(t, rs.handle)
	b := newBackend(t, "app", "", 0, addr)
	h := startHTTP(t, HTTPFrontendOptions{DefaultBackend: b, Timeouts: HTTPTimeouts{Client: 10 * time.Second, Server: 10 * time.Second}})

	c := h.dial(t)
	c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
	if err := writeChunks(c, 'a', "zz\r\nbad\r\n0\r\n\r\n"); err != nil { // an invalid chunk size
		t.Fatal(err)
	}
	resp, _ := readResponse(t, bufio.NewReader(c), "POST")
	if resp.StatusCode != 400 {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
	r := h.record(t)
	wantRecord(t, r, map[string]any{"status": 400.0, "method": "POST"})
	if term, _ := r["term"].(string); !strings.HasPrefix(term, "client http body: ") {
		t.Errorf("term %q, want client http body: <cause>", term)
	}
	select {
	case <-rs.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the server connection was not closed")
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if len(rs.got) != 1 {
		t.Fatalf("the server got %d connections, want 1", len(rs.got))
	}
	got := rs.got[0].String()
	head, body, ok := strings.Cut(got, "\r\n\r\n")
	if !ok || !strings.HasPrefix(head, "POST /up HTTP/1.1") {
		t.Fatalf("the server got no request head: %.200q", got)
	}
	if len(body) < 16<<10 {
		t.Errorf("the server got %d body bytes: the test wants the error after streaming started", len(body))
	}
	if strings.Contains(body, "0\r\n\r\n") || strings.Contains(body, "zz") {
		t.Errorf("the server saw the end of the body or the bad chunk: %q", body[max(0, len(body)-64):])
	}
}

// TestHTTPUploadTimeouts: the client and server timeouts still bound a
// body that is streamed while the response is awaited.
func TestHTTPUploadTimeouts(t *testing.T) {
	checkGoroutines(t)
	const d = 300 * time.Millisecond
	t.Run("client stalls in the body", func(t *testing.T) {
		rs := &recordingServer{done: make(chan struct{}, 4)}
		b := newBackend(t, "app", "", 0, startServer(t, rs.handle))
		h := startHTTP(t, HTTPFrontendOptions{DefaultBackend: b, Timeouts: HTTPTimeouts{Client: d, Server: 10 * time.Second}})
		c := h.dial(t)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n")
		c.Write(bytes.Repeat([]byte("b"), 64<<10)) // then nothing
		start := time.Now()
		resp, _ := readResponse(t, bufio.NewReader(c), "POST")
		took := time.Since(start)
		if resp.StatusCode != 408 {
			t.Fatalf("status %d, want 408", resp.StatusCode)
		}
		if took < d-50*time.Millisecond || took > d+time.Second {
			t.Errorf("answered after %v, want about %v", took, d)
		}
		wantRecord(t, h.record(t), map[string]any{"status": 408.0, "term": "client http body timeout"})
		select {
		case <-rs.done:
		case <-time.After(5 * time.Second):
			t.Fatal("the server connection was not closed")
		}
		rs.mu.Lock()
		defer rs.mu.Unlock()
		if _, body, _ := strings.Cut(rs.got[0].String(), "\r\n\r\n"); len(body) >= 1<<20 {
			t.Errorf("the server got the whole body")
		}
	})
	t.Run("server stops reading", func(t *testing.T) {
		stuck := make(chan struct{})
		addr := startServer(t, func(c *net.TCPConn) {
			c.Read(make([]byte, 100)) // the head, then nothing more
			<-stuck
		})
		t.Cleanup(func() { close(stuck) })
		b := newBackend(t, "app", "", 0, addr)
		h := startHTTP(t, HTTPFrontendOptions{DefaultBackend: b, Timeouts: HTTPTimeouts{Client: 10 * time.Second, Server: d}})
		c := h.dial(t)
		c.SetDeadline(time.Now().Add(20 * time.Second))
		const size = 256 << 20 // more than the socket buffers take
		fmt.Fprintf(c, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			io.Copy(c, newPattern(2, size))
		}()
		resp, _ := readResponse(t, bufio.NewReader(c), "POST")
		if resp.StatusCode != 504 {
			t.Fatalf("status %d, want 504", resp.StatusCode)
		}
		c.Close()
		wg.Wait()
		wantRecord(t, h.record(t), map[string]any{"status": 504.0, "term": "server http response timeout"})
	})
}

// TestHTTPLateFramingErrorAfterResponse: the chunked framing breaks while
// the server already streams its answer (an echo): the server connection
// is aborted, the response to the client is cut short (no last chunk), and
// the log names the client's body.
func TestHTTPLateFramingErrorAfterResponse(t *testing.T) {
	checkGoroutines(t)
	be := startHTTPBackend(t, echoBackend)
	b := newBackend(t, "app", "", 0, be.addr())
	h := startHTTP(t, HTTPFrontendOptions{DefaultBackend: b, Timeouts: HTTPTimeouts{Client: 10 * time.Second, Server: 10 * time.Second}})
	c := h.dial(t)
	c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
	br := bufio.NewReader(c)
	if err := writeChunks(c, 'e', ""); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: "POST"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	io.WriteString(c, "zz\r\nbad\r\n0\r\n\r\n")
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil {
		t.Fatalf("the response ended normally after %d bytes: want it cut short", n)
	}
	r := h.record(t)
	if term, _ := r["term"].(string); !strings.HasPrefix(term, "client http body: ") {
		t.Errorf("term %q, want client http body: <cause>", term)
	}
	t.Logf("status %v, term %q", r["status"], r["term"])
}
