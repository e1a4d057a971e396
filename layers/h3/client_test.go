package h3

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/strata-proxy/strata/layers/msg"
)

// h3Server is a quic-go HTTP/3 server for the client tests: /echo hashes
// the request body and trailer, /trailer answers with a trailer, /slow
// answers after a while, /nocontent answers 204.
type h3Server struct {
	addr  string
	conns atomic.Int32
}

func startH3Server(t *testing.T, p *testPKI) *h3Server {
	t.Helper()
	s := &h3Server{}
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		w.Header().Set("X-Len", fmt.Sprint(n))
		w.Header().Set("X-Sha", fmt.Sprintf("%x", h.Sum(nil)))
		w.Header().Set("X-Trailer", r.Trailer.Get("X-Req-Trailer"))
		w.Header().Set("X-Seen", r.Method+" "+r.Host+" "+r.RequestURI+" "+r.Header.Get("X-A"))
		io.WriteString(w, "echoed")
	})
	mux.HandleFunc("/trailer", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Done")
		io.WriteString(w, "body")
		w.Header().Set("X-Done", "yes")
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(300 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "late")
	})
	mux.HandleFunc("/nocontent", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http3.Server{
		Handler:   mux,
		TLSConfig: http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{p.leaf}}),
		ConnContext: func(ctx context.Context, c *quic.Conn) context.Context {
			s.conns.Add(1)
			return ctx
		},
	}
	go srv.Serve(pc)
	t.Cleanup(func() { srv.Close(); pc.Close() })
	s.addr = pc.LocalAddr().String()
	return s
}

func newTestClient(t *testing.T, p *testPKI, addr string) *Client {
	t.Helper()
	c := NewClient(ClientOptions{Address: addr, TLS: &tls.Config{RootCAs: p.pool, ServerName: "localhost"}})
	t.Cleanup(func() { c.Close() })
	return c
}

func openStream(t *testing.T, c *Client) *ClientStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func requestHead(method, path string, body msg.BodyKind, length int64, fields ...string) *msg.Head {
	h := &msg.Head{Method: []byte(method), Authority: []byte("backend.test"), Path: []byte(path), Body: body, ContentLength: length, Major: 1, Minor: 1}
	for i := 0; i+1 < len(fields); i += 2 {
		h.Add([]byte(fields[i]), []byte(fields[i+1]))
	}
	return h
}

// readAll reads the response body to its end.
func readAll(t *testing.T, s *ClientStream) string {
	t.Helper()
	var b strings.Builder
	for range 1 << 20 {
		p, err := s.ReadBody(5 * time.Second)
		b.Write(p)
		if err == io.EOF {
			return b.String()
		}
		if err != nil {
			t.Fatalf("reading the response body: %v", err)
		}
	}
	t.Fatal("the response body never ended")
	return ""
}

func field(h *msg.Head, name string) string { return string(h.Get(name)) }

func TestClientExchanges(t *testing.T) {
	p := newTestPKI(t)
	srv := startH3Server(t, p)
	c := newTestClient(t, p, srv.addr)

	t.Run("GET", func(t *testing.T) {
		s := openStream(t, c)
		// Connection-specific fields are not sent: HTTP/3 forbids them.
		if err := s.WriteRequest(requestHead("GET", "/echo?q=1", msg.BodyNone, -1, "X-A", "b", "Connection", "close", "Host", "backend.test"), nil, true); err != nil {
			t.Fatal(err)
		}
		h, err := s.ReadHead(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if h.Status != 200 || h.Major != 3 || field(h, "X-Seen") != "GET backend.test /echo?q=1 b" || h.Body != msg.BodyLength || h.ContentLength != 6 {
			t.Fatalf("head %d HTTP/%d, X-Seen %q, body %v/%d", h.Status, h.Major, field(h, "X-Seen"), h.Body, h.ContentLength)
		}
		if h.Has("Content-Length") {
			t.Error("Content-Length is framing and must not be among the fields")
		}
		if body := readAll(t, s); body != "echoed" || !s.Responded() {
			t.Errorf("body %q", body)
		}
	})
	t.Run("POST in parts", func(t *testing.T) {
		s := openStream(t, c)
		data := strings.Repeat("0123456789", 10_000)
		if err := s.WriteRequest(requestHead("POST", "/echo", msg.BodyLength, int64(len(data))), []byte(data[:10]), false); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteBody([]byte(data[10:])); err != nil {
			t.Fatal(err)
		}
		if err := s.EndBody(nil); err != nil {
			t.Fatal(err)
		}
		h, err := s.ReadHead(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("%x", sha256.Sum256([]byte(data))); field(h, "X-Sha") != want || field(h, "X-Len") != fmt.Sprint(len(data)) {
			t.Errorf("the server received %s bytes, a different body", field(h, "X-Len"))
		}
		readAll(t, s)
	})
	t.Run("trailers both ways", func(t *testing.T) {
		s := openStream(t, c)
		if err := s.WriteRequest(requestHead("POST", "/echo", msg.BodyChunked, -1), []byte("abc"), false); err != nil {
			t.Fatal(err)
		}
		if err := s.EndBody(msg.Fields{{Name: []byte("X-Req-Trailer"), Value: []byte("t1")}}); err != nil {
			t.Fatal(err)
		}
		h, err := s.ReadHead(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if field(h, "X-Trailer") != "t1" || field(h, "X-Len") != "3" {
			t.Errorf("the server saw trailer %q and %s bytes", field(h, "X-Trailer"), field(h, "X-Len"))
		}
		readAll(t, s)

		s = openStream(t, c)
		s.WriteRequest(requestHead("GET", "/trailer", msg.BodyNone, -1), nil, true)
		h, err = s.ReadHead(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if !h.HasTrailers || h.Body == msg.BodyNone {
			t.Errorf("head: trailers %v, body %v", h.HasTrailers, h.Body)
		}
		if body := readAll(t, s); body != "body" || string(s.Trailers().Get("X-Done")) != "yes" {
			t.Errorf("body %q, trailers %v", body, s.Trailers())
		}
	})
	t.Run("HEAD and 204 have no body", func(t *testing.T) {
		s := openStream(t, c)
		s.WriteRequest(requestHead("HEAD", "/echo", msg.BodyNone, -1), nil, true)
		if h, err := s.ReadHead(5 * time.Second); err != nil || h.Body != msg.BodyNone || h.ContentLength != 6 {
			t.Errorf("HEAD: %v, body %v, declared length %d", err, h.Body, h.ContentLength)
		}
		s = openStream(t, c)
		s.WriteRequest(requestHead("GET", "/nocontent", msg.BodyNone, -1), nil, true)
		if h, err := s.ReadHead(5 * time.Second); err != nil || h.Status != 204 || h.Body != msg.BodyNone {
			t.Errorf("204: %v, %+v", err, h)
		}
	})
	t.Run("a timeout leaves the stream as it was", func(t *testing.T) {
		s := openStream(t, c)
		s.WriteRequest(requestHead("GET", "/slow", msg.BodyNone, -1), nil, true)
		if _, err := s.ReadHead(20 * time.Millisecond); !errors.Is(err, errReadTimeout) {
			t.Fatalf("ReadHead before the answer: %v, want a timeout", err)
		}
		if h, err := s.ReadHead(5 * time.Second); err != nil || h.Status != 200 {
			t.Fatalf("ReadHead after the timeout: %v", err)
		}
		if body := readAll(t, s); body != "late" {
			t.Errorf("body %q", body)
		}
	})
	t.Run("abort through Conn", func(t *testing.T) {
		s := openStream(t, c)
		s.WriteRequest(requestHead("GET", "/slow", msg.BodyNone, -1), nil, true)
		time.AfterFunc(20*time.Millisecond, func() { s.Conn().SetDeadline(time.Unix(1, 0)) })
		if _, err := s.ReadHead(5 * time.Second); err == nil {
			t.Fatal("an aborted stream still returned a response")
		}
	})
	if n := srv.conns.Load(); n != 1 || c.Conns() != 1 {
		t.Errorf("the streams used %d connections (client holds %d), want one shared", n, c.Conns())
	}
}

// TestClientUnreachable: a server that does not answer QUIC makes Stream
// fail with ErrUnreachable, and for the backoff period at once, so that
// sessions fall back to TCP without waiting.
func TestClientUnreachable(t *testing.T) {
	p := newTestPKI(t)
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}) // takes datagrams, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c := newTestClient(t, p, pc.LocalAddr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := c.Stream(ctx); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("first Stream: %v, want ErrUnreachable", err)
	}
	start := time.Now()
	if _, err := c.Stream(context.Background()); !errors.Is(err, ErrUnreachable) || time.Since(start) > 50*time.Millisecond {
		t.Fatalf("Stream during the backoff: %v after %v, want ErrUnreachable at once", err, time.Since(start))
	}
}

// TestClientAfterGoaway: once the server has sent GOAWAY on the shared
// connection, a request that cannot open a stream there makes the Client
// dial a new connection for the next one.
func TestClientAfterGoaway(t *testing.T) {
	p := newTestPKI(t)
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	release := make(chan struct{})
	var conns atomic.Int32
	newServer := func() *http3.Server {
		return &http3.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/hold" {
					<-release
				}
				io.WriteString(w, "ok")
			}),
			TLSConfig:   http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{p.leaf}}),
			ConnContext: func(ctx context.Context, c *quic.Conn) context.Context { conns.Add(1); return ctx },
		}
	}
	// A QUIC listener the test owns, so that a graceful shutdown of the
	// first server (GOAWAY) leaves it open for the second.
	ln, err := quic.ListenEarly(pc, http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{p.leaf}}), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	first := newServer()
	defer first.Close()
	accept := make(chan *quic.Conn, 4)
	var accepted []*quic.Conn
	defer func() {
		// Whatever a lost packet left open on a loaded machine.
		for _, qc := range accepted {
			qc.CloseWithError(0, "")
		}
	}()
	go func() {
		for {
			qc, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			accept <- qc
		}
	}()
	c := newTestClient(t, p, pc.LocalAddr().String())
	held := openStream(t, c)
	held.WriteRequest(requestHead("GET", "/hold", msg.BodyNone, -1), nil, true)
	qc1 := <-accept
	accepted = append(accepted, qc1)
	go first.ServeQUICConn(qc1)
	time.Sleep(50 * time.Millisecond)
	go first.Shutdown(context.Background()) // GOAWAY; /hold keeps the connection open
	time.Sleep(50 * time.Millisecond)

	s := openStream(t, c)
	s.WriteRequest(requestHead("GET", "/", msg.BodyNone, -1), nil, true)
	if _, err := s.ReadHead(5 * time.Second); err == nil {
		t.Fatal("a new stream was served on a connection after GOAWAY")
	}
	second := newServer()
	defer second.Close()
	qc2 := make(chan *quic.Conn, 1)
	go func() {
		qc := <-accept
		qc2 <- qc
		second.ServeQUICConn(qc)
	}()
	s = openStream(t, c)
	s.WriteRequest(requestHead("GET", "/", msg.BodyNone, -1), nil, true)
	if h, err := s.ReadHead(5 * time.Second); err != nil || h.Status != 200 {
		t.Fatalf("after GOAWAY the next stream failed: %v", err)
	}
	close(release)
	if h, err := held.ReadHead(5 * time.Second); err != nil || h.Status != 200 {
		t.Errorf("the stream in flight at GOAWAY failed: %v", err)
	}
	accepted = append(accepted, <-qc2)
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections served, want 2 (a new one after GOAWAY)", n)
	}
}
