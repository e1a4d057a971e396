// Package h2 holds strata's HTTP/2 stages (DESIGN.md §1), both built on
// golang.org/x/net/http2 (its Framer and HPACK; the back also on its
// client's flow control and stream states).
//
// Front: the mux stage of a client connection (Server). After TLS decode
// negotiated "h2" by ALPN, or on a cleartext connection that opened with
// the HTTP/2 preface (prior-knowledge h2c), it serves the connection's
// streams, each handed to its own session, and sends GOAWAY to every
// connection when the frontend drains. The mux is strata's own
// (serverconn.go, ServeConnStreams): one goroutine per connection reads
// the frames and keeps the RFC 9113 state (stream states, flow control
// both ways, SETTINGS, PING, GOAWAY); each request stream is a
// ServerStream — the head built straight from the decoded header list
// (hstream.BuildHead's downgrade rules), the body buffered per stream as
// it arrives and credited back as the session reads it, the response
// encoded as frames by the stream's own goroutine under the connection's
// lock — run on a worker goroutine kept from stream to stream
// (workers.go). x/net's server (ServeConn, with layers/hstream's net/http
// translation) stays selectable with Options.XNet, for comparison.
//
// Between the connection and the mux sits a guard (guard.go) that reads
// every frame header both ways. It ends with GOAWAY ENHANCE_YOUR_CALM
// what the protocol does not bound itself — rapid reset, floods of
// SETTINGS, PING, PRIORITY, empty DATA or CONTINUATION frames, streams
// refused again and again — and, in front of x/net's server, mends the
// two places where that server departs from RFC 9113 (a SETTINGS frame
// naming a setting twice; a connection-specific request field answered
// 400 instead of reset). It also sends the mux's writes from a goroutine
// of its own, which yields once before a small write, so that under load
// the frames of many streams share TLS records and system calls.
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
