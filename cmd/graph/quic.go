package graph

import (
	"crypto/tls"
	"errors"

	"github.com/strata-proxy/strata/cmd/config"
	"github.com/strata-proxy/strata/layers/h3"
	"github.com/strata-proxy/strata/tlsstage"
)

// buildQUIC records what the UDP listeners of f's `quic: true` binds
// serve: fe's streams, over f's TLS configuration.
func (g *Graph) buildQUIC(f *config.Frontend, fe frontend) error {
	if len(quicPorts(f)) == 0 {
		return nil
	}
	sf, ok := fe.(h3.Frontend)
	if !ok {
		return errors.New("quic: this frontend cannot serve HTTP/3 streams (mode http with tls only)")
	}
	tc := g.tls[f.Name]
	if tc == nil {
		return errors.New("quic: needs tls")
	}
	h := h3.Handler{
		Frontend:         sf,
		TLS:              tc,
		ZeroRTT:          f.TLS.ZeroRTT,
		HandshakeTimeout: f.Timeouts.Handshake,
		IdleTimeout:      f.Timeouts.KeepAlive,
		MaxStreams:       int64(f.HTTPLimits.MaxConcurrentStreams),
	}
	for _, a := range f.Bind {
		if a.QUIC {
			g.quic[a.String()] = h
		}
	}
	return nil
}

// quicPorts are the ports of f's `quic: true` binds, which its TCP
// responses announce in Alt-Svc.
func quicPorts(f *config.Frontend) []int {
	var ports []int
	for _, a := range f.Bind {
		if a.QUIC {
			ports = append(ports, a.Port)
		}
	}
	return ports
}

// quicClientTLS is the TLS configuration of HTTP/3 to server s: the TCP
// stage's, with the server's host as the name to verify when none is
// configured (one QUIC connection serves every client, so the clients'
// SNI cannot stand in for it as it does on TCP).
func quicClientTLS(tc *tlsstage.Client, s config.Server) *tls.Config {
	cfg := tc.Config()
	if cfg.ServerName == "" {
		cfg.ServerName = s.Host
	}
	return cfg
}
