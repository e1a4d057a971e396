package h2

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/strata-proxy/strata/layers/hstream"
	"github.com/strata-proxy/strata/layers/msg"
)

// serveOwn serves h2c connections on a loopback listener with the mux of
// strata's own and handler; it returns the server and an x/net client
// (a real HTTP/2 client) that dials it.
func serveOwn(t *testing.T, o Options, handler StreamHandler) (*Server, *http.Client, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(o)
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.ServeConnStreams(c, false, handler)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.Shutdown()
		wg.Wait()
	})
	tr := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return s, &http.Client{Transport: tr, Timeout: 30 * time.Second}, "http://" + ln.Addr().String()
}

// echo answers with the request's body, its method and path in
// x-request, and the request's trailers prefixed with "echo-".
func echo(st *ServerStream) {
	if err := st.Err(); err != nil {
		var e *hstream.Error
		errors.As(err, &e)
		st.WriteHead(&msg.Head{Status: e.Status, Body: msg.BodyNone}, nil, true)
		return
	}
	h := st.Head()
	req := string(h.Method) + " " + string(h.Path) + " " + string(h.Authority)
	var body []byte
	for {
		p, err := st.ReadBody()
		body = append(body, p...)
		if err == io.EOF {
			break
		}
		if err != nil {
			return // the mux resets the stream
		}
	}
	var trailers msg.Fields
	for _, f := range st.Trailers() {
		trailers = append(trailers, msg.Field{Name: append([]byte("echo-"), f.Name...), Value: f.Value})
	}
	resp := &msg.Head{Status: 200, Body: msg.BodyChunked, ContentLength: -1,
		Fields: msg.Fields{{Name: []byte("X-Request"), Value: []byte(req)}, {Name: []byte("Trailer"), Value: []byte("echo-x-sum")}}}
	if err := st.WriteHead(resp, nil, false); err != nil {
		return
	}
	for len(body) > 0 {
		n := min(len(body), 10000)
		if st.WriteBody(body[:n]) != nil {
			return
		}
		body = body[n:]
	}
	st.EndBody(trailers)
}

// TestServerStreamsExchange runs requests through the mux with a real
// client: a GET, a 3 MiB upload echoed back (flow control both ways, past
// the initial windows), trailers both ways, and 64 concurrent streams on
// one connection with a limit of 16.
func TestServerStreamsExchange(t *testing.T) {
	_, client, base := serveOwn(t, Options{MaxConcurrentStreams: 16}, echo)

	resp, err := client.Get(base + "/hello?x=1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(b) != 0 || !strings.HasPrefix(resp.Header.Get("X-Request"), "GET /hello?x=1 127.0.0.1:") {
		t.Fatalf("GET: %d %q %v", resp.StatusCode, b, resp.Header)
	}

	big := bytes.Repeat([]byte("0123456789abcdef"), 3<<16) // 3 MiB
	req, _ := http.NewRequest("POST", base+"/up", nil)
	req.Trailer = http.Header{"X-Sum": nil}
	req.ContentLength = -1
	body := &trailerBody{r: bytes.NewReader(big), req: req}
	req.Body = body
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(b, big) {
		t.Fatalf("upload echo: %v, %d bytes back of %d", err, len(b), len(big))
	}
	if got := resp.Trailer.Get("Echo-X-Sum"); got != "42" {
		t.Fatalf("trailers back: %v", resp.Trailer)
	}

	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := fmt.Sprintf("stream %d", i)
			resp, err := client.Post(base+"/c", "text/plain", strings.NewReader(payload))
			if err != nil {
				failed.Add(1)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != payload {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of 64 concurrent streams failed", n)
	}
}

// trailerBody sets the request's trailer once its body is read.
type trailerBody struct {
	r   io.Reader
	req *http.Request
}

func (b *trailerBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		b.req.Trailer.Set("X-Sum", "42")
	}
	return n, err
}

func (b *trailerBody) Close() error { return nil }

// TestServerStreamsRefusals: a request the downgrade rules refuse gets its
// status without the handler seeing a head, and one they call malformed
// is reset before any handler runs.
func TestServerStreamsRefusals(t *testing.T) {
	var handled atomic.Int32
	_, client, base := serveOwn(t, Options{Stream: hstream.Options{MaxURI: 100}}, func(st *ServerStream) {
		handled.Add(1)
		echo(st)
	})
	resp, err := client.Get(base + "/" + strings.Repeat("a", 200))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 414 {
		t.Fatalf("long :path: status %d, want 414", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", base+"/", nil)
	req.Header.Set("Te", "gzip")
	if resp, err := client.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("te: gzip answered %d, want a stream reset", resp.StatusCode)
	}
	if n := handled.Load(); n != 1 {
		t.Fatalf("the handler ran %d times, want 1 (the 414)", n)
	}
}

// TestServerStreamsReset: a client that gives up on a stream mid-upload
// reaches the stream's OnReset, and a handler blocked reading its body
// fails instead of waiting.
func TestServerStreamsReset(t *testing.T) {
	reset := make(chan struct{})
	readErr := make(chan error, 1)
	_, client, base := serveOwn(t, Options{}, func(st *ServerStream) {
		st.OnReset(func() { close(reset) })
		for {
			_, err := st.ReadBody()
			if err != nil {
				readErr <- err
				return
			}
		}
	})
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", base+"/", pr)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	pw.Write([]byte("some of the body"))
	time.Sleep(50 * time.Millisecond)
	cancel()
	pw.CloseWithError(context.Canceled)
	select {
	case <-reset:
	case <-time.After(10 * time.Second):
		t.Fatal("OnReset did not run after the client reset the stream")
	}
	select {
	case err := <-readErr:
		if err == io.EOF || err == nil {
			t.Fatalf("ReadBody after a reset: %v, want an error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReadBody still blocked after the reset")
	}
	<-done
}

// TestServerStreamsShutdown: Shutdown sends GOAWAY; a stream in flight
// still finishes, and the connection ends after it.
func TestServerStreamsShutdown(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	s, client, base := serveOwn(t, Options{}, func(st *ServerStream) {
		close(started)
		<-release
		st.WriteHead(&msg.Head{Status: 200, Body: msg.BodyLength, ContentLength: 4}, []byte("done"), true)
	})
	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := client.Get(base + "/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- result{string(b), err}
	}()
	<-started
	s.Shutdown()
	time.Sleep(50 * time.Millisecond)
	close(release)
	select {
	case r := <-got:
		if r.err != nil || r.body != "done" {
			t.Fatalf("in-flight stream after GOAWAY: %q, %v", r.body, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the in-flight stream did not finish")
	}
}

// BenchmarkServerStream measures the mux's cost of one request stream: a
// GET's HEADERS in, a handler answering 200 with 13 bytes, the response
// frames out, over one h2c connection on loopback with a raw framer as
// the client (so that the allocations reported are nearly all the mux's
// and the handler's).
func BenchmarkServerStream(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	s := NewServer(Options{})
	defer s.Shutdown()
	body := []byte("Hello, world\n")
	resp := &msg.Head{Status: 200, Body: msg.BodyLength, ContentLength: int64(len(body)),
		Fields: msg.Fields{{Name: []byte("Content-Type"), Value: []byte("text/plain")}}}
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.ServeConnStreams(c, false, func(st *ServerStream) {
			st.WriteHead(resp, body, true)
		})
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, Preface)
	fr := http2.NewFramer(c, c)
	fr.WriteSettings()
	fr.WriteWindowUpdate(0, 1<<30) // the responses' DATA must never wait
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "localhost"}, {":path", "/small"}, {"user-agent", "bench"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	block := hb.Bytes()
	id := uint32(1)
	// wait reads frames until stream id ends.
	wait := func(id uint32) {
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				b.Fatal(err)
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					fr.WriteSettingsAck()
				}
			case *http2.RSTStreamFrame:
				b.Fatalf("stream %d reset: %v", f.StreamID, f.ErrCode)
			}
			if f.Header().StreamID == id && f.Header().Flags.Has(http2.FlagDataEndStream) {
				return
			}
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}); err != nil {
			b.Fatal(err)
		}
		wait(id)
		id += 2
	}
	b.StopTimer()
	c.Close()
	<-served
}

// TestServerStreamsWindowTimeout: a client that opens no flow-control
// window makes a response write fail after the stream's client timeout
// instead of waiting for ever; the first bytes a window of 1 allows go
// out (h2spec 6.9.1's case, exactly).
func TestServerStreamsWindowTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := NewServer(Options{Stream: hstream.Options{Client: 300 * time.Millisecond}})
	defer s.Shutdown()
	writeErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.ServeConnStreams(c, false, func(st *ServerStream) {
			writeErr <- st.WriteHead(&msg.Head{Status: 200, Body: msg.BodyLength, ContentLength: 5}, []byte("hello"), true)
		})
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, Preface)
	fr := http2.NewFramer(c, c)
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1})
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "localhost"}, {":path", "/"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
	start := time.Now()
	select {
	case err := <-writeErr:
		if err == nil {
			t.Fatal("a response of 5 bytes was written whole through a window of 1")
		}
		if d := time.Since(start); d < 200*time.Millisecond {
			t.Fatalf("the write failed after %v, before the client timeout", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the write still waits for a window after 10 s")
	}
	var data []byte
	reset := false
	for !reset {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %q: %v", data, err)
		}
		switch f := f.(type) {
		case *http2.DataFrame:
			data = append(data, f.Data()...)
		case *http2.RSTStreamFrame:
			reset = true
		}
	}
	if string(data) != "h" {
		t.Fatalf("DATA before the reset: %q, want the 1 byte the window allows", data)
	}
}

// TestServerStreamsContinue: a request expecting 100-continue gets its
// 100 when the handler decides to read the body, and the body after it.
func TestServerStreamsContinue(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := NewServer(Options{})
	defer s.Shutdown()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.ServeConnStreams(c, false, func(st *ServerStream) {
			if err := st.Continue(); err != nil {
				return
			}
			echo(st)
		})
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, Preface)
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "localhost"}, {":path", "/"},
		{"content-length", "5"}, {"expect", "100-continue"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true})
	var statuses []string
	var body []byte
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("statuses %v, body %q: %v", statuses, body, err)
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			statuses = append(statuses, f.PseudoValue("status"))
			if f.PseudoValue("status") == "100" {
				fr.WriteData(1, true, []byte("hello"))
			}
		case *http2.DataFrame:
			body = append(body, f.Data()...)
		case *http2.RSTStreamFrame:
			t.Fatalf("stream reset: %v", f.ErrCode)
		}
		if f.Header().StreamID == 1 && f.Header().Flags.Has(http2.FlagDataEndStream) {
			break
		}
	}
	if strings.Join(statuses, ",") != "100,200" || string(body) != "hello" {
		t.Fatalf("statuses %v, body %q; want 100 then 200 with the body echoed", statuses, body)
	}
}

// TestServerStreamsHandlerPanic: a handler's panic resets its stream; the
// connection and the process go on.
func TestServerStreamsHandlerPanic(t *testing.T) {
	_, client, base := serveOwn(t, Options{}, func(st *ServerStream) {
		if string(st.Head().Path) == "/panic" {
			panic("test panic")
		}
		echo(st)
	})
	if resp, err := client.Get(base + "/panic"); err == nil {
		resp.Body.Close()
		t.Fatalf("a panicking handler answered %d, want a stream reset", resp.StatusCode)
	}
	resp, err := client.Get(base + "/after")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("after the panic: status %d", resp.StatusCode)
	}
}
