// Package hstream turns one request stream of a multiplexed HTTP
// connection into the version-neutral message of layers/msg (DESIGN.md §3).
//
// The HTTP/2 mux stage (layers/h2, on golang.org/x/net/http2) and the
// HTTP/3 mux stage (layers/h3, on quic-go's http3) both hand their streams
// over the way net/http servers do: a *http.Request and an
// http.ResponseWriter, one goroutine per stream. A Stream wraps that pair:
// it validates what RFC 9113 §8.2 and RFC 9114 §4.2 require of a request
// and what a downgrade to HTTP/1 needs (so that nothing a backend could
// read differently is forwarded), builds a msg.Head from it, buffers the
// body in a pooled buffer while the session waits for it, and writes the
// session's response heads, bodies and trailers back through the writer.
//
// It sits between a mux stage and the session: the session sees only the
// HTTPStream methods, never which version the stream came in on.
package hstream
