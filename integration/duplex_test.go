package integration

import (
	"bufio"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-proxy/strata/certs"
)

// startDuplexBackend serves /echo, which streams the request body back
// as it reads it (it answers before the body is in), and /refuse, which
// answers 413 without reading the body.
func startDuplexBackend(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", streamEcho)
	mux.HandleFunc("/refuse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		http.Error(w, "refused early", http.StatusRequestEntityTooLarge)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// TestHTTPFullDuplex runs a 64 MiB upload through an echo backend that
// streams it back while it reads (byte-exact both ways), and a 64 MiB
// upload that the backend refuses early with 413 (the client gets the
// 413, nothing hangs), through a plain and a TLS front.
func TestHTTPFullDuplex(t *testing.T) {
	p := newPKI(t)
	const size = 64 << 20
	for _, front := range []string{"http", "https"} {
		t.Run(front, func(t *testing.T) {
			backend := startDuplexBackend(t)
			addr := freeAddr(t)
			var tlsFront string
			if front == "https" {
				cert, key := p.issue(t, "front", certs.IssueOptions{}, "localhost")
				tlsFront = fmt.Sprintf("    tls: { certificates: [ { cert: %q, key: %q } ] }\n", cert, key)
			}
			_, logs := startStrata(t, fmt.Sprintf(`frontends:
  web:
    bind: %q
    mode: http
%s    default_backend: app
backends:
  app:
    servers: [ { address: %q } ]
`, addr, tlsFront, backend))
			tlsConf := &tls.Config{RootCAs: p.pool(), ServerName: "localhost"}
			client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConf}}
			t.Cleanup(client.CloseIdleConnections)

			req, err := http.NewRequest("POST", front+"://"+addr+"/echo", newStream(3, size))
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = size
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			n, err := io.Copy(h, resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("echo: status %d, %d bytes: %v", resp.StatusCode, n, err)
			}
			if n != size || fmt.Sprintf("%x", h.Sum(nil)) != fmt.Sprintf("%x", digest(3, size)) {
				t.Fatalf("echo: got %d bytes back, want %d byte-exact", n, size)
			}
			logs.waitAccess(t, func(m map[string]any) bool {
				return m["path"] == "/echo" && m["bytes_in"] == float64(size) && m["bytes_out"] == float64(size)
			})

			// The early 413, from a raw client that keeps uploading until
			// the proxy stops reading.
			var c net.Conn
			if front == "https" {
				c, err = tls.Dial("tcp", addr, tlsConf)
			} else {
				c, err = net.Dial("tcp", addr)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			fmt.Fprintf(c, "POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size)
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				io.Copy(c, newStream(4, size))
			}()
			resp, err = http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("refuse: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 413 || !strings.Contains(string(body), "refused early") {
				t.Fatalf("refuse: got %d %q, want the backend's 413", resp.StatusCode, body)
			}
			wg.Wait() // the proxy closed the connection: the upload ends
			logs.waitAccess(t, func(m map[string]any) bool { return m["path"] == "/refuse" && m["status"] == float64(413) })
		})
	}
}

// streamEcho writes the request body back as it reads it, flushing each
// piece: a backend that answers while the client still uploads (HTTP/1.1
// full duplex, or an HTTP/2 stream).
func streamEcho(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	rc.EnableFullDuplex() // HTTP/2 streams are full duplex already (and say unsupported)
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
