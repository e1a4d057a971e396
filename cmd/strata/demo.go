package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"go.yaml.in/yaml/v4"

	"github.com/strata-proxy/strata/certs"
	"github.com/strata-proxy/strata/cmd/config"
)

// cmdDemo runs the embedded default: an HTTPS front (HTTP/1.1 session) with
// a certificate from the internal CA, in front of two built-in backends
// balanced round-robin with HTTP health checks, and prints a curl line
// that works.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.Int("port", 8443, "front `PORT` on 127.0.0.1 (a free port is used when it is taken)")
	dataDir := fs.String("data", defaultDemoDir(), "`DIR` for the demo's internal CA and certificate")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() != 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}

	ca, err := certs.OpenCA(filepath.Join(*dataDir, "ca"), nil)
	if err != nil {
		return err
	}
	leaf, err := ca.Issue([]string{"localhost", "127.0.0.1", "::1"}, certs.IssueOptions{})
	if err != nil {
		return err
	}
	if err := certs.WriteFiles(leaf, *dataDir, "demo"); err != nil {
		return err
	}

	var backends []any
	for i := 1; i <= 2; i++ {
		addr, stop, err := startDemoBackend(i)
		if err != nil {
			return err
		}
		defer stop()
		backends = append(backends, map[string]any{"name": "demo" + strconv.Itoa(i), "address": addr})
	}

	front, err := demoAddr(*port)
	if err != nil {
		return err
	}
	doc := map[string]any{
		"global": map[string]any{"data_dir": *dataDir, "log": map[string]any{"format": "text"}},
		"frontends": map[string]any{"demo": map[string]any{
			"bind": []any{map[string]any{"address": front, "quic": true}}, "mode": "http", "default_backend": "demo",
			"tls": map[string]any{"certificates": []any{map[string]any{
				"cert": filepath.Join(*dataDir, "demo.crt"), "key": filepath.Join(*dataDir, "demo.key"),
			}}},
		}},
		"backends": map[string]any{"demo": map[string]any{
			"balance": "roundrobin", "servers": backends,
			"health": map[string]any{"type": "http", "path": "/healthz", "interval": "2s"},
		}},
	}
	data, err := yaml.Marshal(doc)
	if err != nil {
		return err
	}
	cfg, err := config.Parse(filepath.Join(*dataDir, "demo.yaml"), data)
	if err != nil {
		return err
	}
	_, p, _ := net.SplitHostPort(front)
	fmt.Fprintf(stdout, "strata demo: https://localhost:%s/ → two built-in backends, round-robin\n", p)
	fmt.Fprintf(stdout, "try:  curl --cacert %s https://localhost:%s/\n", filepath.Join(*dataDir, "ca", "root.crt"), p)
	fmt.Fprintf(stdout, "      HTTP/1.1 and HTTP/2 on TCP, HTTP/3 on UDP, all on port %s\n", p)
	fmt.Fprintln(stdout, "stop: Ctrl-C")
	return serve(ctx, cfg, nil, nil, stderr)
}

func defaultDemoDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "strata-demo")
	}
	return filepath.Join(os.TempDir(), "strata-demo")
}

// demoAddr returns 127.0.0.1:port, or another port on 127.0.0.1 when port
// is taken: one free on both TCP and UDP, since the demo serves HTTP/3 too.
func demoAddr(port int) (string, error) {
	if addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port)); freeBoth(addr) {
		return addr, nil
	}
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := ln.Addr().String()
		ln.Close()
		if freeBoth(addr) {
			return addr, nil
		}
	}
	return "", errors.New("demo: no port on 127.0.0.1 is free on both TCP and UDP; pass --port")
}

// freeBoth reports whether addr can be bound on TCP and on UDP.
func freeBoth(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	pc.Close()
	return true
}

// startDemoBackend runs a small HTTP/1.1 server on a free loopback port that
// says which demo backend answered.
func startDemoBackend(n int) (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "hello from demo backend %d (%s %s)\n", n, r.Method, r.URL.Path)
	})}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(os.Stderr, "demo backend %d: %v\n", n, err)
		}
	}()
	return ln.Addr().String(), func() { srv.Close() }, nil
}
