package session

import (
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-proxy/strata/layers"
	"github.com/strata-proxy/strata/layers/msg"
)

var (
	nameContentType = []byte("Content-Type")
	textHTML        = []byte("text/html")
)

// localResponse prepares s.local, a response the session writes itself.
func (s *httpSession) localResponse(status int, body []byte) {
	h := &s.local
	h.Reset()
	h.Major, h.Minor = 1, 1
	h.Status = status
	h.Reason = reasonBytes(status)
	h.Body, h.ContentLength = msg.BodyLength, int64(len(body))
	if len(body) > 0 {
		h.Add(nameContentType, textHTML)
	}
	s.body = body
}

// localError prepares the error response for status: the frontend's page
// for it, or a short default. Errors that leave the request's framing in
// doubt close the connection.
func (s *httpSession) localError(status int) {
	body, ok := s.c.f.errorPages[status]
	if !ok {
		body = defaultErrorBody(status)
	}
	s.localResponse(status, body)
	switch status {
	case 400, 408, 413, 414, 431, 501, 505:
		s.local.Close = true
	}
}

// writeLocal writes s.local to the client.
func (s *httpSession) writeLocal() {
	s.status = s.local.Status
	if s.local.Close || (s.st != nil && !s.st.BodyDone()) {
		s.c.linger = true
	}
	var err error
	if s.st == nil {
		err = s.c.mux.WriteError(&s.local, s.body)
	} else {
		err = s.st.WriteHead(&s.local, s.body, true)
	}
	if err != nil && s.term == nil {
		s.term = layers.Wrap(layers.SideClient, "", layers.PhaseData, err)
	}
}

// forwardResponse runs the response analysers on the final response head
// and forwards the response to the client, or switches to a tunnel after a
// 101.
func (s *httpSession) forwardResponse() {
	for i := range responseAnalysers {
		if res := responseAnalysers[i].run(s); res.action != resContinue {
			s.term = res.err
			s.dropUpstream()
			if res.status != 0 {
				s.localError(res.status)
				s.writeLocal()
			}
			return
		}
	}
	resp, up, st := s.resp, s.up, s.st
	s.status = resp.Status
	// The server closing its connection says nothing about the client's.
	resp.Close = false
	if resp.Status == 101 || (string(s.method) == "CONNECT" && resp.Status < 300) {
		s.tunnel()
		return
	}
	srvTimeout := s.c.f.o.Timeouts.Server
	first, rerr := up.ReadBodyBuffered()
	if rerr != nil && rerr != io.EOF {
		s.term = layers.Wrap(layers.SideServer, "http response", layers.PhaseData, rerr)
		s.writeTruncated(resp)
		return
	}
	end := rerr == io.EOF && len(up.Trailers()) == 0
	if err := st.WriteHead(resp, first, end); err != nil {
		s.clientWriteFailed(err)
		return
	}
	s.rec.BytesOut += int64(len(first))
	if end {
		s.finishUpstream()
		return
	}
	if rerr == io.EOF {
		if err := st.EndBody(up.Trailers()); err != nil {
			s.clientWriteFailed(err)
			return
		}
		s.finishUpstream()
		return
	}
	d := srvTimeout
	for {
		p, err := up.ReadBody(d)
		if len(p) > 0 {
			d = srvTimeout
			if werr := st.WriteBody(p); werr != nil {
				s.clientWriteFailed(werr)
				return
			}
			s.rec.BytesOut += int64(len(p))
		}
		if err == io.EOF {
			if werr := st.EndBody(up.Trailers()); werr != nil {
				s.clientWriteFailed(werr)
				return
			}
			s.finishUpstream()
			return
		}
		if err != nil {
			if more, left := s.waitMore(err, srvTimeout); more {
				d = left
				continue
			}
			if _, cerr, serr := s.endUpload(); cerr != nil {
				// The client's body failed: the copier aborted the server
				// connection, which is why its read failed.
				s.term = cerr
				s.dropUpstream()
				return
			} else if serr != nil {
				err = serr
			}
			if isTimeout(err) {
				s.term = &layers.StageError{Side: layers.SideServer, Stage: "http response", Phase: layers.PhaseData, Err: layers.ErrTimeout}
			} else {
				s.term = layers.Wrap(layers.SideServer, "http response", layers.PhaseData, err)
			}
			s.dropUpstream()
			return // the stage saw a short body: the client connection closes
		}
	}
}

// writeTruncated handles a response whose body failed before its head was
// written: the head cannot be trusted to describe what follows.
func (s *httpSession) writeTruncated(resp *msg.Head) {
	s.dropUpstream()
	s.localError(502)
	s.writeLocal()
}

func (s *httpSession) clientWriteFailed(err error) {
	s.term = layers.Wrap(layers.SideClient, "", layers.PhaseData, err)
	s.dropUpstream()
}

// tunnel forwards bytes both ways after a protocol switch, until both
// directions end or the tunnel timeout passes with no data either way.
func (s *httpSession) tunnel() {
	if s.uploading() {
		// A body sent with the upgrade request must be whole before the
		// connection becomes a tunnel.
		s.upl.wg.Wait()
		if complete, err, _ := s.endUpload(); !complete {
			s.term = err
			if err == nil {
				s.term = &layers.StageError{Side: layers.SideServer, Stage: "http request", Phase: layers.PhaseData, Err: errors.New("request body not sent whole")}
			}
			s.dropUpstream()
			return
		}
	}
	if err := s.st.WriteHead(s.resp, nil, false); err != nil {
		s.clientWriteFailed(err)
		return
	}
	s.tunneled = true
	cli := s.st.Tunnel()
	srv := s.up.Tunnel()
	s.c.setSrv(srv)
	s.up = nil
	defer func() {
		s.c.setSrv(nil)
		srv.Close()
	}()
	t := s.c.f.o.Timeouts
	idle := t.Tunnel
	if idle <= 0 {
		idle = max(t.Client, t.Server)
	}
	var last atomic.Int64 // unix ns of the last data either way
	last.Store(time.Now().UnixNano())
	var wg sync.WaitGroup
	var mu sync.Mutex
	record := func(err error) {
		mu.Lock()
		if s.term == nil {
			s.term = err
		}
		mu.Unlock()
	}
	pipe := func(src, dst net.Conn, from, to layers.Side) int64 {
		bufp := s.c.f.buffers.Get()
		defer s.c.f.buffers.Put(bufp)
		buf := *bufp
		var n int64
		for {
			if idle > 0 {
				src.SetReadDeadline(time.Now().Add(idle))
			}
			k, err := src.Read(buf)
			if k > 0 {
				last.Store(time.Now().UnixNano())
				if idle > 0 {
					dst.SetWriteDeadline(time.Now().Add(idle))
				}
				if _, werr := dst.Write(buf[:k]); werr != nil {
					record(layers.Wrap(to, "", layers.PhaseData, werr))
					src.SetDeadline(aLongTimeAgo)
					return n
				}
				n += int64(k)
			}
			if err == nil {
				continue
			}
			if isTimeout(err) && idle > 0 && s.c.abortCause() == nil &&
				time.Since(time.Unix(0, last.Load())) < idle {
				continue // the other direction is active
			}
			if err == io.EOF {
				if cw, ok := dst.(closeWriter); ok && cw.CloseWrite() == nil {
					return n
				}
				dst.SetDeadline(aLongTimeAgo)
				return n
			}
			if isTimeout(err) {
				record(&layers.StageError{Side: from, Stage: "tunnel", Phase: layers.PhaseIdle, Err: layers.ErrTimeout})
			} else {
				record(layers.Wrap(from, "tunnel", layers.PhaseData, err))
			}
			dst.SetDeadline(aLongTimeAgo)
			return n
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.rec.BytesIn = pipe(cli, srv, layers.SideClient, layers.SideServer)
	}()
	s.rec.BytesOut = pipe(srv, cli, layers.SideServer, layers.SideClient)
	wg.Wait()
}

// reasonBytes is the reason phrase for status, from a table built once.
func reasonBytes(status int) []byte {
	if status >= 100 && status < 600 {
		if r := reasons[status-100]; r != nil {
			return r
		}
	}
	return []byte(statusText(status))
}

var reasons = func() (t [500][]byte) {
	for _, c := range []int{100, 200, 301, 302, 303, 307, 308, 400, 401, 403, 404, 405, 408, 413, 414,
		429, 431, 500, 501, 502, 503, 504, 505} {
		t[c-100] = []byte(statusText(c))
	}
	return t
}()

// defaultErrorBody is the short page for an error status, as HAProxy
// writes them.
func defaultErrorBody(status int) []byte {
	if status >= 100 && status < 600 {
		if b := errorBodies[status-100]; b != nil {
			return b
		}
	}
	return []byte("<html><body><h1>" + strconv.Itoa(status) + " " + statusText(status) + "</h1></body></html>\n")
}

var errorBodies = func() (t [500][]byte) {
	for c, why := range map[int]string{
		400: "Your browser sent an invalid request.",
		403: "Request forbidden by administrative rules.",
		404: "The requested URL was not found.",
		408: "Your browser didn't send a complete request in time.",
		413: "The request body is larger than allowed.",
		414: "The request target is too long.",
		431: "The request's header fields are too large.",
		500: "An internal server error occurred.",
		501: "The request uses something this proxy does not implement.",
		502: "The server returned an invalid or incomplete response.",
		503: "No server is available to handle this request.",
		504: "The server didn't respond in time.",
		505: "The HTTP version is not supported.",
	} {
		t[c-100] = []byte("<html><body><h1>" + strconv.Itoa(c) + " " + statusText(c) + "</h1>\n" + why + "\n</body></html>\n")
	}
	return t
}()
