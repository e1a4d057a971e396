// Package h2 is the HTTP/2 mux stage of a front connection (DESIGN.md §1):
// after TLS decode negotiated "h2" by ALPN, or on a cleartext connection
// that opened with the HTTP/2 preface (prior-knowledge h2c), it serves the
// connection's streams, each handed to its own session.
//
// The framing, HPACK, flow control and stream states come from
// golang.org/x/net/http2's server (server.go); this package configures it
// with the frontend's limits, hands each stream on as a net/http handler
// call (see layers/hstream for its translation into the version-neutral
// message), and sends GOAWAY to every connection when the frontend drains.
//
// Between the connection and that server sits a guard (guard.go) that
// reads every frame header both ways. It ends with GOAWAY
// ENHANCE_YOUR_CALM what the server does not bound itself — rapid reset,
// floods of SETTINGS, PING, PRIORITY, empty DATA or CONTINUATION frames,
// streams refused again and again — and mends the two places where the
// server departs from RFC 9113 (a SETTINGS frame naming a setting twice;
// a connection-specific request field answered 400 instead of reset). It
// also sends the server's writes from a goroutine of its own, so that
// under load the frames of many streams share TLS records and system
// calls.
package h2
