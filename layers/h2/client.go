package h2

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/http2"

	"github.com/strata-proxy/strata/layers"
)

// The outbound HTTP/2 stage.
//
// A Client holds the HTTP/2 connections to one server and shares them
// among the sessions sending requests there: each request is a stream
// (a *Stream, which speaks the session's outbound-stage vocabulary) on a
// connection that has room for one more, as HAProxy's backend h2 mux does.
// The connections themselves are made by the server's Connector (socket,
// PROXY header, TLS encode) and handed to Add; x/net/http2's ClientConn
// runs the protocol on each (framing, hpack, flow control, its read loop).
//
// Which connection carries a stream is decided under Client.mu, with a
// count of the streams taken on each, so that sessions never push a
// connection past the peer's SETTINGS_MAX_CONCURRENT_STREAMS: a new
// connection is opened instead. Connections that closed, or got a GOAWAY
// and have no stream left, are dropped when next looked at; x/net closes a
// connection idle for IdleTimeout by itself.

// ClientOptions configures the HTTP/2 connections to one server.
type ClientOptions struct {
	// IdleTimeout closes a connection that carried no stream for that
	// long (10 s when 0).
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a response's decoded header list (64 KiB when
	// 0).
	MaxHeaderBytes int
}

// Client is the HTTP/2 outbound stage of one server: its shared
// connections. It is safe for concurrent use.
type Client struct {
	t *http2.Transport

	mu      sync.Mutex
	conns   []*sharedConn // oldest first; new streams fill the oldest with room
	dialing chan struct{} // closed when the connection being made is shared (or failed)
	closed  bool          // CloseIdle was called: no new connection is kept
}

// sharedConn is one connection of a Client.
type sharedConn struct {
	cc   *http2.ClientConn
	conn net.Conn
	// streams counts the Streams taken on the connection and not yet
	// closed; guarded by Client.mu.
	streams int
}

// NewClient returns the stage for one server.
func NewClient(o ClientOptions) *Client {
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 10 * time.Second
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = 64 << 10
	}
	// The buffer settings live on net/http's Transport, which x/net's
	// reads them from; that one never carries a request.
	t1 := &http.Transport{
		// The response is forwarded as the server sent it: no transparent
		// gzip, no header the client did not send.
		DisableCompression:     true,
		MaxResponseHeaderBytes: int64(o.MaxHeaderBytes),
		HTTP2: &http.HTTP2Config{
			// What a stream may receive before the session reads it (a
			// slow client), and a connection in all: the memory a server
			// can make strata hold, as x/net's server bounds uploads.
			MaxReceiveBufferPerStream:     1 << 20,
			MaxReceiveBufferPerConnection: 16 << 20,
		},
	}
	t, err := http2.ConfigureTransports(t1)
	if err != nil {
		panic("h2: " + err.Error()) // only on a Transport configured twice
	}
	t.DisableCompression = true
	t.MaxHeaderListSize = uint32(o.MaxHeaderBytes)
	t.IdleConnTimeout = o.IdleTimeout
	// A connection that has been silent for a while is asked for a PING,
	// and closed when none comes back, so that a server gone without a
	// word (power off, cut link) does not hold streams until their own
	// timeouts; one whose socket takes no byte for long is closed too.
	t.ReadIdleTimeout = 15 * time.Second
	t.PingTimeout = 5 * time.Second
	t.WriteByteTimeout = 30 * time.Second
	// Connections come from the server's Connector, never from here.
	t.DialTLSContext = func(context.Context, string, string, *tls.Config) (net.Conn, error) {
		return nil, errors.New("h2: the client stage does not dial")
	}
	return &Client{t: t}
}

// ErrNotH2 is the cause of a failed Stream for a TLS connection on which
// the server did not agree to HTTP/2 by ALPN.
var ErrNotH2 = errors.New(`server did not negotiate "h2" by ALPN; check that it speaks HTTP/2 over TLS or use proto h1`)

// Dial makes a new connection to the server (its Connector's Connect).
type Dial func(ctx context.Context) (net.Conn, error)

// Stream returns a stream to the server for one request: on a shared
// connection with room for it, else on a new connection made by dial.
// One connection is made at a time: a session that finds no room while
// another makes one waits for it and takes a stream there if it has room,
// so that a burst of requests opens the connections it needs, not one
// each. fresh asks for a new connection whatever the others' room (after
// a connection turned out dead). reused reports a stream on a connection
// that existed before. ctx bounds the wait and the dial; errors are
// dial's, a failure to start HTTP/2 on the new connection
// (*layers.StageError, stage "h2"), or ctx's.
func (c *Client) Stream(ctx context.Context, dial Dial, fresh bool, o StreamOptions) (st *Stream, reused bool, err error) {
	if fresh {
		st, err := c.dialStream(ctx, dial, o, nil)
		return st, false, err
	}
	for {
		st, wait, done := c.take(o)
		if st != nil {
			return st, true, nil
		}
		if done != nil { // this session makes the next connection
			st, err := c.dialStream(ctx, dial, o, done)
			return st, false, err
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
}

// take returns a stream on a connection with room; else, when a
// connection is being made, a channel closed when it is done; else a
// channel that the caller closes when the connection it makes is shared
// (or failed).
func (c *Client) take(o StreamOptions) (st *Stream, wait <-chan struct{}, done chan struct{}) {
	var drop []*sharedConn
	c.mu.Lock()
	k := 0
	for _, sc := range c.conns {
		s := sc.cc.State()
		if s.Closed || (s.Closing && sc.streams == 0) {
			drop = append(drop, sc)
			continue
		}
		c.conns[k] = sc
		k++
		if st != nil || s.Closing {
			continue
		}
		// A connection is shared once the server's SETTINGS are in
		// (start), so this is the server's limit (1000 when it sets none).
		limit := int(s.MaxConcurrentStreams)
		if sc.streams < limit && sc.cc.CanTakeNewRequest() {
			sc.streams++
			st = newStream(c, sc, o)
		}
	}
	clear(c.conns[k:])
	c.conns = c.conns[:k]
	if st == nil {
		if c.dialing != nil {
			wait = c.dialing
		} else {
			done = make(chan struct{})
			c.dialing = done
		}
	}
	c.mu.Unlock()
	for _, sc := range drop {
		sc.cc.Close()
	}
	return st, wait, done
}

// dialStream makes a connection, starts HTTP/2 on it and shares it;
// done, when set, is the channel of sessions waiting for it.
func (c *Client) dialStream(ctx context.Context, dial Dial, o StreamOptions, done chan struct{}) (*Stream, error) {
	var sc *sharedConn
	conn, err := dial(ctx)
	if err == nil {
		sc, err = c.start(ctx, conn)
	}
	c.mu.Lock()
	if done != nil {
		c.dialing = nil
		close(done)
	}
	if err != nil {
		c.mu.Unlock()
		return nil, err
	}
	sc.streams = 1
	if c.closed {
		// A retired backend serves this one request and keeps nothing.
		sc.cc.SetDoNotReuse()
	} else {
		c.conns = append(c.conns, sc)
	}
	c.mu.Unlock()
	return newStream(c, sc, o), nil
}

// start runs HTTP/2 on conn, a new connection to the server. On a TLS
// connection the server must have chosen "h2" by ALPN (ErrNotH2); a
// cleartext one is HTTP/2 with prior knowledge (h2c). It waits for the
// answer to a PING, so that the server's SETTINGS (its concurrency limit)
// are known before the connection is shared and a server that does not
// speak HTTP/2 is found out at once. conn is closed on failure.
func (c *Client) start(ctx context.Context, conn net.Conn) (*sharedConn, error) {
	fail := func(err error) (*sharedConn, error) {
		conn.Close()
		// The preface and SETTINGS exchange is HTTP/2's handshake: its
		// failure is the server's answer, not its absence.
		return nil, &layers.StageError{Side: layers.SideServer, Stage: "h2", Phase: layers.PhaseHandshake, Err: err}
	}
	if tc, ok := conn.(interface{ ConnectionState() tls.ConnectionState }); ok {
		if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
			return fail(fmt.Errorf("%w (got %q)", ErrNotH2, p))
		}
	}
	cc, err := c.t.NewClientConn(conn)
	if err != nil {
		return fail(err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, startTimeout)
		defer cancel()
	}
	if err := cc.Ping(ctx); err != nil {
		cc.Close()
		if ctx.Err() != nil {
			err = fmt.Errorf("%w: no answer to PING", layers.ErrTimeout)
		}
		return fail(fmt.Errorf("server did not answer as HTTP/2: %w", err))
	}
	return &sharedConn{cc: cc, conn: conn}, nil
}

// startTimeout bounds the PING of a new connection when the caller set no
// deadline (no connect timeout).
const startTimeout = 10 * time.Second

// release gives back a stream's place on sc.
func (c *Client) release(sc *sharedConn) {
	c.mu.Lock()
	sc.streams--
	closeNow := sc.streams == 0 && (c.closed || sc.cc.State().Closing)
	c.mu.Unlock()
	if closeNow {
		sc.cc.Close()
	}
}

// Conns returns the number of open connections the Client keeps now.
func (c *Client) Conns() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, sc := range c.conns {
		if !sc.cc.State().Closed {
			n++
		}
	}
	return n
}

// CloseIdle closes the connections that carry no stream and retires the
// others: they take no new stream and close when their last one ends.
// Streams taken later are served on connections of their own, closed after
// them. Call it when the backend is retired (a reload, shutdown).
func (c *Client) CloseIdle() {
	c.mu.Lock()
	c.closed = true
	conns := c.conns
	c.conns = nil
	var idle []*sharedConn
	for _, sc := range conns {
		if sc.streams == 0 {
			idle = append(idle, sc)
		} else {
			sc.cc.SetDoNotReuse()
		}
	}
	c.mu.Unlock()
	for _, sc := range idle {
		sc.cc.Close()
	}
}

// Probe sends one request (method, path, host) over HTTP/2 on conn, a new
// connection to a server, and returns the response status: the "http"
// health check of servers spoken to over HTTP/2. conn is closed after.
func Probe(ctx context.Context, conn net.Conn, method, path, host string) (int, error) {
	defer conn.Close()
	if tc, ok := conn.(interface{ ConnectionState() tls.ConnectionState }); ok {
		if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
			return 0, fmt.Errorf("%w (got %q)", ErrNotH2, p)
		}
	}
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	t := &http2.Transport{DisableCompression: true}
	cc, err := t.NewClientConn(conn)
	if err != nil {
		return 0, err
	}
	defer cc.Close()
	scheme := "http"
	if _, ok := conn.(interface{ ConnectionState() tls.ConnectionState }); ok {
		scheme = "https"
	}
	req, err := http.NewRequestWithContext(ctx, method, scheme+"://"+host+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header["User-Agent"] = []string{"strata-health-check"}
	resp, err := cc.RoundTrip(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
