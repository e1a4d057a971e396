package tlsstage

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-proxy/strata/layers"
)

// runServer runs stage on the server end of a loopback connection while
// client drives the other end, and returns the initiator, the stage's
// error and the client's.
func runServer(t *testing.T, ctx context.Context, stage layers.Stage, client func(net.Conn) error) (*layers.Initiator, error, error) {
	t.Helper()
	c, s := tcpPair(t)
	clientErr := make(chan error, 1)
	go func() {
		err := client(c)
		// Wait for the server to finish with us (its error or its close).
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		io.Copy(io.Discard, c)
		clientErr <- err
	}()
	in := layers.NewInitiator(s, "test", time.Now())
	conn, err := stage.Accept(ctx, in, s)
	if err == nil {
		// A TLS 1.3 server learns about a client certificate problem only
		// here; read once so the handshake's end is settled.
		conn.SetReadDeadline(time.Now().Add(time.Second))
		_, rerr := conn.Read(make([]byte, 1))
		if rerr != nil && !errors.Is(rerr, io.EOF) && !errors.Is(rerr, net.ErrClosed) {
			var ne net.Error
			if !errors.As(rerr, &ne) || !ne.Timeout() {
				err = rerr
			}
		}
		conn.Close()
	}
	s.Close()
	return in, err, <-clientErr
}

func tlsClient(cfg *tls.Config) func(net.Conn) error {
	return func(c net.Conn) error {
		tc := tls.Client(c, cfg)
		if err := tc.Handshake(); err != nil {
			return err
		}
		tc.Write([]byte("x"))
		return tc.CloseWrite()
	}
}

func TestServer(t *testing.T) {
	ca := newTestCA(t, "server CA")
	other := newTestCA(t, "other CA")
	a := ca.issue(t, leafOpts{names: []string{"a.test"}})
	b := ca.issue(t, leafOpts{names: []string{"b.test"}})
	good := ca.issue(t, leafOpts{names: []string{"client"}, client: true})
	expired := ca.issue(t, leafOpts{names: []string{"client"}, client: true, expired: true})
	stranger := other.issue(t, leafOpts{names: []string{"client"}, client: true})

	plain := NewServer(ServerConfig(ServerOptions{GetCertificate: certsByName(a, b), ALPN: []string{"h2", "http/1.1"}}))
	mtls := NewServer(ServerConfig(ServerOptions{GetCertificate: certsByName(a, b), ClientCAs: ca.pool, RequireClientCert: true}))
	optional := NewServer(ServerConfig(ServerOptions{GetCertificate: certsByName(a, b), ClientCAs: ca.pool, VerifyIfGiven: true}))
	tls13 := NewServer(ServerConfig(ServerOptions{GetCertificate: certsByName(a, b), MinVersion: tls.VersionTLS13}))

	cfg := func(name string, maxVer uint16, certs ...tls.Certificate) *tls.Config {
		return &tls.Config{ServerName: name, RootCAs: ca.pool, MaxVersion: maxVer, Certificates: certs, NextProtos: []string{"h2"}}
	}
	// forced presents cert even when the server's CA list does not
	// name its issuer (crypto/tls would then send none).
	forced := func(cert tls.Certificate) *tls.Config {
		c := cfg("a.test", 0)
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
		return c
	}
	tests := []struct {
		name    string
		stage   *Server
		client  func(net.Conn) error
		timeout time.Duration
		want    string // the StageError text; "" for success
		is      error
		check   func(t *testing.T, in *layers.Initiator)
	}{
		{name: "sni a tls13", stage: plain, client: tlsClient(cfg("a.test", 0)), check: func(t *testing.T, in *layers.Initiator) {
			h := in.Handshake
			if h.SNI != "a.test" || in.SNI != "a.test" || h.ALPN != "h2" || h.Version != tls.VersionTLS13 || h.Resumed {
				t.Errorf("facts %+v, initiator SNI %q", h, in.SNI)
			}
		}},
		{name: "sni b tls12", stage: plain, client: tlsClient(cfg("b.test", tls.VersionTLS12)), check: func(t *testing.T, in *layers.Initiator) {
			h := in.Handshake
			if h.SNI != "b.test" || h.Version != tls.VersionTLS12 || !slices.Contains(modernSuites, h.CipherSuite) {
				t.Errorf("facts %+v", h)
			}
		}},
		{name: "no certificate for sni", stage: plain, client: tlsClient(cfg("c.test", 0)), want: "client tls handshake: no certificate for c.test"},
		{name: "not tls", stage: plain, client: raw("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"), want: "client tls handshake: not tls", is: layers.ErrNotTLS},
		{name: "closed during handshake", stage: plain, client: raw("\x16\x03\x01\x00\x40\x01"), want: "client tls handshake: closed during handshake", is: io.ErrUnexpectedEOF},
		{name: "timeout", stage: plain, client: raw(""), timeout: 100 * time.Millisecond, want: "client tls handshake timeout", is: layers.ErrTimeout},
		{name: "protocol version", stage: tls13, client: tlsClient(cfg("a.test", tls.VersionTLS12)), want: "client tls handshake: protocol version"},
		{name: "client rejects our certificate", stage: plain, client: tlsClient(&tls.Config{ServerName: "a.test", RootCAs: other.pool}), want: "client tls handshake: bad certificate"},

		{name: "mtls ok tls13", stage: mtls, client: tlsClient(cfg("a.test", 0, good)), check: func(t *testing.T, in *layers.Initiator) {
			pc := in.Handshake.PeerCertificates
			if len(pc) != 2 || !pc[0].Equal(good.Leaf) || !pc[1].Equal(ca.cert) {
				t.Errorf("peer chain of %d certificates", len(pc))
			}
		}},
		{name: "mtls ok tls12", stage: mtls, client: tlsClient(cfg("a.test", tls.VersionTLS12, good))},
		{name: "mtls no cert tls13", stage: mtls, client: tlsClient(cfg("a.test", 0)), want: "client tls handshake: no client certificate"},
		{name: "mtls no cert tls12", stage: mtls, client: tlsClient(cfg("a.test", tls.VersionTLS12)), want: "client tls handshake: no client certificate"},
		{name: "mtls unknown authority", stage: mtls, client: tlsClient(forced(stranger)), want: "client tls handshake: bad certificate: unknown authority"},
		{name: "mtls expired tls12", stage: mtls, client: tlsClient(cfg("a.test", tls.VersionTLS12, expired)), want: "client tls handshake: bad certificate: expired"},
		{name: "optional no cert", stage: optional, client: tlsClient(cfg("a.test", 0))},
		{name: "optional bad cert", stage: optional, client: tlsClient(forced(stranger)), want: "client tls handshake: bad certificate: unknown authority"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				t.Cleanup(cancel)
			}
			in, err, cerr := runServer(t, ctx, tc.stage, tc.client)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("server: %v (client: %v)", err, cerr)
				}
				if cerr != nil {
					t.Fatalf("client: %v", cerr)
				}
				if in.Handshake == nil {
					t.Fatal("no handshake facts")
				}
				if tc.check != nil {
					tc.check(t, in)
				}
				return
			}
			var se *layers.StageError
			if !errors.As(err, &se) || se.Side != layers.SideClient || se.Stage != "tls" || se.Phase != layers.PhaseHandshake {
				t.Fatalf("err = %#v, want a client tls handshake StageError", err)
			}
			if err.Error() != tc.want {
				t.Errorf("err = %q, want %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("err = %v, want errors.Is %v", err, tc.is)
			}
			if errors.Unwrap(se) == nil {
				t.Error("no wrapped cause")
			}
			if in.Handshake != nil {
				t.Error("handshake facts set on failure")
			}
		})
	}
}

// raw returns a client that writes s and closes its sending side.
func raw(s string) func(net.Conn) error {
	return func(c net.Conn) error {
		if s == "" {
			return nil
		}
		if _, err := io.WriteString(c, s); err != nil {
			return err
		}
		return c.(*net.TCPConn).CloseWrite()
	}
}

func TestServerResumption(t *testing.T) {
	ca := newTestCA(t, "resume CA")
	a := ca.issue(t, leafOpts{names: []string{"a.test"}})
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			stage := NewServer(ServerConfig(ServerOptions{GetCertificate: certsByName(a)}))
			cfg := &tls.Config{ServerName: "a.test", RootCAs: ca.pool, MaxVersion: v, ClientSessionCache: tls.NewLRUClientSessionCache(4)}
			client := func(c net.Conn) error {
				tc := tls.Client(c, cfg)
				if err := tc.Handshake(); err != nil {
					return err
				}
				tc.Write([]byte("x"))
				// Read to the server's close so a TLS 1.3 ticket is stored.
				io.Copy(io.Discard, tc)
				return nil
			}
			for i, want := range []bool{false, true} {
				in, err, cerr := runServer(t, testCtx(t), stage, client)
				if err != nil || cerr != nil {
					t.Fatalf("connection %d: server %v, client %v", i, err, cerr)
				}
				if in.Handshake.Resumed != want {
					t.Errorf("connection %d: Resumed = %v, want %v", i, in.Handshake.Resumed, want)
				}
			}
		})
	}
}

func TestServerConfig(t *testing.T) {
	tests := []struct {
		name string
		o    ServerOptions
		auth tls.ClientAuthType
		min  uint16
	}{
		{"defaults", ServerOptions{}, tls.NoClientCert, tls.VersionTLS12},
		{"require", ServerOptions{RequireClientCert: true, VerifyIfGiven: true}, tls.RequireAndVerifyClientCert, tls.VersionTLS12},
		{"if given", ServerOptions{VerifyIfGiven: true, MinVersion: tls.VersionTLS13}, tls.VerifyClientCertIfGiven, tls.VersionTLS13},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ServerConfig(tc.o)
			if cfg.ClientAuth != tc.auth || cfg.MinVersion != tc.min || cfg.SessionTicketsDisabled {
				t.Errorf("ClientAuth %v MinVersion %x tickets disabled %v", cfg.ClientAuth, cfg.MinVersion, cfg.SessionTicketsDisabled)
			}
			for _, s := range cfg.CipherSuites {
				name := tls.CipherSuiteName(s)
				if !strings.HasPrefix(name, "TLS_ECDHE_") || !(strings.Contains(name, "GCM") || strings.Contains(name, "CHACHA20")) {
					t.Errorf("suite %s is not ECDHE+AEAD", name)
				}
			}
		})
	}
}
