package session

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/strata-proxy/strata/layers"
	"github.com/strata-proxy/strata/layers/msg"
)

// Terminations of the connect analyser.
var (
	errEmptyResponse = &layers.StageError{Side: layers.SideServer, Stage: "http response", Err: errors.New("closed before responding")}
	errServerTimeout = &layers.StageError{Side: layers.SideServer, Stage: "http response", Err: layers.ErrTimeout}
)

// idempotent reports whether a request with this method may be sent twice
// (RFC 9110 §9.2.2).
func idempotent(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}

// analyseConnect is the balancing decision, the connect and the sending of
// the request, with retries, until the final response head is in:
//
//   - a server slot is taken (Backend.Acquire: queue, 503 on queue timeout
//     or when no server is up), with the request's balancing facts
//     (http_balance.go: the uri or header hash, the persistence cookie);
//   - a request that can be replayed (idempotent method, no body) may use
//     an idle pooled connection of that server; any other request gets a
//     fresh one, so that a connection the server closed meanwhile can only
//     cost a request that is safe to send again — except on a server
//     spoken to over HTTP/2, where every request takes a stream on a
//     shared connection (one with room, else a new one), whose death the
//     connection's reader notices and whose refusals are explicit;
//   - a server reached over HTTP/3 (ServerOptions.QUIC) gets the request
//     on a new stream of its shared QUIC connection; while QUIC is
//     unreachable (and for an upgrade or CONNECT) the request takes the
//     TCP path as above, in the server's Proto;
//   - a failed connect is retried on another server (Backend.Retries
//     times), for any request: nothing was sent;
//   - a server that closes before any response byte (an "empty response")
//     gets a replayable request again: on a fresh connection to the same
//     server when the dead one came from the pool (not counted as a retry),
//     else on another server; so does any request the server refused
//     unprocessed (layers.ErrUnprocessed: an HTTP/2 REFUSED_STREAM or
//     GOAWAY), whatever its method; a request whose body was sent is never
//     replayed (502);
//   - no response head within the server timeout: 504; a malformed one:
//     502.
func analyseConnect(s *httpSession) result {
	s.copyLogFacts()
	b := s.backend
	s.balanceRequest(b)
	replayable := idempotent(s.req.Method) && s.req.Body == msg.BodyNone
	redial := false // a connection taken for reuse was dead: this request dials
	attempt := 0
	var last error
	for {
		if err := s.c.abortCause(); err != nil {
			return abortWith(0, err) // a cancelled stream connects nowhere
		}
		if s.server == nil {
			srv, waited, err := s.acquire(b)
			s.rec.Queue += waited
			if err != nil {
				if last != nil && errors.Is(err, layers.ErrNoServer) {
					err = last
				}
				return abortWith(503, err)
			}
			s.server = srv
			s.rec.Server, s.rec.Retries = srv.Name(), attempt
		}
		// HTTP/3 first; an idle TCP connection only while QUIC is down.
		if s.up == nil && s.server.h3 != nil && s.req.Upgrade == nil && string(s.req.Method) != "CONNECT" {
			start := time.Now()
			if up := s.streamH3(); up != nil {
				s.up, s.reused = up, false
				s.rec.Connect = time.Since(start)
			}
		}
		if s.up == nil && !redial && replayable && !s.server.multiplexed() {
			if up := s.server.takeIdle(); up != nil {
				s.up, s.reused = up, true
				s.rec.Connect = 0
			}
		}
		if s.up == nil {
			start := time.Now()
			up, reused, err := s.connect(redial)
			s.rec.Connect = time.Since(start)
			if reused {
				s.rec.Connect = 0
			} else if s.c.abortCause() == nil {
				s.server.Observe(err)
			}
			if err != nil {
				last = err
				s.tried = append(s.tried, s.server)
				s.server.Release()
				s.server = nil
				if attempt >= b.Retries() || s.c.abortCause() != nil {
					return abortWith(connectStatus(err), err)
				}
				attempt++
				continue
			}
			s.up, s.reused = up, reused
		}
		s.c.setSrv(s.up.Conn())

		sentBody, err := s.sendRequest()
		if err == nil {
			err = s.readResponseHead()
		}
		if err == nil {
			return cont
		}
		if _, cerr, serr := s.endUpload(); cerr != nil {
			s.dropUpstream()
			return s.clientBodyError(cerr)
		} else if serr != nil {
			err = serr // the server read nothing for the server timeout
		}
		if errors.Is(err, errClientSide) {
			return s.clientBodyError(err)
		}
		responded, reused := s.up.Responded(), s.reused
		s.dropUpstream()
		again := replayable || errors.Is(err, layers.ErrUnprocessed)
		if !responded && again && !sentBody && s.c.abortCause() == nil && !isTimeout(err) {
			if reused {
				redial = true // the pooled connection was dead: same server, new connection
				continue
			}
			if attempt < b.Retries() {
				last = errEmptyResponse
				s.tried = append(s.tried, s.server)
				s.server.Release()
				s.server = nil
				attempt++
				continue
			}
		}
		return s.serverError(err, responded)
	}
}

// streamH3 opens a request stream to an HTTP/3 server within the connect
// timeout; nil while the server cannot be reached over QUIC (or the
// request cannot go over HTTP/3), and the request takes the TCP path.
func (s *httpSession) streamH3() upstream {
	ctx := context.Background()
	if d := s.c.f.o.Timeouts.Connect; d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	st, err := s.server.h3.Stream(ctx)
	if err != nil {
		s.c.f.log.Debug("HTTP/3 to the server failed; sending the request over TCP",
			slog.String("server", s.server.Name()), slog.String("error", err.Error()))
		return nil
	}
	return st
}

// connectStatus answers a failed connect: 503 when no server could be
// reached (HAProxy's answer), 502 when one was reached but its TLS
// handshake failed — unknown authority, wrong name, expired: the server
// is not the one configured, as nginx answers it.
func connectStatus(err error) int {
	var se *layers.StageError
	if errors.As(err, &se) && se.Side == layers.SideServer && se.Phase == layers.PhaseHandshake {
		return 502
	}
	return 503
}

// errClientSide marks an error of the client side while the request body
// was forwarded.
var errClientSide = errors.New("client side")

type clientSideError struct{ err error }

func (e *clientSideError) Error() string { return e.err.Error() }
func (e *clientSideError) Unwrap() []error {
	return []error{errClientSide, e.err}
}

// clientBodyError answers a failure of the client side while the request
// was sent: a body that could not be read ("client http body: <cause>",
// answered with the codec's status, or 408 on a timeout), or a failed
// write of an interim response.
func (s *httpSession) clientBodyError(err error) result {
	var ce *clientSideError
	if errors.As(err, &ce) {
		var we *layers.StageError
		if errors.As(ce.err, &we) {
			return abortWith(0, we)
		}
	}
	var se interface{ StatusCode() int }
	switch {
	case errors.As(err, &se):
		return abortWith(se.StatusCode(), clientBodyTermination(err))
	case isTimeout(err):
		return abortWith(408, clientBodyTermination(err))
	}
	return abortWith(0, clientBodyTermination(err))
}

// serverError answers a failed exchange with the server.
func (s *httpSession) serverError(err error, responded bool) result {
	var se interface{ StatusCode() int }
	switch {
	case isTimeout(err):
		return abortWith(504, errServerTimeout)
	case errors.As(err, &se):
		return abortWith(502, &layers.StageError{Side: layers.SideServer, Stage: "http response", Err: err})
	case errors.Is(err, layers.ErrStreamReset) && s.c.stream:
		// A reset answers a reset: the client's stream is reset too,
		// not answered with a 502 it could take for the server's.
		return abortWith(0, layers.Wrap(layers.SideServer, "http response", layers.PhaseNone, err))
	case !responded:
		return abortWith(502, &layers.StageError{Side: layers.SideServer, Stage: "http response", Err: errEmptyResponse.Err})
	}
	return abortWith(502, layers.Wrap(layers.SideServer, "http response", layers.PhaseNone, err))
}

func (s *httpSession) acquire(b *Backend) (*Server, time.Duration, error) {
	if srv, err, decided := b.acquireNow(&s.pick, s.tried); decided {
		return srv, 0, err
	}
	ctx := context.Background()
	if d := s.c.f.o.Timeouts.Queue; d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	return b.acquire(ctx, s.pick, s.tried)
}

// connect returns the outbound stage for the request, within the connect
// timeout: a new HTTP/1 connection to s.server, or for an HTTP/2 server a
// stream on a shared connection (reused) or on a new one (fresh asks for a
// new one).
func (s *httpSession) connect(fresh bool) (up upstream, reused bool, err error) {
	ctx := context.Background()
	if d := s.c.f.o.Timeouts.Connect; d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	srv := s.server
	if srv.mux != nil {
		dial := func(ctx context.Context) (net.Conn, error) { return s.dial(ctx, srv) }
		st, reused, err := srv.mux.Stream(ctx, dial, fresh, s.c.f.streamOptions())
		if err != nil {
			return nil, false, layers.Wrap(layers.SideServer, "tcp", layers.PhaseConnect, timeoutIf(ctx, err))
		}
		return st, reused, nil
	}
	conn, err := s.dial(ctx, srv)
	if err != nil {
		return nil, false, err
	}
	return s.c.f.newUpstream(conn), false, nil
}

func (s *httpSession) dial(ctx context.Context, srv *Server) (net.Conn, error) {
	conn, err := srv.Connector().Connect(ctx, s.c.in)
	if err != nil {
		return nil, layers.Wrap(layers.SideServer, "tcp", layers.PhaseConnect, timeoutIf(ctx, err))
	}
	return conn, nil
}

// sendRequest writes the request head and the body data already
// buffered; a body not complete by then goes on flowing on an uploader
// goroutine (http_upload.go). sentBody is true once any body byte went
// out, or may.
func (s *httpSession) sendRequest() (sentBody bool, err error) {
	up, st, h := s.up, s.st, s.req
	if h.Body == msg.BodyNone {
		return false, up.WriteRequest(h, nil, true)
	}
	first, rerr := st.ReadBodyBuffered()
	if rerr != nil && rerr != io.EOF {
		return false, &clientSideError{rerr}
	}
	end := rerr == io.EOF
	var trailers msg.Fields
	if end {
		trailers = st.Trailers()
	}
	if end && len(trailers) > 0 {
		if err := up.WriteRequest(h, first, false); err != nil {
			return len(first) > 0, err
		}
		s.rec.BytesIn += int64(len(first))
		return true, up.EndBody(trailers)
	}
	if err := up.WriteRequest(h, first, end); err != nil || end {
		if err == nil {
			s.rec.BytesIn += int64(len(first))
		}
		return len(first) > 0, err
	}
	s.rec.BytesIn += int64(len(first))
	// The rest of what is buffered (the next chunks of a small chunked
	// body) goes now; only a body still incomplete after it flows on while
	// the response is read (http_upload.go).
	for {
		p, rerr := st.ReadBodyBuffered()
		if len(p) > 0 {
			if err := up.WriteBody(p); err != nil {
				return true, err
			}
			s.rec.BytesIn += int64(len(p))
		}
		switch {
		case rerr == io.EOF:
			return true, up.EndBody(st.Trailers())
		case rerr != nil:
			return true, &clientSideError{rerr}
		case p == nil:
			s.startUpload()
			return true, nil
		}
	}
}

// readResponseHead reads response heads until the final one, forwarding
// the interim ones (1xx) to the client — except 100 Continue, which the
// session answers itself.
func (s *httpSession) readResponseHead() error {
	start := time.Now()
	srvTimeout := s.c.f.o.Timeouts.Server
	d := srvTimeout
	for {
		h, err := s.up.ReadHead(d)
		if err != nil {
			if more, left := s.waitMore(err, srvTimeout); more {
				d = left
				continue
			}
			return err
		}
		if h.Status >= 200 || (h.Status == 101 && s.req.Upgrade != nil) {
			s.resp = h
			s.rec.Response = time.Since(start)
			return nil
		}
		if h.Status == 101 || h.Status == 100 {
			continue // an unasked switch is dropped, as is 100 (answered by us)
		}
		removeHopByHop(h)
		if err := s.st.WriteHead(h, nil, false); err != nil {
			return &clientSideError{layers.Wrap(layers.SideClient, "", layers.PhaseData, err)}
		}
	}
}
