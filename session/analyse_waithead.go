package session

import (
	"errors"
	"io"

	"github.com/strata-proxy/strata/layers"
	"github.com/strata-proxy/strata/layers/h1"
)

// analyseWaitHead waits for a whole request head from the front mux stage.
// The stage bounds the wait: the http_request timeout from the request's
// first byte (408), the keep_alive timeout between requests (the
// connection closes quietly); after a short grace an idle connection is
// handed over to wait on a small stack (resIdle). A malformed head is answered with the
// codec's status (400, 413, 414, 431, 501, 505) and the connection closes.
func analyseWaitHead(s *httpSession) result {
	st, err := s.c.mux.Next()
	if st != nil {
		s.st, s.req = st, st.Head()
		return cont
	}
	switch {
	case err == nil:
		return wait
	case err == h1.ErrIdle:
		return handOver
	case err == io.EOF, errors.Is(err, h1.ErrKeepAliveTimeout):
		return quietly
	case errors.Is(err, h1.ErrRequestTimeout):
		return abortWith(408, err)
	case errors.Is(err, h1.ErrClientAborted):
		return abortWith(0, err)
	}
	var se interface{ StatusCode() int }
	if errors.As(err, &se) {
		return abortWith(se.StatusCode(), &layers.StageError{Side: layers.SideClient, Stage: "http request", Err: err})
	}
	if !s.started() {
		return quietly // reset or aborted between requests
	}
	return abortWith(0, layers.Wrap(layers.SideClient, "http request", layers.PhaseNone, err))
}
