package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// strataBin is the strata binary built once for the tests that drive the
// real process (reload, shutdown, CLI).
var strataBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "strata-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	strataBin = filepath.Join(dir, "strata")
	build := exec.Command("go", "build", "-o", strataBin, "github.com/strata-proxy/strata/cmd/strata")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building strata:", err)
		os.Exit(1)
	}
	g0, f0 := runtime.NumGoroutine(), openFiles()
	code := m.Run()
	if code == 0 {
		code = checkLeaks(g0, f0)
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// checkLeaks reports goroutines or open files left over by the tests, as
// net/http's main_test.go does. Numbers may settle late: retry for a while.
func checkLeaks(g0, f0 int) int {
	var g, f int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		g, f = runtime.NumGoroutine()-unstoppable(), openFiles()
		if g <= g0+2 && f <= f0+2 {
			return 0
		}
	}
	fmt.Fprintf(os.Stderr, "leak: goroutines %d → %d, open files %d → %d\n%s\n", g0, g, f0, f, strings.Join(openFileNames(), "\n"))
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	fmt.Fprintf(os.Stderr, "%s\n", buf[:n])
	return 1
}

// unstoppable counts the goroutines that dependencies keep for the life of
// the process by design, with no way to stop them: the task loop of each
// in-process Pebble's validation authority (va.New starts it; Pebble has
// no Close), and certmagic's rate limiter for each ACME CA and account
// (a package-level map; each test's Pebble is a new CA). Strata's own
// goroutines, certmagic's caches and pending orders are still counted.
func unstoppable() int {
	buf := make([]byte, 1<<22)
	n := runtime.Stack(buf, true)
	stacks := string(buf[:n])
	return strings.Count(stacks, "pebble/v2/va.VAImpl.processTasks(") +
		strings.Count(stacks, "certmagic.(*RingBufferRateLimiter).loop(")
}

// openFiles counts the process's open sockets and files. Pipes and
// anonymous inodes are left out: the runtime's netpoller (epoll, eventfd)
// and the pipes Go's splice keeps pooled for reuse are not ours to close.
func openFiles() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil || strings.HasPrefix(target, "pipe:") || strings.HasPrefix(target, "anon_inode:") {
			continue
		}
		n++
	}
	return n
}

// openFileNames lists what openFiles counts, for the leak report.
func openFileNames() []string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var out []string
	for _, e := range ents {
		target, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		out = append(out, e.Name()+" → "+target)
	}
	return out
}

// skipUnlessTool skips the test when an external tool is missing, naming the
// Debian package that provides it; with STRATA_REQUIRE_ALL=1 (CI) it fails
// instead.
func skipUnlessTool(t *testing.T, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err == nil {
		return p
	}
	if os.Getenv("STRATA_REQUIRE_ALL") == "1" {
		t.Fatalf("%s not found: install the Debian package %s (STRATA_REQUIRE_ALL=1)", tool, pkg)
	}
	t.Skipf("%s not found: install the Debian package %s to run this test", tool, pkg)
	return ""
}
