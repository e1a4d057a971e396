package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-proxy/strata/certs"
	"github.com/strata-proxy/strata/cmd/config"
	"github.com/strata-proxy/strata/cmd/graph"
)

// pki is a test's own internal CA, with files on disk for configurations.
type pki struct {
	ca  *certs.CA
	dir string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	ca, err := certs.OpenCA(filepath.Join(dir, "ca"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return &pki{ca: ca, dir: dir}
}

// rootFile is the CA's root certificate, PEM.
func (p *pki) rootFile() string { return filepath.Join(p.dir, "ca", "root.crt") }

func (p *pki) pool() *x509.CertPool { return p.ca.RootPool() }

// issue writes a leaf for names to base.crt/base.key and returns the paths.
func (p *pki) issue(t *testing.T, base string, opts certs.IssueOptions, names ...string) (certFile, keyFile string) {
	t.Helper()
	c, err := p.ca.Issue(names, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := certs.WriteFiles(c, p.dir, base); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(p.dir, base+".crt"), filepath.Join(p.dir, base+".key")
}

// leaf returns an in-memory leaf for names.
func (p *pki) leaf(t *testing.T, opts certs.IssueOptions, names ...string) tls.Certificate {
	t.Helper()
	c, err := p.ca.Issue(names, opts)
	if err != nil {
		t.Fatal(err)
	}
	return *c
}

// freeAddr returns a loopback address with a port that was free a moment
// ago (configurations cannot say port 0).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// logSink collects log lines for assertions; safe for concurrent writes.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

// records returns the JSON lines whose msg is msg.
func (s *logSink) records(msg string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(s.buf.Bytes()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// waitAccess waits for an access-log line for which match is true.
func (s *logSink) waitAccess(t *testing.T, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, r := range s.records("session") {
			if match(r) {
				return r
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no matching access-log line; log:\n%s", s.String())
	return nil
}

// startStrata runs the configuration text in-process, as `strata run` does,
// and stops it at the end of the test.
func startStrata(t *testing.T, yamlText string) (*graph.Runtime, *logSink) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "strata.yaml")
	if err := os.WriteFile(file, []byte(yamlText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatalf("config:\n%v\n%s", err, yamlText)
	}
	sink := &logSink{}
	logger := slog.New(slog.NewJSONHandler(sink, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rt := graph.NewRuntime(logger, logger.With("log", "access"))
	if err := rt.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rt.Shutdown(ctx)
	})
	return rt, sink
}

// serve runs handle for every connection accepted on a new loopback
// listener until the test ends.
func serve(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					c.Close()
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
				}()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// echo copies what it reads back, and carries the client's half-close.
func echo(c net.Conn) {
	io.Copy(c, c)
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

// hello answers every connection with a fixed line naming the server,
// then closes it.
func hello(name string) func(net.Conn) {
	return func(c net.Conn) {
		fmt.Fprintf(c, "%s\n", name)
	}
}

// stream is a deterministic pseudo-random byte stream of a given length.
type stream struct {
	r *rand.ChaCha8
	n int64
}

func newStream(seed byte, n int64) *stream {
	var s [32]byte
	s[0] = seed
	return &stream{r: rand.NewChaCha8(s), n: n}
}

func (s *stream) Read(p []byte) (int, error) {
	if s.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.n {
		p = p[:s.n]
	}
	s.r.Read(p)
	s.n -= int64(len(p))
	return len(p), nil
}

// digest is the sha256 of a stream.
func digest(seed byte, n int64) [32]byte {
	h := sha256.New()
	io.Copy(h, newStream(seed, n))
	var d [32]byte
	copy(d[:], h.Sum(nil))
	return d
}

// readLine reads one line from c with a deadline.
func readLine(t *testing.T, c net.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("reading a line: %v (got %q)", err, line)
	}
	return strings.TrimSpace(line)
}

// newBufReader reads exactly what is asked from c: PROXY header parsers
// must not swallow the bytes behind the header in a test.
func newBufReader(c net.Conn) *bufio.Reader { return bufio.NewReaderSize(c, 16) }

// execCommand is exec.Command, named for the tests that start tools.
var execCommand = exec.Command
