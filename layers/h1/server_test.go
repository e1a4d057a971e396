package h1

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/strata-proxy/strata/layers"
	"github.com/strata-proxy/strata/layers/msg"
)

// TestServerConnIdleHoldsNoBuffer: between requests the stage holds no
// pooled buffer, and answers with the framing the request allows.
func TestServerConnIdleHoldsNoBuffer(t *testing.T) {
	cli, srv := net.Pipe()
	t.Cleanup(func() { cli.Close(); srv.Close() })
	sc := NewServerConn(srv, ServerOptions{Buffers: layers.NewBufferPool(0), Request: time.Second})
	go io.WriteString(cli, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	var r *Request
	var err error
	for r == nil && err == nil {
		r, err = sc.Next()
	}
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Head().Path) != "/a" {
		t.Fatalf("path %q", r.Head().Path)
	}
	resp := &msg.Head{Status: 200, Body: msg.BodyUntilClose, ContentLength: -1}
	go func() {
		if err := r.WriteHead(resp, []byte("hello"), true); err != nil {
			t.Error(err)
		}
	}()
	res, err := http.ReadResponse(bufio.NewReader(cli), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	if string(body) != "hello" || len(res.TransferEncoding) != 1 || res.Close {
		t.Fatalf("got %q %v close=%v", body, res.TransferEncoding, res.Close)
	}
	if !sc.Finish() {
		t.Fatal("connection not kept alive")
	}
	if sc.rd.buf != nil || sc.wr.scratch != nil {
		t.Fatal("an idle connection holds a pooled buffer")
	}
}

// TestServerConnIdle: with a grace, Next gives up a wait for a request's
// first byte with ErrIdle, holding no buffer; WaitIdle waits on at the
// socket (plain TCP and TLS over TCP alike have a raw socket) and the next
// Next returns the request; the head timer starts at the accept for the
// first request.
func TestServerConnIdle(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	start := time.Now()
	const grace = 30 * time.Millisecond
	sc := NewServerConn(srv, ServerOptions{Buffers: layers.NewBufferPool(0), Request: 5 * time.Second, Start: start, Grace: grace})
	if sc.rd.raw == nil || !sc.rd.waitInPool {
		t.Fatal("a TCP connection should wait on its socket")
	}
	r, err := sc.Next()
	if r != nil || err != ErrIdle {
		t.Fatalf("Next = %v, %v; want ErrIdle", r, err)
	}
	if took := time.Since(start); took < grace {
		t.Errorf("ErrIdle after %v, before the grace %v", took, grace)
	}
	if sc.rd.buf != nil || sc.rd.probe != nil {
		t.Fatal("an idle connection holds a buffer")
	}
	go func() {
		time.Sleep(2 * grace)
		io.WriteString(cli, "GET /late HTTP/1.1\r\nHost: x\r\n\r\n")
	}()
	sc.WaitIdle()
	for r == nil {
		if r, err = sc.Next(); err != nil {
			t.Fatal(err)
		}
	}
	if string(r.Head().Path) != "/late" {
		t.Fatalf("path %q", r.Head().Path)
	}
	if hs, _ := sc.HeadTimes(); !hs.Equal(start) {
		t.Errorf("head start %v, want the accept time %v", hs, start)
	}
}
