// Package acme is where strata's automatic HTTPS will live: certmagic
// issuers, storage, the HTTP-01 and TLS-ALPN-01 challenge answers and the
// on-demand policy. It is the only package allowed to import certmagic
// (DESIGN.md §4); it hands the rest of strata a GetCertificate-shaped
// function and an HTTP-01 responder.
//
// The package is empty until the automatic-HTTPS issue lands; the core
// pipeline serves static and internal-CA certificates through package certs.
package acme
