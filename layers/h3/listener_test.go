package h3

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/strata-proxy/strata/layers"
	"github.com/strata-proxy/strata/layers/h3/h3test"
)

// testPKI is a throw-away CA and a leaf for "localhost" and 127.0.0.1.
type testPKI struct {
	pool *x509.CertPool
	leaf tls.Certificate
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "h3 test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &testPKI{pool: pool, leaf: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}}
}

// echoFrontend is a Frontend that answers every stream itself with what
// it saw: its name, the initiator's facts and the request; a release
// channel, when set, holds each response until it is closed.
type echoFrontend struct {
	name    string
	deny    netip.Addr
	limit   *layers.ConnLimit
	release chan struct{}
	started chan struct{}
	served  atomic.Int64
	mu      sync.Mutex
	inits   map[*layers.Initiator]bool
	status  func(r *http.Request) int
}

func (f *echoFrontend) Admit(in *layers.Initiator) error {
	if f.deny.IsValid() && in.Source.Addr() == f.deny {
		return errors.New("denied")
	}
	return nil
}

func (f *echoFrontend) Limit() *layers.ConnLimit { return f.limit }

func (f *echoFrontend) ServeStream(in *layers.Initiator, w http.ResponseWriter, r *http.Request) {
	f.served.Add(1)
	f.mu.Lock()
	if f.inits == nil {
		f.inits = map[*layers.Initiator]bool{}
	}
	f.inits[in] = true
	f.mu.Unlock()
	if f.started != nil {
		f.started <- struct{}{}
	}
	if f.release != nil {
		<-f.release
	}
	body, _ := io.ReadAll(r.Body)
	status := http.StatusOK
	if f.status != nil {
		status = f.status(r)
	}
	w.Header().Set("X-Frontend", f.name)
	w.WriteHeader(status)
	fmt.Fprintf(w, "%s %s sni=%s alpn=%s src=%v early=%s body=%d",
		r.Method, r.URL.Path, in.SNI, in.Handshake.ALPN, in.Source.Addr(), r.Header.Get("Early-Data"), len(body))
	if r.ContentLength >= 0 {
		fmt.Fprintf(w, " cl=%d", r.ContentLength)
	}
}

func (f *echoFrontend) initiators() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.inits)
}

// startListener serves fe on a new loopback UDP listener until the test
// ends.
func startListener(t *testing.T, p *testPKI, fe Frontend, zeroRTT bool) *Listener {
	t.Helper()
	l, err := Listen("127.0.0.1:0", Options{})
	if err != nil {
		t.Fatal(err)
	}
	l.SetHandler(Handler{Frontend: fe, TLS: &tls.Config{Certificates: []tls.Certificate{p.leaf}}, ZeroRTT: zeroRTT})
	done := make(chan error, 1)
	go func() { done <- l.Serve(nil) }()
	t.Cleanup(func() {
		l.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return l
}

func newClient(t *testing.T, p *testPKI) *http3.Transport {
	t.Helper()
	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: p.pool, ServerName: "localhost", ClientSessionCache: tls.NewLRUClientSessionCache(4)}}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func get(t *testing.T, tr *http3.Transport, method, url string, body io.Reader) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp, string(b)
}

func TestListenerServesStreamsWithConnectionFacts(t *testing.T) {
	p := newTestPKI(t)
	fe := &echoFrontend{name: "one"}
	l := startListener(t, p, fe, false)
	tr := newClient(t, p)
	url := "https://" + l.Addr().String() + "/x"
	for i := range 3 {
		resp, body := get(t, tr, http.MethodPost, url, strings.NewReader("hello"))
		if resp.StatusCode != 200 || resp.Proto != "HTTP/3.0" {
			t.Fatalf("request %d: %s %s", i, resp.Proto, resp.Status)
		}
		if want := "POST /x sni=localhost alpn=h3 src=127.0.0.1 early= body=5 cl=5"; body != want {
			t.Fatalf("request %d: body %q, want %q", i, body, want)
		}
	}
	if got := fe.initiators(); got != 1 {
		t.Errorf("three requests on one connection made %d initiators, want 1", got)
	}
	if s := l.Stats(); s.Accepted != 1 || s.Streams != 3 || s.Refused != 0 {
		t.Errorf("stats %+v, want 1 accepted, 3 streams", s)
	}
}

func TestListenerReloadKeepsConnections(t *testing.T) {
	p := newTestPKI(t)
	l := startListener(t, p, &echoFrontend{name: "old"}, false)
	tr := newClient(t, p)
	url := "https://" + l.Addr().String() + "/"
	if resp, _ := get(t, tr, http.MethodGet, url, nil); resp.Header.Get("X-Frontend") != "old" {
		t.Fatalf("before reload: frontend %q", resp.Header.Get("X-Frontend"))
	}
	l.SetHandler(Handler{Frontend: &echoFrontend{name: "new"}, TLS: &tls.Config{Certificates: []tls.Certificate{p.leaf}}})
	if resp, _ := get(t, tr, http.MethodGet, url, nil); resp.Header.Get("X-Frontend") != "new" {
		t.Fatalf("after reload: frontend %q", resp.Header.Get("X-Frontend"))
	}
	if s := l.Stats(); s.Accepted != 1 {
		t.Errorf("the reload cost the client its connection: %d connections accepted, want 1", s.Accepted)
	}
}

func TestListenerRefusesByL4RulesAndCap(t *testing.T) {
	p := newTestPKI(t)
	t.Run("l4", func(t *testing.T) {
		l := startListener(t, p, &echoFrontend{deny: netip.MustParseAddr("127.0.0.1")}, false)
		tr := newClient(t, p)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+l.Addr().String()+"/", nil)
		if _, err := tr.RoundTrip(req); err == nil {
			t.Fatal("a denied source got a response")
		}
		if s := l.Stats(); s.Refused == 0 || s.Streams != 0 {
			t.Errorf("stats %+v, want a refusal and no stream", s)
		}
	})
	t.Run("cap", func(t *testing.T) {
		fe := &echoFrontend{limit: layers.NewConnLimit(1), release: make(chan struct{}), started: make(chan struct{}, 1)}
		l := startListener(t, p, fe, false)
		url := "https://" + l.Addr().String() + "/"
		first := make(chan error, 1)
		go func() {
			tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: p.pool, ServerName: "localhost"}}
			defer tr.Close()
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			resp, err := tr.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
			}
			first <- err
		}()
		<-fe.started
		tr := newClient(t, p)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if _, err := tr.RoundTrip(req); err == nil {
			t.Error("a second connection was served over a cap of 1")
		}
		close(fe.release)
		if err := <-first; err != nil {
			t.Errorf("the connection within the cap failed: %v", err)
		}
	})
}

func TestListenerShutdownFinishesStreamsInFlight(t *testing.T) {
	p := newTestPKI(t)
	fe := &echoFrontend{release: make(chan struct{}), started: make(chan struct{}, 8)}
	l := startListener(t, p, fe, false)
	tr := newClient(t, p)
	url := "https://" + l.Addr().String() + "/slow"
	const n = 5
	errs := make(chan error, n)
	for range n {
		go func() {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				errs <- err
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && !strings.HasPrefix(string(b), "GET /slow") {
				err = fmt.Errorf("body %q", b)
			}
			errs <- err
		}()
	}
	for range n {
		<-fe.started
	}
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		shut <- l.Shutdown(ctx)
	}()
	time.Sleep(100 * time.Millisecond) // GOAWAY goes out while the streams wait
	close(fe.release)
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("in-flight request failed across shutdown: %v", err)
		}
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if _, err := newClient(t, p).RoundTrip(req); err == nil {
		t.Error("a new connection was served after Shutdown")
	}
}

// TestListenerShutdownDeliversLargeResponses: a response larger than the
// socket buffers, still being sent when Shutdown starts, reaches the
// client whole.
func TestListenerShutdownDeliversLargeResponses(t *testing.T) {
	p := newTestPKI(t)
	const size = 16 << 20
	started := make(chan struct{}, 1)
	fe := &bigFrontend{size: size, started: started}
	l, err := Listen("127.0.0.1:0", Options{})
	if err != nil {
		t.Fatal(err)
	}
	l.SetHandler(Handler{Frontend: fe, TLS: &tls.Config{Certificates: []tls.Certificate{p.leaf}}})
	go l.Serve(nil)
	defer l.Close()
	tr := newClient(t, p)
	got := make(chan int64, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, "https://"+l.Addr().String()+"/big", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			got <- -1
			return
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		got <- n
	}()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := l.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if n := <-got; n != size {
		t.Fatalf("the client got %d of %d bytes across the shutdown", n, size)
	}
}

// bigFrontend answers every stream with size bytes.
type bigFrontend struct {
	size    int
	started chan struct{}
}

func (f *bigFrontend) Admit(*layers.Initiator) error { return nil }
func (f *bigFrontend) Limit() *layers.ConnLimit      { return nil }
func (f *bigFrontend) ServeStream(in *layers.Initiator, w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", fmt.Sprint(f.size))
	chunk := make([]byte, 64<<10)
	for sent := 0; sent < f.size; sent += len(chunk) {
		if sent == 4*len(chunk) {
			f.started <- struct{}{}
		}
		if _, err := w.Write(chunk); err != nil {
			return
		}
	}
}

// dial0RTT returns a client that has a session ticket for l and will send
// its next GET_0RTT request in early data.
func dial0RTT(t *testing.T, p *testPKI, l *Listener) *http3.Transport {
	t.Helper()
	cache := tls.NewLRUClientSessionCache(4)
	mk := func() *http3.Transport {
		tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: p.pool, ServerName: "localhost", ClientSessionCache: cache}}
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	first := mk()
	get(t, first, http.MethodGet, "https://"+l.Addr().String()+"/ticket", nil)
	// The ticket comes after the handshake; a second request makes sure
	// the client has read it before the connection closes.
	get(t, first, http.MethodGet, "https://"+l.Addr().String()+"/ticket", nil)
	first.Close() // the ticket stays in cache
	tr := mk()
	// On loopback the handshake would finish before the server reads the
	// request; holding back the client's handshake packets for a moment
	// keeps the request early, as on a real network.
	tr.Dial = h3test.Dial(t.Cleanup, func(pc net.PacketConn) net.PacketConn {
		return &h3test.HoldHandshake{PacketConn: pc, Hold: time.Second}
	}, true)
	return tr
}

func TestListenerZeroRTT(t *testing.T) {
	p := newTestPKI(t)
	t.Run("off by default", func(t *testing.T) {
		l := startListener(t, p, &echoFrontend{}, false)
		tr := dial0RTT(t, p, l)
		_, body := get(t, tr, http3.MethodGet0RTT, "https://"+l.Addr().String()+"/early", nil)
		if strings.Contains(body, "early=1") {
			t.Fatalf("0-RTT was accepted with zero_rtt off: %q", body)
		}
	})
	// On a loaded machine a 0-RTT attempt can still lose the race with
	// the handshake; a few attempts make the check about the mechanism.
	const attempts = 3
	t.Run("safe method is marked", func(t *testing.T) {
		l := startListener(t, p, &echoFrontend{}, true)
		var body string
		for range attempts {
			tr := dial0RTT(t, p, l)
			if _, body = get(t, tr, http3.MethodGet0RTT, "https://"+l.Addr().String()+"/early", nil); strings.Contains(body, "early=1") {
				return
			}
		}
		t.Fatalf("a GET in early data reached the frontend without Early-Data: 1 in %d attempts: %q", attempts, body)
	})
	t.Run("425 is retried after the handshake", func(t *testing.T) {
		var early, late atomic.Int64
		fe := &echoFrontend{status: func(r *http.Request) int {
			if r.Header.Get("Early-Data") == "1" {
				early.Add(1)
				return http.StatusTooEarly
			}
			late.Add(1)
			return http.StatusOK
		}}
		l := startListener(t, p, fe, true)
		for i := 0; i < attempts && early.Load() == 0; i++ {
			tr := dial0RTT(t, p, l)
			resp, body := get(t, tr, http3.MethodGet0RTT, "https://"+l.Addr().String()+"/early", nil)
			if resp.StatusCode != 200 || strings.Contains(body, "early=1") {
				t.Fatalf("after a 425: %s %q", resp.Status, body)
			}
		}
		if early.Load() != 1 || late.Load() == 0 {
			t.Fatalf("%d requests were served from early data (want 1), %d after the handshake", early.Load(), late.Load())
		}
	})
}

// TestQUICNetConnAbort checks the Initiator's net.Conn face of a QUIC
// connection: it carries no bytes, and a past deadline ends the
// connection.
func TestQUICNetConnAbort(t *testing.T) {
	p := newTestPKI(t)
	fe := &echoFrontend{}
	l := startListener(t, p, fe, false)
	tr := newClient(t, p)
	get(t, tr, http.MethodGet, "https://"+l.Addr().String()+"/", nil)
	fe.mu.Lock()
	var in *layers.Initiator
	for i := range fe.inits {
		in = i
	}
	fe.mu.Unlock()
	if _, err := in.Conn.Read(make([]byte, 1)); err == nil {
		t.Error("Read on a QUIC connection's net.Conn succeeded")
	}
	in.Conn.SetDeadline(time.Unix(1, 0))
	qc := (*quic.Conn)(in.Conn.(*quicNetConn))
	select {
	case <-qc.Context().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a past deadline did not close the QUIC connection")
	}
}

func TestAltSvc(t *testing.T) {
	for _, tc := range []struct {
		ports []int
		want  string
	}{
		{nil, ""},
		{[]int{443}, `h3=":443"; ma=86400`},
		{[]int{8443, 443, 8443}, `h3=":443"; ma=86400, h3=":8443"; ma=86400`},
		{[]int{0}, ""},
	} {
		if got := AltSvc(tc.ports); got != tc.want {
			t.Errorf("AltSvc(%v) = %q, want %q", tc.ports, got, tc.want)
		}
	}
}

// TestBodyProbe checks how a request without content-length reaches the
// frontend: a GET (FIN right after HEADERS) as one without a body, a body
// streamed slowly as one of unknown length, intact.
func TestBodyProbe(t *testing.T) {
	p := newTestPKI(t)
	l := startListener(t, p, &echoFrontend{}, false)
	tr := newClient(t, p)
	url := "https://" + l.Addr().String() + "/p"
	if _, body := get(t, tr, http.MethodGet, url, nil); !strings.HasSuffix(body, "body=0 cl=0") {
		t.Errorf("GET without a body reached the frontend as %q, want content-length 0", body)
	}
	pr, pw := io.Pipe()
	go func() {
		time.Sleep(3 * bodyProbeWait)
		pw.Write([]byte("slow "))
		time.Sleep(bodyProbeWait)
		pw.Write([]byte("body"))
		pw.Close()
	}()
	if _, body := get(t, tr, http.MethodPost, url, pr); !strings.HasSuffix(body, "body=9") {
		t.Errorf("a slow body of unknown length reached the frontend as %q, want 9 bytes and no length", body)
	}
}
