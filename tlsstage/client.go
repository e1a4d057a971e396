package tlsstage

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"

	"github.com/strata-proxy/strata/layers"
)

// DefaultSessionCacheSize is the number of TLS sessions a Client keeps for
// resumption when ClientOptions.SessionCacheSize is 0.
const DefaultSessionCacheSize = 64

// ClientOptions is what a server's configuration says about TLS encode.
type ClientOptions struct {
	// ServerName is sent as SNI and is the name the server certificate is
	// verified for. When empty, the client's SNI (Initiator.SNI) is used.
	ServerName string
	// RootCAs verifies the server certificate; nil means the system roots.
	RootCAs *x509.CertPool
	// InsecureSkipVerify accepts any server certificate.
	InsecureSkipVerify bool
	// GetClientCertificate picks the certificate to present when the
	// server asks for one; it wins over Certificates.
	GetClientCertificate func(*tls.CertificateRequestInfo) (*tls.Certificate, error)
	// Certificates are presented when the server asks for one.
	Certificates []tls.Certificate
	// ALPN lists the protocols offered.
	ALPN []string
	// MinVersion is the lowest TLS version accepted (tls.VersionTLS12 when 0).
	MinVersion uint16
	// SessionCacheSize bounds the sessions kept for resumption
	// (DefaultSessionCacheSize when 0).
	SessionCacheSize int
}

// Client is the TLS encode stage (Name "tls") on a connection to a server.
// It keeps one session cache, so the connections it makes to the same
// server resume sessions instead of running full handshakes. It is safe
// for concurrent use.
type Client struct {
	cfg *tls.Config
}

// NewClient returns a Client configured by o. Verification is on unless
// o.InsecureSkipVerify says otherwise.
func NewClient(o ClientOptions) *Client {
	size := o.SessionCacheSize
	if size <= 0 {
		size = DefaultSessionCacheSize
	}
	cfg := &tls.Config{
		ServerName:           o.ServerName,
		RootCAs:              o.RootCAs,
		InsecureSkipVerify:   o.InsecureSkipVerify,
		GetClientCertificate: o.GetClientCertificate,
		Certificates:         o.Certificates,
		NextProtos:           append([]string(nil), o.ALPN...),
		MinVersion:           o.MinVersion,
		ClientSessionCache:   tls.NewLRUClientSessionCache(size),
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	return &Client{cfg: cfg}
}

// Config returns a copy of the stage's TLS configuration (sharing its
// session cache), for another transport to the same server: QUIC for
// HTTP/3, which then sets its own ALPN.
func (c *Client) Config() *tls.Config { return c.cfg.Clone() }

// Name returns "tls".
func (c *Client) Name() string { return "tls" }

var errNoServerName = errors.New("no server name to verify")

// Accept runs the client handshake on conn within ctx and returns the
// *tls.Conn; its ConnectionState (or FactsOf it) tells what was agreed. A
// failure is a *layers.StageError "server tls handshake: <cause>".
func (c *Client) Accept(ctx context.Context, in *layers.Initiator, conn net.Conn) (net.Conn, error) {
	cfg := c.cfg
	if cfg.ServerName == "" && in != nil && in.SNI != "" {
		cfg = cfg.Clone() // shares the session cache
		cfg.ServerName = in.SNI
	}
	if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
		return nil, c.error(errNoServerName)
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, c.error(handshakeCause(err, layers.SideServer))
	}
	return tc, nil
}

func (c *Client) error(err error) error {
	return &layers.StageError{Side: layers.SideServer, Stage: "tls", Phase: layers.PhaseHandshake, Err: err}
}
