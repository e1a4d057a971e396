// Package h3 is the HTTP/3 mux stage: the front side of a frontend's
// `quic: true` bind addresses (DESIGN.md §2, "HTTP/3 front").
//
// A Listener owns one UDP socket, the QUIC transport on it and a quic-go
// http3.Server. It makes one layers.Initiator per QUIC connection (L4 rules
// and connection caps run on it before the handshake) and hands every
// request stream to the Frontend installed by the last SetHandler — the
// session's HTTPFrontend, through its ServeStream seam — so each stream
// becomes a session of its own on the same analysers as HTTP/1 and HTTP/2.
//
// A reload installs a new Handler on the same Listener: the UDP socket and
// the QUIC connections on it survive, and streams opened after the reload
// are served by the new configuration. Shutdown sends GOAWAY, lets the
// streams in flight finish and then closes the connections.
//
// 0-RTT is off unless the Handler enables it; then only safe methods
// without a body are served from early data, marked "Early-Data: 1" for
// the backend (RFC 8470), and a 425 from the backend makes the stage wait
// for the handshake and send the request again. Other requests that
// arrive in early data wait for the handshake before they are served.
//
// On the back side, Client is the HTTP/3 outbound stage to one server:
// one QUIC connection shared by the request streams of every session
// (quic-go's http3 ClientConn), each ClientStream presenting the exchange
// in the session's terms (layers/msg heads, body data, trailers). While a
// server cannot be reached over QUIC, Client.Stream fails at once with
// ErrUnreachable so that the caller falls back to TCP.
//
// Package h3 imports quic-go and layers only; it knows nothing of the
// session.
package h3
