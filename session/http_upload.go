package session

import (
	"errors"
	"io"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-proxy/strata/layers"
)

// Full-duplex request bodies.
//
// A request whose body is whole in the stage's buffer after the body wait
// (analyse_waitbody.go) — every GET, every small POST — is sent in one
// go before the response is read, on the session's goroutine. A larger
// body is sent the same way up to what was buffered; the rest is copied
// to the server by an uploader goroutine while the session reads and
// forwards the response. A server that answers early (413 before reading
// a large body) or streams its answer while the body still flows (an echo,
// gRPC-like streaming) then never deadlocks with the proxy on full socket
// buffers.
//
// The rules, which keep those of the sequential exchange:
//   - the uploader's reads are bounded by the client timeout, its writes by
//     the server timeout; while it runs, the wait for the response is not
//     bounded by the server timeout (the server may rightly wait for the
//     whole body), and from its end it is, as before; a server that takes
//     none of the body for the server timeout gets its connection closed
//     (504, as when the sequential write timed out);
//   - a client body error (framing, timeout, reset) aborts the server
//     connection at once: the server never sees a complete request (no
//     last chunk, a short Content-Length body); the session answers with
//     the error's status when no response started ("client http body: …");
//   - a final response that arrives while the body still flows is
//     forwarded whole; then the rest of the body is abandoned: the server
//     connection is closed (never pooled) and so is the client's, after a
//     lingering close, as HAProxy and nginx do;
//   - a request whose body started to flow is never replayed.

// uploader copies the rest of a request body to the server on a goroutine
// of its own. The session's goroutine owns running, st and up; the copier
// goroutine writes n, err, timedOut and panicked, read after wg.Wait; the
// atomics are shared.
type uploader struct {
	running bool // a copier was started and not waited for
	wg      sync.WaitGroup
	st      HTTPStream
	up      upstream

	n        int64 // body bytes written to the server
	err      error // what ended the copy early: *clientSideError, or the server's write error
	timedOut bool  // the server read nothing for the server timeout
	panicked *workerPanic

	done     atomic.Bool  // the copier returned
	last     atomic.Int64 // unix ns of the copier's end (0 while it runs)
	stopping atomic.Bool  // the session stops the copier: its errors are not the client's
}

// bodyCanceler is implemented by streams that can interrupt a ReadBody
// blocked on another goroutine (h1.Request). A stream without it is
// waited for: its read ends when the client sends more or by the client
// timeout.
type bodyCanceler interface{ CancelBody() }

// startUpload starts copying the rest of the request body to s.up.
func (s *httpSession) startUpload() {
	u := s.upl
	if u == nil {
		u = new(uploader)
		s.upl = u
	}
	u.running, u.st, u.up, u.n, u.err = true, s.st, s.up, 0, nil
	u.done.Store(false)
	u.stopping.Store(false)
	u.last.Store(0)
	u.wg.Add(1)
	go u.run()
}

func (u *uploader) run() {
	defer u.wg.Done()
	defer func() {
		if p := recover(); p != nil {
			// Raised again on the session's goroutine (endUpload).
			u.panicked = &workerPanic{value: p, stack: debug.Stack()}
			u.err = errors.New("uploader panicked")
			u.up.Conn().Close()
		}
		u.last.Store(time.Now().UnixNano())
		u.done.Store(true)
	}()
	for {
		p, rerr := u.st.ReadBody()
		if len(p) > 0 {
			if err := u.up.WriteBody(p); err != nil {
				u.serverFailed(err)
				return
			}
			u.n += int64(len(p))
		}
		switch {
		case rerr == io.EOF:
			if err := u.up.EndBody(u.st.Trailers()); err != nil {
				u.serverFailed(err)
			}
			return
		case rerr != nil && u.stopping.Load():
			u.err = rerr // the session's cancel, not the client's error
			return
		case rerr != nil:
			u.err = &clientSideError{rerr}
			// Nothing more reaches the server, and the session's wait
			// for the response ends now.
			u.up.Conn().Close()
			return
		}
	}
}

// serverFailed records a failed write to the server. A server that read
// nothing for the server timeout will not answer either: its connection
// is closed, which ends the session's wait for the response (504). Any
// other failure (the server closed after an early answer) leaves the
// response to be read.
func (u *uploader) serverFailed(err error) {
	u.err = err
	if isTimeout(err) && !u.stopping.Load() {
		u.timedOut = true
		u.up.Conn().Close()
	}
}

// uploading reports whether a copier runs (or ran) for this request and
// was not waited for.
func (s *httpSession) uploading() bool { return s.upl != nil && s.upl.running }

// waitMore reports whether a read of the response that timed out (err)
// should wait again, and for how long (left): while the body is still
// being sent, another server timeout d; once it was sent, what is left of
// d from its end (the server timeout runs from the end of the request).
func (s *httpSession) waitMore(err error, d time.Duration) (more bool, left time.Duration) {
	if !s.uploading() || !isTimeout(err) || s.c.abortCause() != nil {
		return false, 0
	}
	u := s.upl
	if !u.done.Load() {
		return true, d
	}
	left = d - time.Since(time.Unix(0, u.last.Load()))
	return u.err == nil && left > 0, left
}

// endUpload waits for the copier, stopping it first when it still runs
// (the response is over, or failed): the rest of the body is abandoned,
// the server connection closed and the client connection marked to close
// after a lingering close. complete reports whether the whole request
// reached the server. clientErr is the client body error that ended the
// copy, as the termination to log ("client http body: …"); serverErr is
// the server write timeout that ended it (the session answers 504).
func (s *httpSession) endUpload() (complete bool, clientErr, serverErr error) {
	if !s.uploading() {
		return true, nil, nil
	}
	u := s.upl
	if !u.done.Load() {
		u.stopping.Store(true)
		s.up.Conn().Close() // wakes a write to the server
		if bc, ok := s.st.(bodyCanceler); ok {
			bc.CancelBody() // wakes a read from the client
		}
	}
	u.wg.Wait()
	u.running, u.st, u.up = false, nil, nil
	timedOut := u.timedOut
	u.timedOut = false
	s.rec.BytesIn += u.n
	if p := u.panicked; p != nil {
		u.panicked = nil
		panic(p)
	}
	stopped := u.stopping.Load()
	switch {
	case errors.Is(u.err, errClientSide):
		return false, clientBodyTermination(u.err), nil
	case u.err == nil && !stopped:
		return true, nil, nil
	case timedOut:
		serverErr = u.err
	}
	if !s.st.BodyDone() {
		s.c.linger = true
	}
	return false, nil, serverErr
}

// clientBodyTermination is the termination of a request body the client
// failed to send: "client http body: <cause>".
func clientBodyTermination(err error) error {
	if isTimeout(err) {
		return &layers.StageError{Side: layers.SideClient, Stage: "http body", Err: layers.ErrTimeout}
	}
	var ce *clientSideError
	if errors.As(err, &ce) {
		err = ce.err
	}
	return &layers.StageError{Side: layers.SideClient, Stage: "http body", Err: err}
}
