package integration

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/strata-proxy/strata/certs"
)

// TestInternalCAReencryption: a frontend with tls internal serves a
// certificate that verifies against `strata ca root`; a backend with a
// certificate from `strata ca issue` is reached over verified TLS with an
// automatically issued client certificate (ca: internal,
// client_certificate: internal); a backend with a foreign certificate is
// refused with a clear termination state.
func TestInternalCAReencryption(t *testing.T) {
	data, out := t.TempDir(), t.TempDir()
	cli := func(args ...string) []byte {
		t.Helper()
		b, err := execCommand(strataBin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("strata %v: %v\n%s", args, err, b)
		}
		return b
	}
	cli("ca", "issue", "backend.internal", "--out", out, "--data", data)
	rootPEM := cli("ca", "root", "--data", data)
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("strata ca root printed %q", rootPEM)
	}

	// The good backend requires a client certificate from the same CA and
	// tells who presented it.
	good := tlsBackend(t, &tls.Config{
		Certificates: []tls.Certificate{loadPair(t, filepath.Join(out, "backend.internal.crt"), filepath.Join(out, "backend.internal.key"))},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    roots,
	})
	foreign := tlsBackend(t, &tls.Config{
		Certificates: []tls.Certificate{newPKI(t).leaf(t, certs.IssueOptions{}, "backend.internal")},
	})
	front := freeAddr(t)
	_, logs := startStrata(t, fmt.Sprintf(`global:
  data_dir: %q
frontends:
  web:
    bind: %q
    tls: { internal: [front.internal] }
    routes:
      - { path_prefix: /good/, backend: good }
      - { path_prefix: /foreign/, backend: foreign }
backends:
  good:
    servers: [ { address: %q } ]
    tls: { sni: backend.internal, ca: internal, client_certificate: internal }
  foreign:
    servers: [ { address: %q } ]
    tls: { sni: backend.internal, ca: internal, client_certificate: internal }
    retries: 0
`, data, front, good, foreign))

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "front.internal"}}}
	defer client.CloseIdleConnections()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := client.Get("https://" + front + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/good/x"); code != 200 || body != "client=strata-client" {
		t.Fatalf("good backend: %d %q", code, body)
	}
	code, _ := get("/foreign/x")
	r := logs.waitAccess(t, func(r map[string]any) bool { return r["backend"] == "foreign" })
	if code != 502 || r["term"] != "server tls handshake: unknown authority" {
		t.Fatalf("foreign backend: status %d, termination %q; want 502 and server tls handshake: unknown authority", code, r["term"])
	}
	t.Logf("foreign backend refused: term=%q status=%v", r["term"], r["status"])
}

// tlsBackend serves HTTPS with cfg, answering with the common name of the
// client certificate, until the test ends.
func tlsBackend(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		TLSConfig: cfg,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			cn := ""
			if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
				cn = r.TLS.PeerCertificates[0].Subject.CommonName
			}
			fmt.Fprintf(w, "client=%s", cn)
		}),
		ErrorLog: nil,
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func loadPair(t *testing.T, cert, key string) tls.Certificate {
	t.Helper()
	c, err := certs.LoadPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return *c
}
