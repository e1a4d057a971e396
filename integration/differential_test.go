package integration

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/strata-proxy/strata/layers/h1"
	"github.com/strata-proxy/strata/layers/msg"
)

// startStrataHTTP runs the strata binary in HTTP mode in front of backend.
func startStrataHTTP(t *testing.T, backend string) string {
	addr := freeAddr(t)
	return startTool(t, addr, strataBin, "proxy", "--mode", "http", "--from", addr, "--to", "http://"+backend, "--log", "text")
}

// TestDifferentialVectors replays the codec's smuggling and malformed-input
// vectors against strata, Debian's haproxy and Debian's nginx, each in front
// of a recording backend. strata must never forward a vector that both of
// them refuse, and whatever strata forwards must be exactly one canonical
// request.
func TestDifferentialVectors(t *testing.T) {
	skipUnlessTool(t, "haproxy", "haproxy")
	skipUnlessTool(t, "nginx", "nginx")
	vs := requestVectors(t)
	if len(vs) < 150 {
		t.Fatalf("only %d request vectors; want at least 150", len(vs))
	}
	var st, ha, ng map[string]outcome
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); st = runVectors(t, startStrataHTTP, vs) }()
	go func() { defer wg.Done(); ha = runVectors(t, startHAProxy, vs) }()
	go func() { defer wg.Done(); ng = runVectors(t, startNginx, vs) }()
	wg.Wait()

	var fwdStrata, fwdHA, fwdNG, refusedByBoth int
	for _, v := range vs {
		s, a, n := st[v.Name], ha[v.Name], ng[v.Name]
		fs, fa, fn := len(s.forwarded) > 0, len(a.forwarded) > 0, len(n.forwarded) > 0
		if fs {
			fwdStrata++
			if err := oneCanonicalRequest(s.forwarded); err != nil {
				t.Errorf("%s: strata forwarded something other than one canonical request: %v\n%q", v.Name, err, s.forwarded)
			}
		} else if s.status < 400 {
			t.Errorf("%s: strata refused it without an error status (got %d)", v.Name, s.status)
		}
		if v.Accept != fs {
			t.Errorf("%s: the codec says accept=%v, strata forwarded=%v (status %d)", v.Name, v.Accept, fs, s.status)
		}
		if fa {
			fwdHA++
		}
		if fn {
			fwdNG++
		}
		if !fa && !fn {
			refusedByBoth++
			if fs {
				t.Errorf("%s: strata forwarded a vector both haproxy and nginx refuse:\n%q\nforwarded as %q", v.Name, v.In, s.forwarded)
			}
		}
	}
	t.Logf("%d request vectors: strata forwarded %d, haproxy %d, nginx %d; %d refused by both haproxy and nginx",
		len(vs), fwdStrata, fwdHA, fwdNG, refusedByBoth)
}

// oneCanonicalRequest checks that b is exactly one request that strict
// parsing accepts, with its body framed by exactly what its head says.
func oneCanonicalRequest(b []byte) error {
	var h msg.Head
	// strata adds its forwarding fields: allow for them over the default.
	n, err := h1.ParseRequestHead(b, &h, h1.Limits{MaxFields: 200})
	if err != nil {
		return fmt.Errorf("head: %w", err)
	}
	rest := b[n:]
	switch h.Body {
	case msg.BodyNone:
		if len(rest) != 0 {
			return fmt.Errorf("%d bytes after a request without a body", len(rest))
		}
	case msg.BodyLength:
		if int64(len(rest)) != h.ContentLength {
			return fmt.Errorf("body of %d bytes, Content-Length %d", len(rest), h.ContentLength)
		}
	case msg.BodyChunked:
		var d h1.ChunkedDecoder
		for {
			_, used, err := d.Decode(rest)
			rest = rest[used:]
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("chunked body: %w", err)
			}
			if used == 0 {
				return errors.New("chunked body ends early")
			}
		}
		if len(rest) != 0 {
			return fmt.Errorf("%d bytes after the last chunk", len(rest))
		}
	default:
		return fmt.Errorf("body framed %v in a request", h.Body)
	}
	return nil
}
