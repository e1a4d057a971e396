// Package h2 holds strata's HTTP/2 stages (DESIGN.md §1), both built on
// golang.org/x/net/http2 (framing, HPACK, flow control, stream states).
//
// Front: the mux stage of a client connection (Server). After TLS decode
// negotiated "h2" by ALPN, or on a cleartext connection that opened with
// the HTTP/2 preface (prior-knowledge h2c), it serves the connection's
// streams, each handed to its own session. x/net's server runs it; this
// package configures it with the frontend's limits, hands each stream on as a net/http handler
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
//
// Back: the outbound stage of a server spoken to over HTTP/2 (Client and
// Stream). A Client keeps a few connections to one server, made by the
// server's Connector (TLS with ALPN "h2", or h2c), and shares them among
// sessions: each request is a Stream on a connection with room for it, a
// new connection being made when the server's concurrency limit is
// reached. A Stream speaks the session's outbound vocabulary (request head
// and body in, response head, body and trailers out, in layers/msg form)
// and translates it to x/net's ClientConn.
package h2
