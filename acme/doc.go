// Package acme is strata's automatic HTTPS: certificates obtained and
// renewed from an ACME CA (Let's Encrypt by default, or any RFC 8555 CA)
// through certmagic, the HTTP-01 and TLS-ALPN-01 challenge answers, and the
// on-demand policy that decides which unknown names may get a certificate at
// their first handshake. It is the only package allowed to import certmagic
// (DESIGN.md §4).
//
// A [Provider] is what the rest of strata sees: GetCertificate for the TLS
// decode stage (protocol-neutral, so TCP TLS and QUIC use the same
// function), ChallengeCert for the TLS-ALPN-01 handshake that the stage
// answers itself, and HTTPChallenge for the HTTP-01 analyser of the
// session. Certificates live in a certmagic file storage under data_dir;
// several processes sharing it coordinate through its lock files so that
// each name is ordered once.
//
// Package acmetest runs a real ACME CA (Pebble) in-process for tests.
package acme
