package integration

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/strata-proxy/strata/certs"
)

// proc is a strata process started by a test.
type proc struct {
	cmd  *exec.Cmd
	logs *logSink
	done chan error
}

// startBinary runs the strata binary with args and stops it (SIGKILL) at the
// end of the test if it is still running.
func startBinary(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(strataBin, args...), logs: &logSink{}, done: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// waitDial waits until addr accepts connections.
func waitDial(t *testing.T, p *proc, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never accepted; strata said:\n%s", addr, p.logs.String())
}

// wait waits for the process to exit and returns its exit status.
func (p *proc) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		if err == nil {
			return 0
		}
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		t.Fatal(err)
	case <-time.After(within):
		t.Fatalf("strata did not exit within %v; it said:\n%s", within, p.logs.String())
	}
	return -1
}

func (p *proc) countLines(substr string) int { return strings.Count(p.logs.String(), substr) }

// roundTrip writes a line through c and reads it back from an echo backend.
func roundTrip(c net.Conn, line string) error {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return err
	}
	buf := make([]byte, len(line)+1)
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != line+"\n" {
		return fmt.Errorf("echo returned %q for %q", buf, line)
	}
	return nil
}

// TestReloadUnderLoad sends SIGHUP ten times while clients connect without
// pause: no connection may fail, and a bad file is refused while the old
// configuration keeps serving.
func TestReloadUnderLoad(t *testing.T) {
	e1, e2 := serve(t, echo), serve(t, echo)
	front, extra := freeAddr(t), freeAddr(t)
	file := filepath.Join(t.TempDir(), "strata.yaml")
	write := func(i int) {
		var cfg string
		if i%2 == 0 {
			cfg = fmt.Sprintf(`frontends:
  web: { bind: %q, mode: tcp, default_backend: app }
backends:
  app: { servers: [ { address: %q } ] }
`, front, e1)
		} else {
			cfg = fmt.Sprintf(`frontends:
  web: { bind: %q, mode: tcp, default_backend: app }
  extra: { bind: %q, mode: tcp, default_backend: app }
backends:
  app:
    balance: leastconn
    servers: [ { address: %q, weight: 2 }, { address: %q } ]
`, front, extra, e1, e2)
		}
		if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(0)
	p := startBinary(t, "run", "-c", file)
	waitDial(t, p, front)

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				c, err := net.DialTimeout("tcp", front, 5*time.Second)
				if err == nil {
					err = roundTrip(c, fmt.Sprintf("w%d-%d", w, i))
					c.Close()
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	for i := 1; i <= 10; i++ {
		time.Sleep(150 * time.Millisecond)
		write(i)
		p.cmd.Process.Signal(syscall.SIGHUP)
		deadline := time.Now().Add(5 * time.Second)
		for p.countLines("configuration reloaded") < i && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := p.countLines("configuration reloaded"); n < i {
			t.Fatalf("reload %d not done; strata said:\n%s", i, p.logs.String())
		}
	}
	// A bad file is refused and the old configuration keeps serving.
	os.WriteFile(file, []byte("frontends:\n  web: { bind: ':70000' }\n"), 0o600)
	p.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(5 * time.Second)
	for p.countLines("reload refused") < 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if p.countLines("reload refused") != 1 {
		t.Errorf("bad configuration not refused; strata said:\n%s", p.logs.String())
	}
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d connections failed across 10 reloads; first: %v", n, n+ok.Load(), firstErr.Load())
	}
	t.Logf("%d connections, 0 failed, across 10 reloads and one refused reload", ok.Load())
	if ok.Load() < 100 {
		t.Errorf("only %d connections made during the reloads", ok.Load())
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM", code)
	}
}

// TestGracefulShutdown: on SIGTERM strata stops accepting, lets the
// sessions in flight finish, then exits 0.
func TestGracefulShutdown(t *testing.T) {
	backend := serve(t, echo)
	front := freeAddr(t)
	file := filepath.Join(t.TempDir(), "strata.yaml")
	os.WriteFile(file, []byte(fmt.Sprintf(`global: { drain_timeout: 10s }
frontends:
  web: { bind: %q, mode: tcp, default_backend: app }
backends:
  app: { servers: [ { address: %q } ] }
`, front, backend)), 0o600)
	p := startBinary(t, "run", "-c", file)
	waitDial(t, p, front)
	var conns []net.Conn
	for i := 0; i < 20; i++ {
		c := plainDial(t, front)
		if err := roundTrip(c, fmt.Sprintf("before-%d", i)); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", front, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting 5s after SIGTERM")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i, c := range conns {
		if err := roundTrip(c, fmt.Sprintf("after-%d", i)); err != nil {
			t.Fatalf("in-flight session %d broken by shutdown: %v", i, err)
		}
		c.Close()
	}
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
}

// TestValidateCommand: valid files print nothing and exit 0; invalid ones
// print FILE:LINE:COL: message and exit 1.
func TestValidateCommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("frontends:\n  web: { bind: ':8000', mode: tcp, default_backend: app }\nbackends:\n  app: { servers: [ { address: '127.0.0.1:9000' } ] }\n"), 0o600)
	os.WriteFile(bad, []byte("frontends:\n  web: { bind: ':70000', mode: tcp, default_backend: app }\nbackends:\n  app: { balance: fastest, servers: [ { address: '127.0.0.1:9000' } ] }\n"), 0o600)

	out, err := exec.Command(strataBin, "validate", good).CombinedOutput()
	if err != nil || len(out) != 0 {
		t.Fatalf("valid file: %v, output %q; want exit 0 and no output", err, out)
	}
	cmd := exec.Command(strataBin, "validate", bad)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("invalid file: %v, want exit status 1", err)
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(bad) + `:\d+:\d+: `)
	if len(lines) != 2 {
		t.Errorf("want 2 error lines (port, balance), got:\n%s", stderr.String())
	}
	for _, l := range lines {
		if !re.MatchString(l) {
			t.Errorf("line %q is not FILE:LINE:COL: message", l)
		}
	}
	if !strings.Contains(stderr.String(), "70000") || !strings.Contains(stderr.String(), "fastest") {
		t.Errorf("errors do not name the bad values:\n%s", stderr.String())
	}
}

// TestProxyCommand runs `strata proxy --mode tcp` with TLS termination and
// two servers, with no configuration file.
func TestProxyCommand(t *testing.T) {
	pk := newPKI(t)
	cert, key := pk.issue(t, "proxy", certs.IssueOptions{}, "localhost")
	s1, s2 := serve(t, hello("one")), serve(t, hello("two"))
	front := freeAddr(t)
	p := startBinary(t, "proxy", "--mode", "tcp", "--from", front, "--to", "tcp://"+s1, "--to", "tcp://"+s2, "--cert", cert, "--key", key)
	waitDial(t, p, front)
	seen := map[string]int{}
	for i := 0; i < 4; i++ {
		c, err := tls.Dial("tcp", front, &tls.Config{ServerName: "localhost", RootCAs: pk.pool()})
		if err != nil {
			t.Fatal(err)
		}
		seen[readLine(t, c)]++
		c.Close()
	}
	if seen["one"] != 2 || seen["two"] != 2 {
		t.Fatalf("round-robin over two --to gave %v", seen)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
}
