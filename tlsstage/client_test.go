package tlsstage

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/strata-proxy/strata/layers"
)

// backend serves TLS with cfg on a loopback listener until the test ends:
// each connection gets "ok" after its handshake and is read to EOF. A nil
// cfg makes serve handle the raw connection instead.
func backend(t *testing.T, cfg *tls.Config, serve func(net.Conn)) string {
	t.Helper()
	ln := listen(t)
	if serve == nil {
		serve = func(c net.Conn) {
			tc := tls.Server(c, cfg)
			tc.SetDeadline(time.Now().Add(5 * time.Second))
			if tc.Handshake() != nil {
				return
			}
			tc.Write([]byte("ok"))
			io.Copy(io.Discard, tc)
		}
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				serve(c)
			})
		}
	})
	return ln.Addr().String()
}

// dialStage connects to addr and runs stage on the new socket.
func dialStage(t *testing.T, ctx context.Context, addr string, stage layers.Stage, in *layers.Initiator) (net.Conn, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if in == nil {
		in = &layers.Initiator{}
	}
	return stage.Accept(ctx, in, c)
}

func TestClient(t *testing.T) {
	ca := newTestCA(t, "backend CA")
	other := newTestCA(t, "other CA")
	goodLeaf := ca.issue(t, leafOpts{names: []string{"good.test"}})
	expiredLeaf := ca.issue(t, leafOpts{names: []string{"good.test"}, expired: true})
	clientLeaf := ca.issue(t, leafOpts{names: []string{"proxy"}, client: true})

	serves := func(cert tls.Certificate) string {
		return backend(t, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}, nil)
	}
	good := serves(goodLeaf)
	expired := serves(expiredLeaf)
	mtls12 := backend(t, &tls.Config{Certificates: []tls.Certificate{goodLeaf}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.pool, MaxVersion: tls.VersionTLS12}, nil)
	httpServer := backend(t, nil, func(c net.Conn) {
		io.WriteString(c, "HTTP/1.1 400 Bad Request\r\n\r\n")
	})
	// closer reads the whole ClientHello before closing, so that the close
	// is a FIN and not a reset for unread data.
	closer := backend(t, nil, func(c net.Conn) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		(&Peek{}).Accept(ctx, &layers.Initiator{}, c)
	})
	silent := backend(t, nil, func(c net.Conn) { io.Copy(io.Discard, c) })

	tests := []struct {
		name    string
		addr    string
		o       ClientOptions
		sni     string // Initiator.SNI
		timeout time.Duration
		want    string // StageError text, "" for success
		is      any    // errors.As target type or errors.Is sentinel
	}{
		{name: "good", addr: good, o: ClientOptions{ServerName: "good.test", RootCAs: ca.pool, ALPN: []string{"h2"}}},
		{name: "sni from initiator", addr: good, o: ClientOptions{RootCAs: ca.pool}, sni: "good.test"},
		{name: "insecure", addr: good, o: ClientOptions{ServerName: "x.test", RootCAs: other.pool, InsecureSkipVerify: true}},
		{name: "client certificate", addr: mtls12, o: ClientOptions{ServerName: "good.test", RootCAs: ca.pool, Certificates: []tls.Certificate{clientLeaf}}},
		{name: "unknown authority", addr: good, o: ClientOptions{ServerName: "good.test", RootCAs: other.pool},
			want: "server tls handshake: unknown authority", is: new(*tls.CertificateVerificationError)},
		{name: "name mismatch", addr: good, o: ClientOptions{ServerName: "wrong.test", RootCAs: ca.pool},
			want: "server tls handshake: certificate name mismatch: want wrong.test, have good.test"},
		{name: "expired", addr: expired, o: ClientOptions{ServerName: "good.test", RootCAs: ca.pool},
			want: "server tls handshake: certificate expired"},
		{name: "no client certificate", addr: mtls12, o: ClientOptions{ServerName: "good.test", RootCAs: ca.pool},
			want: "server tls handshake: handshake failure"}, // the alert a TLS 1.2 server sends
		{name: "no server name", addr: good, o: ClientOptions{RootCAs: ca.pool},
			want: "server tls handshake: no server name to verify"},
		{name: "not tls", addr: httpServer, o: ClientOptions{ServerName: "good.test", RootCAs: ca.pool},
			want: "server tls handshake: not tls", is: layers.ErrNotTLS},
		{name: "closed", addr: closer, o: ClientOptions{ServerName: "good.test", RootCAs: ca.pool},
			want: "server tls handshake: closed during handshake"},
		{name: "timeout", addr: silent, o: ClientOptions{ServerName: "good.test", RootCAs: ca.pool}, timeout: 100 * time.Millisecond,
			want: "server tls handshake timeout", is: layers.ErrTimeout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				t.Cleanup(cancel)
			}
			conn, err := dialStage(t, ctx, tc.addr, NewClient(tc.o), &layers.Initiator{SNI: tc.sni})
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				tlsConn := conn.(*tls.Conn)
				b := make([]byte, 2)
				if _, err := io.ReadFull(tlsConn, b); err != nil || string(b) != "ok" {
					t.Fatalf("read %q, %v", b, err)
				}
				if len(tc.o.ALPN) > 0 && FactsOf(tlsConn.ConnectionState()).ALPN != tc.o.ALPN[0] {
					t.Errorf("ALPN %q", tlsConn.ConnectionState().NegotiatedProtocol)
				}
				return
			}
			var se *layers.StageError
			if !errors.As(err, &se) || se.Side != layers.SideServer || se.Stage != "tls" || se.Phase != layers.PhaseHandshake {
				t.Fatalf("err = %#v, want a server tls handshake StageError", err)
			}
			if err.Error() != tc.want {
				t.Errorf("err = %q, want %q", err, tc.want)
			}
			switch is := tc.is.(type) {
			case error:
				if !errors.Is(err, is) {
					t.Errorf("err = %v, want errors.Is %v", err, is)
				}
			case nil:
			default:
				if !errors.As(err, is) {
					t.Errorf("err = %v, want errors.As %T", err, is)
				}
			}
		})
	}
}

// TestClientResumption checks that a Client's second connection to the
// same server resumes the first one's session.
func TestClientResumption(t *testing.T) {
	ca := newTestCA(t, "resume CA")
	leaf := ca.issue(t, leafOpts{names: []string{"good.test"}})
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			addr := backend(t, &tls.Config{Certificates: []tls.Certificate{leaf}, MaxVersion: v}, nil)
			stage := NewClient(ClientOptions{ServerName: "good.test", RootCAs: ca.pool})
			for i, want := range []bool{false, true} {
				conn, err := dialStage(t, testCtx(t), addr, stage, nil)
				if err != nil {
					t.Fatalf("connection %d: %v", i, err)
				}
				tc := conn.(*tls.Conn)
				// Reading application data makes a TLS 1.3 client take in
				// the server's session ticket.
				if _, err := io.ReadFull(tc, make([]byte, 2)); err != nil {
					t.Fatal(err)
				}
				if got := tc.ConnectionState().DidResume; got != want {
					t.Errorf("connection %d: DidResume = %v, want %v", i, got, want)
				}
				tc.Close()
			}
		})
	}
}
