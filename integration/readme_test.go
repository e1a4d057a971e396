package integration

import (
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/strata-proxy/strata/certs"
)

// readmeExample returns the annotated configuration example of README.md.
func readmeExample(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "BEGIN CONFIG REFERENCE")
	if i < 0 {
		t.Fatal("README.md has no configuration reference")
	}
	s = s[i:]
	start := strings.Index(s, "```yaml\n")
	end := strings.Index(s[start+8:], "```")
	if start < 0 || end < 0 {
		t.Fatal("README.md's configuration reference has no ```yaml example")
	}
	return s[start+8 : start+8+end]
}

// TestReadmeExampleValidates runs `strata validate` on the README's
// annotated example, with the certificate files it names made by our CA.
func TestReadmeExampleValidates(t *testing.T) {
	p := newPKI(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "certs"), 0o755)
	site := p.leaf(t, certs.IssueOptions{}, "example.com", "www.example.com")
	client := p.leaf(t, certs.IssueOptions{Client: true}, "strata.example.com")
	for base, c := range map[string]*tls.Certificate{"site": &site, "client": &client} {
		if err := certs.WriteFiles(c, filepath.Join(dir, "certs"), base); err != nil {
			t.Fatal(err)
		}
		os.Rename(filepath.Join(dir, "certs", base+".crt"), filepath.Join(dir, "certs", base+".pem"))
	}
	root, _ := os.ReadFile(p.rootFile())
	os.WriteFile(filepath.Join(dir, "certs", "clients-ca.pem"), root, 0o644)
	os.WriteFile(filepath.Join(dir, "certs", "backend-ca.pem"), root, 0o644)
	file := filepath.Join(dir, "strata.yaml")
	os.WriteFile(file, []byte(readmeExample(t)), 0o644)

	out, err := exec.Command(strataBin, "validate", file).CombinedOutput()
	if err != nil || len(out) != 0 {
		t.Fatalf("strata validate README example: %v\n%s", err, out)
	}
}

// TestDemo runs the README's first command, `strata demo`, and the curl
// line it prints, with real curl and Go's client.
func TestDemo(t *testing.T) {
	front := freeAddr(t)
	_, port, _ := strings.Cut(front, ":")
	p := &proc{cmd: exec.Command(strataBin, "demo", "--port", port, "--data", t.TempDir()), logs: &logSink{}, done: make(chan error, 1)}
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
	waitDial(t, p, front)
	m := regexp.MustCompile(`curl --cacert (\S+) (https://localhost:\d+/)`).FindStringSubmatch(p.logs.String())
	if m == nil {
		t.Fatalf("demo printed no curl line:\n%s", p.logs.String())
	}
	rootFile, url := m[1], m[2]
	pool, err := certs.LoadPool(rootFile)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true,
	}}
	seen := map[string]bool{}
	for i := 0; i < 4; i++ {
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		seen[strings.Fields(string(b))[4]] = true
	}
	if !seen["1"] || !seen["2"] {
		t.Errorf("demo answered from backends %v, want both", seen)
	}
	// The demo serves HTTP/3 on the same port.
	h3tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: h3tr}).Get(url)
	if err != nil {
		t.Fatalf("HTTP/3 to the demo: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	h3tr.Close()
	if resp.ProtoMajor != 3 || !strings.HasPrefix(string(b), "hello from demo backend") {
		t.Errorf("HTTP/3 to the demo: %s %q", resp.Proto, b)
	}
	if curl, err := exec.LookPath("curl"); err == nil {
		out, err := exec.Command(curl, "-sS", "--max-time", "5", "--cacert", rootFile, url).CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "hello from demo backend") {
			t.Errorf("the printed curl line failed: %v\n%s", err, out)
		}
	} else {
		skipUnlessTool(t, "curl", "curl")
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("demo exit status %d", code)
	}
}
