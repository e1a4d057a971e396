package tlsstage

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"slices"

	"github.com/strata-proxy/strata/layers"
)

// Server is the TLS decode stage (Name "tls"): it terminates TLS from a
// client and records the handshake facts on the Initiator. It is built once
// per listener configuration and is safe for concurrent use.
type Server struct {
	cfg *tls.Config
}

// NewServer returns a Server using a clone of cfg, which the caller fills
// (ServerConfig is the usual way): GetCertificate choosing by SNI,
// MinVersion, NextProtos, ClientAuth and ClientCAs. An error of
// cfg.GetCertificate is reported as "no certificate for <sni>".
func NewServer(cfg *tls.Config) *Server {
	cfg = cfg.Clone()
	if get := cfg.GetCertificate; get != nil {
		fallback := len(cfg.Certificates) > 0
		cfg.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			cert, err := get(hello)
			if err != nil {
				return nil, &noCertError{name: hello.ServerName, err: err}
			}
			if cert == nil && !fallback {
				return nil, &noCertError{name: hello.ServerName}
			}
			return cert, nil
		}
	}
	return &Server{cfg: cfg}
}

// Name returns "tls".
func (s *Server) Name() string { return "tls" }

// Accept runs the server handshake on conn within ctx and returns the
// *tls.Conn, which has CloseWrite and NetConn. It sets in.Handshake and
// in.SNI. A failure is a *layers.StageError "client tls handshake: <cause>".
// A handshake that negotiated "acme-tls/1" was an ACME TLS-ALPN-01
// validation, answered by the certificate alone: Accept closes the
// connection and returns layers.ErrAnswered.
func (s *Server) Accept(ctx context.Context, in *layers.Initiator, conn net.Conn) (net.Conn, error) {
	tc := tls.Server(conn, s.cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, &layers.StageError{
			Side: layers.SideClient, Stage: "tls", Phase: layers.PhaseHandshake,
			Err: handshakeCause(err, layers.SideClient),
		}
	}
	if tc.ConnectionState().NegotiatedProtocol == ACMETLS1 {
		// The CA's TLS-ALPN-01 validation only looks at the certificate
		// (RFC 8737 §3): the answer is complete, no session follows.
		tc.Close()
		return nil, layers.ErrAnswered
	}
	if in != nil {
		facts := FactsOf(tc.ConnectionState())
		in.Handshake = facts
		in.SNI = facts.SNI
	}
	return tc, nil
}

// FactsOf turns a finished handshake's state into the facts a TLS stage
// reports (layers.FactsOf).
func FactsOf(cs tls.ConnectionState) *layers.HandshakeFacts { return layers.FactsOf(cs) }

// ServerOptions is what a listener's configuration says about TLS decode.
type ServerOptions struct {
	// GetCertificate picks the certificate for a ClientHello, by SNI.
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// MinVersion is the lowest TLS version accepted (tls.VersionTLS12 when 0).
	MinVersion uint16
	// ALPN lists the protocols offered, in preference order (see
	// ALPNTable.Protocols).
	ALPN []string
	// ClientCAs verifies client certificates.
	ClientCAs *x509.CertPool
	// RequireClientCert refuses clients without a certificate that
	// verifies against ClientCAs.
	RequireClientCert bool
	// VerifyIfGiven verifies a client certificate when one is sent but
	// accepts clients without one. RequireClientCert wins over it.
	VerifyIfGiven bool
	// DisableSessionTickets turns session resumption by tickets off; it is
	// on by default.
	DisableSessionTickets bool
	// ChallengeCert, when set, answers ACME TLS-ALPN-01 validations: for a
	// ClientHello that is one (ok true) it returns the challenge
	// certificate, nil failing the handshake. "acme-tls/1" is then offered
	// after ALPN's protocols, so only a client offering nothing else
	// negotiates it. acme.Provider.ChallengeCert has this shape.
	ChallengeCert func(*tls.ClientHelloInfo) (cert *tls.Certificate, ok bool)
}

// ACMETLS1 is the ALPN protocol of ACME's TLS-ALPN-01 validation (RFC 8737).
const ACMETLS1 = "acme-tls/1"

// errNoChallenge fails a TLS-ALPN-01 handshake for a name with no pending
// challenge.
var errNoChallenge = errors.New("no pending acme-tls/1 challenge")

// modernSuites are the TLS 1.2 suites ServerConfig allows: ECDHE key
// exchange and AEAD ciphers only. TLS 1.3 suites are not configurable.
var modernSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// ServerConfig builds the *tls.Config for a Server from o. Key exchanges
// are Go's defaults, which prefer the hybrid post-quantum X25519MLKEM768,
// then X25519 and P-256 (Go ignores the order of CurvePreferences).
func ServerConfig(o ServerOptions) *tls.Config {
	cfg := &tls.Config{
		GetCertificate:         o.GetCertificate,
		MinVersion:             o.MinVersion,
		NextProtos:             append([]string(nil), o.ALPN...),
		ClientCAs:              o.ClientCAs,
		CipherSuites:           append([]uint16(nil), modernSuites...),
		SessionTicketsDisabled: o.DisableSessionTickets,
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	if challenge := o.ChallengeCert; challenge != nil {
		if !slices.Contains(cfg.NextProtos, ACMETLS1) {
			cfg.NextProtos = append(cfg.NextProtos, ACMETLS1)
		}
		get := o.GetCertificate
		cfg.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if c, ok := challenge(hello); ok {
				if c == nil {
					return nil, errNoChallenge
				}
				return c, nil
			}
			if get == nil {
				return nil, nil
			}
			return get(hello)
		}
	}
	switch {
	case o.RequireClientCert:
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	case o.VerifyIfGiven:
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg
}
