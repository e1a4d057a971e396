package h1

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/strata-proxy/strata/layers"
	"github.com/strata-proxy/strata/layers/msg"
)

// FuzzServerConn feeds arbitrary client bytes to the HTTP/1 mux stage over
// a pipe and serves every request it yields with a small response. Whatever
// the bytes, the stage must not panic or hang, and it must never yield more
// requests than the input holds head terminators (a request it made up
// would be a smuggling vector).
func FuzzServerConn(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
		"GET / HTTP/1.0\r\n\r\n",
		"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
		"garbage\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	pool := layers.NewBufferPool(4 << 10)
	f.Fuzz(func(t *testing.T, data []byte) {
		client, server := net.Pipe()
		defer client.Close()
		go func() {
			client.Write(data)
			// Leave the read side open a moment so responses drain, then
			// close as a client that is done would.
			time.Sleep(5 * time.Millisecond)
			client.Close()
		}()
		go io.Copy(io.Discard, client)

		sc := NewServerConn(server, ServerOptions{
			Buffers: pool, Request: 200 * time.Millisecond, KeepAlive: 200 * time.Millisecond,
			Client: 200 * time.Millisecond, Start: time.Now(),
		})
		done := make(chan int, 1)
		go func() {
			defer server.Close()
			defer sc.Close()
			done <- serveAll(sc)
		}()
		select {
		case served := <-done:
			if max := bytes.Count(data, []byte("\r\n\r\n")); served > max {
				t.Fatalf("served %d requests from input holding %d head terminators", served, max)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the stage hung")
		}
	})
}

// serveAll answers every request of sc with "ok" and returns how many it
// served; it stops at the first error, a close, or after 1000 steps.
func serveAll(sc *ServerConn) int {
	resp := msg.Head{Status: 200, Major: 1, Minor: 1, Body: msg.BodyLength, ContentLength: 2}
	served := 0
	for step := 0; step < 1000; step++ {
		r, err := sc.Next()
		if err != nil {
			var he *Error
			if errors.As(err, &he) {
				sc.WriteError(&msg.Head{Status: he.Status, Major: 1, Minor: 1, Body: msg.BodyLength, ContentLength: 0}, nil)
			}
			return served
		}
		if r == nil {
			continue
		}
		served++
		for {
			_, err := r.ReadBody()
			if err != nil {
				break
			}
		}
		if r.WriteHead(&resp, []byte("ok"), true) != nil || !sc.Finish() {
			return served
		}
	}
	return served
}
