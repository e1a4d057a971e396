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
