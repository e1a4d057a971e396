package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestDifferentialSilentConnections: a connection that sends nothing, and
// one that sends part of a request head, until the http_request timeout
// passes get the same answer from strata as from Debian's haproxy (2.6:
// a 408 in both cases, by default; only "option http-ignore-probes" makes
// it close the silent one quietly).
func TestDifferentialSilentConnections(t *testing.T) {
	skipUnlessTool(t, "haproxy", "haproxy")
	backend := serve(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	addr := freeAddr(t)
	startStrata(t, fmt.Sprintf(`defaults:
  timeouts: { http_request: 1s }
frontends:
  web:
    bind: %q
    mode: http
    default_backend: app
backends:
  app:
    servers: [ { address: %q } ]
`, addr, backend))
	ha := startHAProxy(t, backend) // timeout http-request 1s

	// answer is the status line a proxy answers with, or "closed".
	answer := func(proxy, send string) string {
		c, err := net.Dial("tcp", proxy)
		if err != nil {
			t.Error(err)
			return "dial failed"
		}
		defer c.Close()
		io.WriteString(c, send)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil && line == "" {
			if err == io.EOF {
				return "closed"
			}
			return err.Error()
		}
		return strings.TrimSpace(line)
	}
	cases := []struct{ name, send string }{
		{"nothing sent", ""},
		{"part of a head", "GET / HTTP/1.1\r\nHost: x\r\n"},
	}
	got := make([][2]string, len(cases))
	var wg sync.WaitGroup
	for i, tc := range cases {
		for j, proxy := range []string{addr, ha} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i][j] = answer(proxy, tc.send)
			}()
		}
	}
	wg.Wait()
	for i, tc := range cases {
		strata, haproxy := got[i][0], got[i][1]
		t.Logf("%s: strata %q, haproxy %q", tc.name, strata, haproxy)
		if !strings.HasPrefix(strata, "HTTP/1.1 408") {
			t.Errorf("%s: strata answered %q, want 408", tc.name, strata)
		}
		// haproxy says "408 Request Time-out"; the status is what counts.
		if statusOf(strata) != statusOf(haproxy) {
			t.Errorf("%s: strata answered %q, haproxy %q", tc.name, strata, haproxy)
		}
	}
}

// statusOf is the status code of a status line, or the line itself.
func statusOf(line string) string {
	if f := strings.Fields(line); len(f) > 1 {
		return f[1]
	}
	return line
}
