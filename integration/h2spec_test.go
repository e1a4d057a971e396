package integration

import (
	"encoding/xml"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/strata-proxy/strata/certs"
)

// h2specMinPassed is every one of h2spec's 145 cases (the issue's floor was
// 141): strata's mux passes them all, and a regression fails the test.
const h2specMinPassed = 145

// TestH2Spec runs h2spec (a Go tool dependency of the module: `go tool
// h2spec`) against a TLS frontend offering h2 by ALPN, in front of a small
// backend, and requires at least h2specMinPassed of its cases to pass.
func TestH2Spec(t *testing.T) {
	if testing.Short() {
		t.Skip("h2spec takes a few seconds")
	}
	p := newPKI(t)
	cert, key := p.issue(t, "front", certs.IssueOptions{}, "localhost")
	backend := startSmallBackend(t)
	addr := freeAddr(t)
	startStrata(t, fmt.Sprintf(`frontends:
  web:
    bind: %q
    mode: http
    tls: { certificates: [ { cert: %q, key: %q } ] }
    default_backend: app
backends:
  app:
    servers: [ { address: %q } ]
`, addr, cert, key, backend))

	_, port, _ := strings.Cut(addr, ":")
	report := filepath.Join(t.TempDir(), "h2spec.xml")
	cmd := exec.Command("go", "tool", "h2spec", "-t", "-k", "-h", "127.0.0.1", "-p", port, "--timeout", "2", "-j", report)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run() // exits non-zero when any case fails: the report says which
	elapsed := time.Since(start)
	b, rerr := os.ReadFile(report)
	if rerr != nil {
		t.Fatalf("h2spec wrote no report (%v, %v):\n%s", err, rerr, out.String())
	}
	res, perr := parseJUnit(b)
	if perr != nil {
		t.Fatalf("h2spec report: %v", perr)
	}
	sort.Strings(res.failed)
	t.Logf("h2spec: %d of %d cases passed, %d skipped, in %v", res.passed, res.total, res.skipped, elapsed.Round(time.Millisecond))
	for _, f := range res.failed {
		t.Logf("failed: %s", f)
	}
	if res.total < 145 {
		t.Errorf("h2spec ran %d cases, want 145:\n%s", res.total, out.String())
	}
	if res.passed < h2specMinPassed {
		t.Errorf("h2spec passed %d cases, want at least %d", res.passed, h2specMinPassed)
	}
}

// startSmallBackend is an HTTP/1 backend answering every request with a
// short body after reading the request's.
func startSmallBackend(t *testing.T) string {
	t.Helper()
	return startHTTPServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "hello from the backend\n")
	}))
}

// junitSuites is the part of h2spec's JUnit report the test reads.
type junitSuites struct {
	Suites []struct {
		Cases []struct {
			Package   string      `xml:"package,attr"`
			ClassName string      `xml:"classname,attr"`
			Failure   *junitInner `xml:"failure"`
			Error     *junitInner `xml:"error"`
			Skipped   *junitInner `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

type junitInner struct {
	Content string `xml:",innerxml"`
}

type junitResult struct {
	total, passed, skipped int
	failed                 []string
}

func parseJUnit(b []byte) (junitResult, error) {
	var s junitSuites
	if err := xml.Unmarshal(b, &s); err != nil {
		return junitResult{}, err
	}
	var r junitResult
	for _, suite := range s.Suites {
		for i, c := range suite.Cases {
			r.total++
			// A case's id is its section and its place in it, as
			// h2spec prints it (http2/4.2/3).
			id := fmt.Sprintf("%s/%d %s", c.Package, i+1, c.ClassName)
			switch {
			case c.Failure != nil:
				r.failed = append(r.failed, id+": "+html.UnescapeString(strings.TrimSpace(c.Failure.Content)))
			case c.Error != nil:
				r.failed = append(r.failed, id+": "+html.UnescapeString(strings.TrimSpace(c.Error.Content)))
			case c.Skipped != nil:
				r.skipped++
			default:
				r.passed++
			}
		}
	}
	return r, nil
}

// startHTTPServer runs h on a plain loopback listener until the test ends.
func startHTTPServer(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}
