// Package tlsstage holds strata's TLS stages and the pieces around them
// (DESIGN.md §1, §2). On the way from a client to a server they sit here:
//
//	client ⇄ [PROXY] ⇄ [Peek] ⇄ [Server: TLS decode] ⇄ mux ⇄ session ⇄ [Client: TLS encode] ⇄ server
//
// The package provides:
//
//   - Peek reads the ClientHello without consuming it, records the SNI and
//     the offered ALPN protocols on the layers.Initiator and hands on a
//     connection that replays the peeked bytes. It is the whole front stack
//     of SNI passthrough: the TLS bytes reach the backend untouched, and the
//     returned connection still lets io.Copy splice between sockets.
//   - Server terminates TLS from clients (TLS decode) and reports the
//     handshake facts (SNI, ALPN, version, resumption, client chain).
//   - Client encrypts toward a server (TLS encode): SNI, verification
//     against a CA pool, optional client certificate and session resumption
//     across the connections it makes.
//   - ALPNTable is the one place that maps the negotiated ALPN protocol to
//     the next stage.
//
// Failures are *layers.StageError values whose text is the termination
// state, with a short cause ("client tls handshake: no client certificate",
// "server tls handshake: unknown authority"); the crypto/tls or x509 error
// stays reachable through errors.As and errors.Is.
//
// tlsstage imports only layers of strata.
package tlsstage
