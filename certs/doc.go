// Package certs holds the certificates strata serves and presents when it
// does not get them from ACME: static certificate files, the SNI index that
// picks one of them for a ClientHello, hot reload of those files, and the
// internal CA that issues certificates for internal names and for tests.
//
// Where it sits in the pipeline:
//
//	client ⇄ [TLS decode] ⇄ session ⇄ [TLS encode] ⇄ server
//	              ▲                          ▲
//	   Store.GetCertificate /       CA.RootPool (backend verification),
//	   ManagedCert.GetCertificate   ManagedCert.GetClientCertificate (mTLS)
//
// The TLS decode stage (package tlsstage) puts [Store.GetCertificate] or
// [ManagedCert.GetCertificate] into its *tls.Config. The TLS encode stage
// verifies backends against [CA.RootPool] or a pool from [LoadPool], and
// presents a client certificate with [ManagedCert.GetClientCertificate].
//
// The package imports no other strata package; the others meet it through
// standard-library types (*tls.Certificate, *x509.CertPool, *slog.Logger,
// context.Context).
//
// Concurrency: an [Index] is immutable. A [Store] serves lookups lock-free
// while Reload builds and swaps in a new Index. A [CA] and a [ManagedCert]
// may be used from any goroutine.
package certs
