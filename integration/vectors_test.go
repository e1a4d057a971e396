package integration

import (
	"bytes"
	"fmt"
	"github.com/strata-proxy/strata/layers/h1/h1test"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// vector is one of the shared HTTP/1 vectors (layers/h1/h1test).
type vector = h1test.Vector

// requestVectors are the vectors that are requests (the others test
// response parsing).
func requestVectors(t *testing.T) []vector {
	t.Helper()
	vs, err := h1test.Vectors()
	if err != nil {
		t.Fatal(err)
	}
	var out []vector
	for _, v := range vs {
		if !v.Response {
			out = append(out, v)
		}
	}
	return out
}

// recorder is a backend that records every byte a proxy forwards to it and
// answers each connection's first request head with a small 200 and
// Connection: close.
type recorder struct {
	addr string
	mu   sync.Mutex
	got  bytes.Buffer
	open int
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{}
	r.addr = serve(t, func(c net.Conn) {
		r.mu.Lock()
		r.open++
		r.mu.Unlock()
		defer func() {
			r.mu.Lock()
			r.open--
			r.mu.Unlock()
		}()
		var seen []byte
		answered := false
		buf := make([]byte, 4096)
		for {
			// After the answer, keep recording briefly: a smuggled second
			// request would arrive behind the first one.
			wait := 3 * time.Second
			if answered {
				wait = 100 * time.Millisecond
			}
			c.SetReadDeadline(time.Now().Add(wait))
			n, err := c.Read(buf)
			if n > 0 {
				r.mu.Lock()
				r.got.Write(buf[:n])
				r.mu.Unlock()
				seen = append(seen, buf[:n]...)
				if !answered && bytes.Contains(seen, []byte("\r\n\r\n")) {
					answered = true
					// Connection: close, so that no proxy pools this
					// connection and every vector gets a connection of its
					// own.
					c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"))
				}
			}
			if err != nil {
				return
			}
		}
	})
	return r
}

// take returns and forgets what was recorded, once no proxy connection to
// the recorder is open any more (or after a short wait).
func (r *recorder) take() []byte {
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		open := r.open
		r.mu.Unlock()
		if open == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	b := bytes.Clone(r.got.Bytes())
	r.got.Reset()
	return b
}

// outcome is what one proxy did with one vector.
type outcome struct {
	forwarded []byte // what reached the backend; empty = refused
	status    int    // the status the client got first, 0 = none
}

// sendVector sends v's bytes to the proxy at addr, reads what comes back
// until the proxy closes or goes quiet, and returns what reached rec.
func sendVector(t *testing.T, addr string, rec *recorder, v vector) outcome {
	t.Helper()
	rec.take()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Errorf("%s: %v", v.Name, err)
		return outcome{}
	}
	c.Write(v.In)
	var resp []byte
	buf := make([]byte, 4096)
	for !complete(resp) {
		c.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
		n, err := c.Read(buf)
		resp = append(resp, buf[:n]...)
		if err != nil {
			break
		}
	}
	c.Close()
	o := outcome{forwarded: rec.take()}
	if f := strings.Fields(string(resp)); len(f) > 1 && strings.HasPrefix(f[0], "HTTP/") {
		o.status, _ = strconv.Atoi(f[1])
	}
	return o
}

// complete reports whether resp holds a whole response with a
// Content-Length body, so the client need not wait for the proxy to go
// quiet.
func complete(resp []byte) bool {
	head, body, ok := bytes.Cut(resp, []byte("\r\n\r\n"))
	if !ok {
		return false
	}
	for _, line := range strings.Split(string(head), "\r\n")[1:] {
		name, value, _ := strings.Cut(line, ":")
		if strings.EqualFold(strings.TrimSpace(name), "content-length") {
			n, err := strconv.Atoi(strings.TrimSpace(value))
			return err == nil && len(body) >= n
		}
	}
	return false
}

// runVectors replays every request vector against the proxy that start
// puts in front of a recording backend. The vectors are spread over
// several instances of the proxy, each with its own recorder, so that the
// vectors a proxy sits on (waiting for bytes that never come) overlap.
func runVectors(t *testing.T, start func(t *testing.T, backend string) string, vs []vector) map[string]outcome {
	t.Helper()
	const shards = 6
	out := make(map[string]outcome, len(vs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 0; i < shards; i++ {
		rec := newRecorder(t)
		addr := start(t, rec.addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := i; j < len(vs); j += shards {
				o := sendVector(t, addr, rec, vs[j])
				mu.Lock()
				out[vs[j].Name] = o
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// startHAProxy runs Debian's haproxy in HTTP mode in front of backend, with
// a private configuration, and stops it at the end of the test.
func startHAProxy(t *testing.T, backend string) string {
	bin := skipUnlessTool(t, "haproxy", "haproxy")
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := fmt.Sprintf(`global
  maxconn 200
defaults
  mode http
  timeout connect 2s
  timeout client 2s
  timeout server 2s
  timeout http-request 1s
frontend f
  bind %s
  default_backend b
backend b
  server s1 %s
`, addr, backend)
	file := dir + "/haproxy.cfg"
	os.WriteFile(file, []byte(cfg), 0o600)
	return startTool(t, addr, bin, "-db", "-f", file)
}

// startNginx runs Debian's nginx as a reverse proxy in front of backend,
// with a private prefix and configuration.
func startNginx(t *testing.T, backend string) string {
	bin := skipUnlessTool(t, "nginx", "nginx")
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  client_header_timeout 1s;
  client_body_timeout 1s;
  server {
    listen %[2]s;
    location / {
      proxy_pass http://%[3]s;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_read_timeout 2s;
    }
  }
}
`, dir, addr, backend)
	file := dir + "/nginx.conf"
	os.WriteFile(file, []byte(cfg), 0o600)
	return startTool(t, addr, bin, "-p", dir, "-c", file)
}

// startTool starts an external server and waits for addr to accept.
func startTool(t *testing.T, addr, bin string, args ...string) string {
	t.Helper()
	p := &proc{logs: &logSink{}, done: make(chan error, 1)}
	p.cmd = execCommand(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	waitDial(t, p, addr)
	return addr
}
