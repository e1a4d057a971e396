package tlsstage

import (
	"crypto/tls"
	"errors"
	"net"
	"testing"

	"github.com/strata-proxy/strata/layers"
)

// TestServerACMETLS1 checks the TLS-ALPN-01 hook: a handshake offering only
// acme-tls/1 gets the challenge certificate and no session; other
// handshakes are served as usual and never negotiate acme-tls/1.
func TestServerACMETLS1(t *testing.T) {
	ca := newTestCA(t, "server CA")
	site := ca.issue(t, leafOpts{names: []string{"a.test", "b.test"}})
	chal := ca.issue(t, leafOpts{names: []string{"a.test"}})
	challenge := func(h *tls.ClientHelloInfo) (*tls.Certificate, bool) {
		if len(h.SupportedProtos) != 1 || h.SupportedProtos[0] != ACMETLS1 {
			return nil, false
		}
		if h.ServerName == "a.test" {
			return &chal, true
		}
		return nil, true // no pending challenge for this name
	}
	stage := NewServer(ServerConfig(ServerOptions{
		GetCertificate: certsByName(site),
		ALPN:           []string{"h2", "http/1.1"},
		ChallengeCert:  challenge,
	}))

	t.Run("validation answered, no session", func(t *testing.T) {
		var served *tls.Certificate
		var proto string
		client := func(c net.Conn) error {
			tc := tls.Client(c, &tls.Config{ServerName: "a.test", RootCAs: ca.pool, NextProtos: []string{ACMETLS1}})
			err := tc.Handshake()
			if err == nil {
				cs := tc.ConnectionState()
				proto = cs.NegotiatedProtocol
				served = &tls.Certificate{Certificate: [][]byte{cs.PeerCertificates[0].Raw}}
			}
			return err
		}
		_, err, cerr := runServer(t, testCtx(t), stage, client)
		if cerr != nil {
			t.Fatalf("client: %v", cerr)
		}
		if !errors.Is(err, layers.ErrAnswered) {
			t.Fatalf("Accept = %v, want layers.ErrAnswered", err)
		}
		if proto != ACMETLS1 || served == nil || string(served.Certificate[0]) != string(chal.Certificate[0]) {
			t.Fatalf("negotiated %q; challenge certificate served: %v", proto, served != nil && string(served.Certificate[0]) == string(chal.Certificate[0]))
		}
	})
	t.Run("no pending challenge fails the handshake", func(t *testing.T) {
		_, err, cerr := runServer(t, testCtx(t), stage, tlsClient(&tls.Config{ServerName: "b.test", RootCAs: ca.pool, NextProtos: []string{ACMETLS1}}))
		if err == nil || cerr == nil {
			t.Fatalf("handshake for a name without a challenge: server %v, client %v", err, cerr)
		}
	})
	t.Run("ordinary clients", func(t *testing.T) {
		for _, protos := range [][]string{nil, {"h2", "http/1.1"}, {"http/1.1", ACMETLS1}} {
			in, err, cerr := runServer(t, testCtx(t), stage, tlsClient(&tls.Config{ServerName: "a.test", RootCAs: ca.pool, NextProtos: protos}))
			if err != nil || cerr != nil {
				t.Fatalf("ALPN %q: server %v, client %v", protos, err, cerr)
			}
			if in.Handshake.ALPN == ACMETLS1 {
				t.Fatalf("ALPN %q negotiated acme-tls/1", protos)
			}
		}
	})
}
