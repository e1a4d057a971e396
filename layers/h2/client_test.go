package h2

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/strata-proxy/strata/layers"
	"github.com/strata-proxy/strata/layers/msg"
)

// serveH2C runs handler as an h2c server (prior knowledge) on a loopback
// listener until the test ends, and returns a Dial to it and a count of
// the connections it accepted.
func serveH2C(t *testing.T, o *http2.Server, handler http.Handler) (Dial, *int32s) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &int32s{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.add()
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				o.ServeConn(c, &http2.ServeConnOpts{Handler: handler})
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	addr := ln.Addr().String()
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}, n
}

type int32s struct {
	mu sync.Mutex
	n  int
}

func (c *int32s) add() { c.mu.Lock(); c.n++; c.mu.Unlock() }
func (c *int32s) get() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func newStreamOn(t *testing.T, c *Client, dial Dial) *Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, _, err := c.Stream(ctx, dial, false, StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func head(method, path string, body msg.BodyKind, fields ...string) *msg.Head {
	h := &msg.Head{Method: []byte(method), Path: []byte(path), Authority: []byte("backend.test"),
		Major: 1, Minor: 1, Body: body, ContentLength: -1}
	for i := 0; i+1 < len(fields); i += 2 {
		h.Fields = append(h.Fields, msg.Field{Name: []byte(fields[i]), Value: []byte(fields[i+1])})
	}
	return h
}

// TestStreamExchange sends a streamed request with trailers and reads the
// response in the session's form: the fields as the server sent them
// (framing and connection fields aside), the body whole, the trailers.
func TestStreamExchange(t *testing.T) {
	dial, _ := serveH2C(t, &http2.Server{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Sum")
		w.Header().Set("X-Method", r.Method+" "+r.URL.RequestURI()+" "+r.Host)
		w.Header().Set("X-Te", r.Header.Get("Te"))
		w.Header().Set("X-Ua", fmt.Sprint(r.Header["User-Agent"]))
		w.Header().Set("X-Fields", r.Header.Get("X-A")+"|"+strings.Join(r.Header["X-B"], ","))
		w.WriteHeader(201)
		w.(http.Flusher).Flush()
		w.Write(body)
		w.Header().Set("X-Sum", fmt.Sprintf("%d:%s", len(body), r.Trailer.Get("X-Req-Sum")))
	}))
	c := NewClient(ClientOptions{})
	st := newStreamOn(t, c, dial)
	h := head("POST", "/p/a?q=1", msg.BodyChunked, "X-A", "1", "Connection", "x", "X-B", "2", "x-b", "3", "Trailer", "X-Req-Sum")
	if err := st.WriteRequest(h, []byte("hello "), false); err != nil {
		t.Fatal(err)
	}
	if err := st.WriteBody([]byte("world")); err != nil {
		t.Fatal(err)
	}
	if err := st.EndBody(msg.Fields{{Name: []byte("X-Req-Sum"), Value: []byte("11")}}); err != nil {
		t.Fatal(err)
	}
	resp, err := st.ReadHead(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 201 || resp.Body != msg.BodyChunked || resp.Major != 2 {
		t.Fatalf("status %d, body %v, version %d", resp.Status, resp.Body, resp.Major)
	}
	want := map[string]string{
		"X-Method": "POST /p/a?q=1 backend.test", "X-Te": "trailers", "X-Ua": "[]", "X-Fields": "1|2,3", "Trailer": "X-Sum",
	}
	for name, v := range want {
		if got := string(resp.Get(name)); got != v {
			t.Errorf("response field %s = %q, want %q", name, got, v)
		}
	}
	if resp.Has("Content-Length") {
		t.Error("the head carries a framing field")
	}
	var body []byte
	for {
		p, err := st.ReadBody(5 * time.Second)
		body = append(body, p...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if string(body) != "hello world" {
		t.Fatalf("body %q", body)
	}
	if got := string(st.Trailers().Get("X-Sum")); got != "11:11" {
		t.Fatalf("trailer X-Sum = %q, want 11:11 (trailers %v)", got, st.Trailers())
	}
	if !st.Reusable() {
		t.Error("a complete exchange is not reported clean")
	}
	st.Close()
	if n := c.Conns(); n != 1 {
		t.Fatalf("%d shared connections after the exchange, want 1", n)
	}
}

// TestStreamTimeoutsKeepTheStream: a read that times out leaves the
// stream waiting; reading again gets the data.
func TestStreamTimeoutsKeepTheStream(t *testing.T) {
	release := make(chan struct{})
	dial, _ := serveH2C(t, &http2.Server{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "late")
	}))
	c := NewClient(ClientOptions{})
	st := newStreamOn(t, c, dial)
	defer st.Close()
	if err := st.WriteRequest(head("GET", "/", msg.BodyNone), nil, true); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ReadHead(30 * time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ReadHead: %v, want a timeout", err)
	}
	release <- struct{}{}
	if resp, err := st.ReadHead(5 * time.Second); err != nil || resp.Status != 200 {
		t.Fatalf("ReadHead again: %v", err)
	}
	if p, err := st.ReadBody(30 * time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) || len(p) > 0 {
		t.Fatalf("ReadBody: %q, %v, want a timeout", p, err)
	}
	close(release)
	var body []byte
	for {
		p, err := st.ReadBody(5 * time.Second)
		body = append(body, p...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if string(body) != "late" {
		t.Fatalf("body %q", body)
	}
}

// TestStreamAbortLeavesTheConnection: aborting one stream (the session's
// Conn().Close) resets it alone; another stream on the same connection
// completes, and the connection stays shared.
func TestStreamAbortLeavesTheConnection(t *testing.T) {
	reset := make(chan error, 1)
	dial, accepted := serveH2C(t, &http2.Server{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			reset <- r.Context().Err()
			return
		}
		io.WriteString(w, "fine")
	}))
	c := NewClient(ClientOptions{})
	slow := newStreamOn(t, c, dial)
	if err := slow.WriteRequest(head("GET", "/slow", msg.BodyNone), nil, true); err != nil {
		t.Fatal(err)
	}
	if _, err := slow.ReadHead(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	other := newStreamOn(t, c, dial)
	slow.Conn().Close()
	select {
	case <-reset:
	case <-time.After(5 * time.Second):
		t.Fatal("the server's stream was not reset")
	}
	if _, err := slow.ReadBody(5 * time.Second); err == nil || err == io.EOF {
		t.Fatalf("aborted stream read: %v, want an error", err)
	}
	slow.Close()
	if err := other.WriteRequest(head("GET", "/", msg.BodyNone), nil, true); err != nil {
		t.Fatal(err)
	}
	if resp, err := other.ReadHead(5 * time.Second); err != nil || resp.Status != 200 {
		t.Fatalf("the other stream: %v", err)
	}
	other.Close()
	if n, a := c.Conns(), accepted.get(); n != 1 || a != 1 {
		t.Fatalf("%d shared connections, %d accepted; want 1 and 1", n, a)
	}
}

// TestStreamRefused: a REFUSED_STREAM, or a GOAWAY that leaves the stream
// out, is reported as unprocessed, which lets the session send the request
// again.
func TestStreamRefused(t *testing.T) {
	t.Run("REFUSED_STREAM", func(t *testing.T) {
		testStreamRefused(t, func(fr *http2.Framer, id uint32) { fr.WriteRSTStream(id, http2.ErrCodeRefusedStream) })
	})
	t.Run("GOAWAY", func(t *testing.T) {
		testStreamRefused(t, func(fr *http2.Framer, id uint32) { fr.WriteGoAway(0, http2.ErrCodeNo, nil) })
	})
}

func testStreamRefused(t *testing.T, refuse func(fr *http2.Framer, id uint32)) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		preface := make([]byte, len(http2.ClientPreface))
		if _, err := io.ReadFull(c, preface); err != nil {
			return
		}
		fr := http2.NewFramer(c, c)
		fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
		fr.WriteSettings()
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					fr.WriteSettingsAck()
				}
			case *http2.PingFrame:
				if !f.IsAck() {
					fr.WritePing(true, f.Data)
				}
			case *http2.MetaHeadersFrame:
				refuse(fr, f.StreamID)
			}
		}
	}()
	dial := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", ln.Addr().String())
	}
	st := newStreamOn(t, NewClient(ClientOptions{}), dial)
	defer st.Close()
	if err := st.WriteRequest(head("POST", "/", msg.BodyNone), nil, true); err != nil {
		t.Fatal(err)
	}
	_, err = st.ReadHead(5 * time.Second)
	if !errors.Is(err, layers.ErrUnprocessed) {
		t.Fatalf("ReadHead: %v, want it marked unprocessed", err)
	}
	if st.Responded() {
		t.Fatal("a refused stream is reported as responded")
	}
}

// TestStreamUpgrades: HTTP/2 has no protocol switch to forward: an
// upgrade offer is left out (the server answers the plain request), and
// CONNECT is refused.
func TestStreamUpgrades(t *testing.T) {
	dial, _ := serveH2C(t, &http2.Server{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Upgrade", r.Header.Get("Upgrade"))
		w.WriteHeader(426)
	}))
	c := NewClient(ClientOptions{})
	st := newStreamOn(t, c, dial)
	h := head("GET", "/ws", msg.BodyNone)
	h.Upgrade = []byte("websocket")
	if err := st.WriteRequest(h, nil, true); err != nil {
		t.Fatal(err)
	}
	resp, err := st.ReadHead(5 * time.Second)
	if err != nil || resp.Status != 426 || len(resp.Get("X-Upgrade")) != 0 {
		t.Fatalf("upgrade offer: %v, %+v", err, resp)
	}
	st.Close()
	st = newStreamOn(t, c, dial)
	defer st.Close()
	if err := st.WriteRequest(&msg.Head{Method: []byte("CONNECT"), Authority: []byte("example.com:443")}, nil, true); !errors.Is(err, errNoTunnel) {
		t.Errorf("CONNECT: %v, want a refusal", err)
	}
}

// TestStreamNeedsALPN: a TLS server that does not choose h2 (one without
// ALPN; one that offers other protocols fails the handshake itself) is refused
// before any request goes out.
func TestStreamNeedsALPN(t *testing.T) {
	cert := selfSigned(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c.(*tls.Conn).Handshake()
				io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	}()
	dial := func(ctx context.Context) (net.Conn, error) {
		d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}}
		return d.DialContext(ctx, "tcp", ln.Addr().String())
	}
	c := NewClient(ClientOptions{})
	_, _, err = c.Stream(context.Background(), dial, false, StreamOptions{})
	if !errors.Is(err, ErrNotH2) {
		t.Fatalf("Stream: %v, want ErrNotH2", err)
	}
	if c.Conns() != 0 {
		t.Fatal("the refused connection is shared")
	}
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"backend.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// BenchmarkStreamGET is one GET and its small response on a shared h2c
// connection, as a session makes it (the server's cost included).
func BenchmarkStreamGET(b *testing.B) {
	dial := serveH2CForBench(b)
	c := NewClient(ClientOptions{})
	h := head("GET", "/small", msg.BodyNone, "User-Agent", "bench")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		st, _, err := c.Stream(ctx, dial, false, StreamOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if err := st.WriteRequest(h, nil, true); err != nil {
			b.Fatal(err)
		}
		if _, err := st.ReadHead(0); err != nil {
			b.Fatal(err)
		}
		for {
			_, err := st.ReadBody(0)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		st.Close()
	}
}

func serveH2CForBench(b *testing.B) Dial {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := &http2.Server{}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.ServeConn(c, &http2.ServeConnOpts{Handler: handler})
		}
	}()
	b.Cleanup(func() { ln.Close() })
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", ln.Addr().String())
	}
}

// TestStreamInterimResponses: 1xx responses other than 100 come before the
// final head, each with its fields.
func TestStreamInterimResponses(t *testing.T) {
	dial, _ := serveH2C(t, &http2.Server{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</a.css>; rel=preload")
		w.WriteHeader(103)
		w.Header().Set("Link", "</b.js>; rel=preload")
		w.WriteHeader(103)
		w.Header().Del("Link")
		io.WriteString(w, "final")
	}))
	st := newStreamOn(t, NewClient(ClientOptions{}), dial)
	defer st.Close()
	if err := st.WriteRequest(head("GET", "/", msg.BodyNone), nil, true); err != nil {
		t.Fatal(err)
	}
	for _, link := range []string{"</a.css>; rel=preload", "</b.js>; rel=preload"} {
		h, err := st.ReadHead(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if h.Status != 103 || string(h.Get("Link")) != link {
			t.Fatalf("interim head: %d, Link %q, want 103 with %q", h.Status, h.Get("Link"), link)
		}
	}
	h, err := st.ReadHead(5 * time.Second)
	if err != nil || h.Status != 200 {
		t.Fatalf("final head: %v, %+v", err, h)
	}
}
