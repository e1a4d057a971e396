package integration

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-proxy/strata/certs"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// TestH2Abuse: an attacking HTTP/2 connection doing rapid reset, a
// CONTINUATION flood, a SETTINGS flood, a PING flood or opening streams past
// SETTINGS_MAX_CONCURRENT_STREAMS is ended with GOAWAY (or closed), with
// bounded memory and, for rapid reset, few requests reaching the backend;
// meanwhile a normal client on another connection sees no error.
func TestH2Abuse(t *testing.T) {
	p := newPKI(t)
	cert, key := p.issue(t, "front", certs.IssueOptions{}, "localhost")
	var attackReqs, normalReqs atomic.Int64
	backend := startHTTPServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/attack") {
			attackReqs.Add(1)
		} else {
			normalReqs.Add(1)
		}
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
	addr := freeAddr(t)
	_, logs := startStrata(t, fmt.Sprintf(`defaults:
  http_limits: { max_concurrent_streams: 100 }
frontends:
  web:
    bind: %q
    mode: http
    tls: { certificates: [ { cert: %q, key: %q } ] }
    default_backend: app
backends:
  app:
    servers: [ { address: %q } ]
`, addr, cert, key, backend))
	tlsCfg := &tls.Config{RootCAs: p.pool(), ServerName: "localhost"}

	// The normal client: its own connection, one request after another
	// (and a few at once), for as long as the attacks last.
	normal := &http.Client{Timeout: 20 * time.Second, Transport: &http2.Transport{TLSClientConfig: tlsCfg}}
	t.Cleanup(normal.CloseIdleConnections)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := normal.Get("https://" + addr + "/normal")
				if err == nil {
					var b []byte
					b, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					if err == nil && (resp.StatusCode != 200 || string(b) != "ok") {
						err = fmt.Errorf("status %d, body %q", resp.StatusCode, b)
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				ok.Add(1)
			}
		}()
	}

	for _, tc := range []struct {
		name   string
		attack func(c *rawH2, done <-chan struct{})
		// bound on requests of the attacker reaching the backend
		maxBackend int64
	}{
		// A stream's session stops when its client resets it, but one
		// that started before the reset was read races it: at most the
		// reset burst (2 × max_concurrent_streams) reach the backend.
		{"rapid reset", rapidReset, 200},
		{"CONTINUATION flood, empty frames", continuationFlood(0), 0},
		{"CONTINUATION flood, 1 KiB frames", continuationFlood(1024), 0},
		{"SETTINGS flood", func(c *rawH2, done <-chan struct{}) {
			flood(done, func() error { return c.fr.WriteSettings() })
		}, 0},
		{"PING flood", func(c *rawH2, done <-chan struct{}) {
			flood(done, func() error { return c.fr.WritePing(false, [8]byte{1}) })
		}, 0},
		{"streams past max_concurrent_streams", tooManyStreams, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := attackReqs.Load()
			heap0 := heapInUse()
			c := dialRawH2(t, addr, tlsCfg)
			done := make(chan struct{})
			var aw sync.WaitGroup
			aw.Add(1)
			go func() {
				defer aw.Done()
				tc.attack(c, done)
			}()
			end, frames := awaitEnd(c, 30*time.Second)
			close(done)
			c.conn.Close()
			aw.Wait()
			settle(&attackReqs)
			heap1 := heapInUse()
			t.Logf("attacker: %s after %d frames from the server; heap %d → %d KiB; %d requests reached the backend",
				end, frames, heap0>>10, heap1>>10, attackReqs.Load()-before)
			if !strings.HasPrefix(end, "GOAWAY") && !strings.HasPrefix(end, "closed") {
				t.Errorf("the attacker's connection was not ended: %s", end)
			}
			if growth := int64(heap1) - int64(heap0); growth > 64<<20 {
				t.Errorf("heap grew by %d MiB", growth>>20)
			}
			if n := attackReqs.Load() - before; n > tc.maxBackend {
				t.Errorf("%d of the attacker's requests reached the backend, want at most %d", n, tc.maxBackend)
			}
		})
	}

	close(stop)
	wg.Wait()
	t.Logf("normal client: %d requests completed, %d failed", ok.Load(), failed.Load())
	if failed.Load() > 0 {
		t.Errorf("the normal client saw %d errors; first: %v", failed.Load(), firstErr.Load())
	}
	if ok.Load() < 10 {
		t.Errorf("the normal client completed only %d requests", ok.Load())
	}
	if n := len(logs.records("http2 connection ended with GOAWAY ENHANCE_YOUR_CALM")); n == 0 {
		t.Errorf("no log line for the ended connections")
	}
}

// settle waits until n stops changing for a moment (requests of an
// attack still on their way to the backend), at most 5 s.
func settle(n *atomic.Int64) {
	last := n.Load()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		if cur := n.Load(); cur != last {
			last = cur
			continue
		}
		return
	}
}

// heapInUse is the heap in use after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// awaitEnd reads the attacker's connection until a GOAWAY or its end and
// says which, with the number of frames read.
func awaitEnd(c *rawH2, within time.Duration) (string, int) {
	c.conn.SetReadDeadline(time.Now().Add(within))
	frames := 0
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				continue // a response the framer finds malformed: not the point
			}
			// A GOAWAY that could not go out (the server was in the
			// middle of a frame) leaves the connection closed.
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
				strings.Contains(err.Error(), "reset by peer") || strings.Contains(err.Error(), "closed") {
				return "closed (" + err.Error() + ")", frames
			}
			return "not ended: " + err.Error(), frames
		}
		frames++
		if g, ok := f.(*http2.GoAwayFrame); ok {
			return "GOAWAY " + g.ErrCode.String(), frames
		}
	}
}

// flood calls send until the connection fails or done, at most a million
// times.
func flood(done <-chan struct{}, send func() error) {
	for i := 0; i < 1_000_000; i++ {
		if i%64 == 0 {
			select {
			case <-done:
				return
			default:
			}
		}
		if send() != nil {
			return
		}
	}
}

// rapidReset opens streams and resets each at once (CVE-2023-44487).
func rapidReset(c *rawH2, done <-chan struct{}) {
	block := c.block([]hfield{{":method", "GET"}, {":scheme", "https"}, {":authority", "localhost"}, {":path", "/attack"}})
	id := uint32(1)
	flood(done, func() error {
		if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}); err != nil {
			return err
		}
		err := c.fr.WriteRSTStream(id, http2.ErrCodeCancel)
		id += 2
		if id > 1<<30 {
			return io.EOF
		}
		return err
	})
}

// continuationFlood sends a HEADERS frame without END_HEADERS, then
// CONTINUATION frames of size bytes (of header fields) that never end the
// block.
func continuationFlood(size int) func(c *rawH2, done <-chan struct{}) {
	return func(c *rawH2, done <-chan struct{}) {
		var buf bytes.Buffer
		enc := hpack.NewEncoder(&buf)
		enc.WriteField(hpack.HeaderField{Name: ":method", Value: "GET"})
		enc.WriteField(hpack.HeaderField{Name: ":path", Value: "/attack"})
		if c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: buf.Bytes()}) != nil {
			return
		}
		frag := make([]byte, 0, size)
		for len(frag) < size {
			buf.Reset()
			enc.WriteField(hpack.HeaderField{Name: "x-flood", Value: strings.Repeat("a", 50), Sensitive: true})
			if len(frag)+buf.Len() > size {
				break
			}
			frag = append(frag, buf.Bytes()...)
		}
		flood(done, func() error { return c.fr.WriteContinuation(1, false, frag) })
	}
}

// tooManyStreams keeps 100 streams open (POSTs whose bodies never come),
// then opens more, which the server must refuse, again and again.
func tooManyStreams(c *rawH2, done <-chan struct{}) {
	block := c.block([]hfield{{":method", "POST"}, {":scheme", "https"}, {":authority", "localhost"}, {":path", "/attack"}})
	id := uint32(1)
	flood(done, func() error {
		err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndHeaders: true})
		id += 2
		if id > 1<<30 {
			return io.EOF
		}
		return err
	})
}
