// Package h2 is the HTTP/2 mux stage of a front connection (DESIGN.md §1):
// after TLS decode negotiated "h2" by ALPN, or on a cleartext connection
// that opened with the HTTP/2 preface (prior-knowledge h2c), it serves the
// connection's streams, each handed to its own session.
//
// The framing, HPACK, flow control, stream states and the protections
// against abusive peers (rapid reset, CONTINUATION and SETTINGS floods,
// excess concurrent streams) come from golang.org/x/net/http2's server; this
// package configures it with the frontend's limits, hands each stream on
// as a net/http handler call (see layers/hstream for its translation into
// the version-neutral message), and sends GOAWAY to every connection when
// the frontend drains.
package h2
