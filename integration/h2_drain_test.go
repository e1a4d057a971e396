package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-proxy/strata/certs"
	"github.com/strata-proxy/strata/cmd/config"
)

// slowBackend answers /slow after delay, and counts its requests.
func slowBackend(t *testing.T, delay time.Duration) (addr string, served *atomic.Int32) {
	t.Helper()
	served = new(atomic.Int32)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(delay)
		}
		served.Add(1)
		io.WriteString(w, "done "+r.URL.Path)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), served
}

// TestH2GracefulDrain: a reload and a shutdown send GOAWAY on HTTP/2
// connections and let the streams in flight finish: every one of them is
// answered 200, and after the reload the client moves to a new connection.
func TestH2GracefulDrain(t *testing.T) {
	p := newPKI(t)
	backend, served := slowBackend(t, 400*time.Millisecond)
	cert, key := p.issue(t, "front", certs.IssueOptions{}, "localhost")
	addr := freeAddr(t)
	yamlText := fmt.Sprintf(`frontends:
  web:
    bind: %q
    tls: { certificates: [ { cert: %q, key: %q } ] }
    default_backend: app
backends:
  app:
    servers: [ { address: %q } ]
`, addr, cert, key, backend)
	rt, _ := startStrata(t, yamlText)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: p.pool(), ServerName: "localhost"},
		ForceAttemptHTTP2: true,
	}}
	t.Cleanup(client.CloseIdleConnections)
	base := "https://" + addr

	var firstConn net.Conn
	get := func(path string, trace bool) error {
		req, _ := http.NewRequest("GET", base+path, nil)
		if trace {
			req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
				GotConn: func(i httptrace.GotConnInfo) { firstConn = i.Conn },
			}))
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != 200 || resp.ProtoMajor != 2 || string(body) != "done "+path {
			return fmt.Errorf("%s: status %d over %s, body %q", path, resp.StatusCode, resp.Proto, body)
		}
		return nil
	}
	if err := get("/warm", true); err != nil {
		t.Fatal(err)
	}

	// inFlight starts n slow streams on the client's one connection and
	// runs during() once they are all at the backend.
	inFlight := func(n int, during func()) {
		t.Helper()
		start := served.Load()
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- get("/slow", false)
			}()
		}
		time.Sleep(150 * time.Millisecond) // the streams reach the backend, which holds them 400 ms
		during()
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("a stream in flight during the drain failed: %v", err)
			}
		}
		if got := served.Load() - start; got != int32(n) {
			t.Errorf("backend answered %d of %d streams", got, n)
		}
	}

	// Reload: the old graph drains; its connections get GOAWAY.
	inFlight(10, func() {
		cfg, err := config.Parse("reload.yaml", []byte(yamlText))
		if err != nil {
			t.Fatal(err)
		}
		if err := rt.Apply(cfg); err != nil {
			t.Fatal(err)
		}
	})
	var next net.Conn
	req, _ := http.NewRequest("GET", base+"/after", nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { next = i.Conn },
	}))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("request after the reload: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if next == firstConn {
		t.Error("after the reload the client still used the drained connection; want GOAWAY to have moved it to a new one")
	}

	// Shutdown: the streams in flight finish, then the listener is gone.
	inFlight(10, func() {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			rt.Shutdown(ctx)
		}()
	})
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("the listener still accepts after shutdown")
	}
}
