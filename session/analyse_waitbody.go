package session

import (
	"github.com/strata-proxy/strata/layers"
	"github.com/strata-proxy/strata/layers/msg"
)

// analyseWaitBody waits until the request body is whole in the stage's
// buffer (or fills it) and its framing is valid, before any byte goes to a
// server (HAProxy's http-buffer-request): a body whose chunked framing is
// invalid is refused with the codec's status and the server never sees
// the request ("client http body: <cause>"). A client that sent "Expect: 100-continue" is told to go on
// first: the session has decided to forward the request by now.
//
// A gRPC call's body (content-type application/grpc…) on a stream of a
// multiplexed connection (HTTP/2, HTTP/3) is not waited for: it may be one
// side of a conversation (client or bidirectional streaming: the client
// waits for an answer before it sends more), which waiting for the end or
// a full buffer would stall; gRPC frames its messages itself and sends no
// trailers. Every other body is waited for, so that a stream whose
// trailers or length turn out invalid reaches no server.
func analyseWaitBody(s *httpSession) result {
	if s.req.Body == msg.BodyNone || (s.req.Body == msg.BodyLength && s.req.ContentLength == 0) {
		return cont
	}
	if s.c.stream && s.req.Body == msg.BodyChunked && isGRPC(s.req) {
		return cont
	}
	if !s.waiting {
		s.waiting = true
		if err := s.st.Continue(); err != nil {
			return abortWith(0, layers.Wrap(layers.SideClient, "", layers.PhaseData, err))
		}
	}
	done, err := s.st.WaitBody()
	switch {
	case err != nil:
		return s.clientBodyError(err) // "client http body: <cause>"
	case !done:
		return wait
	}
	return cont
}

var grpcType = []byte("application/grpc")

// isGRPC reports whether h is a gRPC call.
func isGRPC(h *msg.Head) bool {
	ct := h.Get("Content-Type")
	return len(ct) >= len(grpcType) && equalFold(ct[:len(grpcType)], grpcType)
}
