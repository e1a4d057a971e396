package layers

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// Side says which end of a session something happened on.
type Side uint8

// The sides of a session.
const (
	SideNone   Side = iota
	SideClient      // the connection accepted from a client
	SideServer      // the connection made to a server
	SideProxy       // strata itself (limits, shutdown, configuration)
)

func (s Side) String() string {
	switch s {
	case SideClient:
		return "client"
	case SideServer:
		return "server"
	case SideProxy:
		return "proxy"
	}
	return "none"
}

// Phase says what a side was doing when something ended it.
type Phase uint8

// The phases of a session, in the order they happen.
const (
	PhaseNone      Phase = iota
	PhaseL4              // L4 rules on the initiator
	PhaseProxy           // reading or writing a PROXY protocol header
	PhasePeek            // peeking at the TLS ClientHello
	PhaseHandshake       // TLS handshake
	PhaseRoute           // choosing a backend
	PhaseQueue           // waiting for a server slot
	PhaseConnect         // connecting to a server
	PhaseData            // forwarding bytes
	PhaseIdle            // waiting for bytes (idle timeouts)
	PhaseClose           // closing (drain, shutdown)
)

func (p Phase) String() string {
	switch p {
	case PhaseL4:
		return "l4"
	case PhaseProxy:
		return "proxy"
	case PhasePeek:
		return "peek"
	case PhaseHandshake:
		return "handshake"
	case PhaseRoute:
		return "route"
	case PhaseQueue:
		return "queue"
	case PhaseConnect:
		return "connect"
	case PhaseData:
		return "data"
	case PhaseIdle:
		return "idle"
	case PhaseClose:
		return "close"
	}
	return "none"
}

// Sentinel errors that callers test with errors.Is.
var (
	ErrTimeout   = errors.New("timeout")
	ErrDenied    = errors.New("denied by l4 rule")
	ErrRateLimit = errors.New("source connection rate exceeded")
	ErrSourceCap = errors.New("too many connections from source")
	ErrNoServer  = errors.New("no server available")
	ErrQueueFull = errors.New("queue full")
	ErrNoRoute   = errors.New("no route")
	ErrShutdown  = errors.New("shutting down")
	ErrBadHeader = errors.New("malformed header")
	ErrNotTLS    = errors.New("not a TLS ClientHello")
	ErrTooLarge  = errors.New("too large")
	ErrDrained   = errors.New("drain timeout")
	// ErrUnprocessed is a request the server refused before processing
	// any of it (an HTTP/2 REFUSED_STREAM, or a stream above a GOAWAY's
	// last stream ID, RFC 9113 §8.7): it may be sent again, whatever its
	// method, if none of its body was consumed.
	ErrUnprocessed = errors.New("refused by the server before processing")
	// ErrStreamReset is a stream of a multiplexed connection that the
	// peer reset (an HTTP/2 RST_STREAM): a proxy resets the stream on the
	// other side too, where it can.
	ErrStreamReset = errors.New("stream reset")
	// ErrAnswered is what a stage returns when it answered the connection
	// itself and closed it, as the TLS decode stage does for an ACME
	// TLS-ALPN-01 validation: no session follows and nothing is logged as
	// a failure.
	ErrAnswered = errors.New("answered by the stage")
)

// StageError is an error raised by a stage, carrying where it happened so
// that the session can write its termination state. Its text is the
// termination state itself: "client tls handshake: bad certificate".
type StageError struct {
	Side  Side
	Stage string // short stage name: "tcp", "proxy", "peek", "tls", "l4", "queue"
	Phase Phase
	Err   error
}

// Errorf makes a *StageError whose cause is fmt.Errorf(format, args...).
func Errorf(side Side, stage string, phase Phase, format string, args ...any) *StageError {
	return &StageError{Side: side, Stage: stage, Phase: phase, Err: fmt.Errorf(format, args...)}
}

// Wrap returns err as a *StageError at the given place, unless it already
// is one (the innermost stage that saw an error names it).
func Wrap(side Side, stage string, phase Phase, err error) error {
	if err == nil {
		return nil
	}
	var se *StageError
	if errors.As(err, &se) {
		return err
	}
	return &StageError{Side: side, Stage: stage, Phase: phase, Err: err}
}

// Error is the termination state the error stands for: "client tls
// handshake: bad certificate", "server connect: connection refused",
// "client idle timeout".
func (e *StageError) Error() string {
	c := Cause(e.Err)
	if c == "timeout" {
		return e.Where() + " timeout"
	}
	return e.Where() + ": " + c
}

// Where is the "side stage phase" prefix of the termination state,
// without the cause: "client tls handshake". The plain socket stage
// ("tcp") is left out: "server connect", not "server tcp connect".
func (e *StageError) Where() string {
	s := e.Side.String()
	if e.Stage != "" && e.Stage != "tcp" {
		s += " " + e.Stage
	}
	if e.Phase != PhaseNone && e.Phase.String() != e.Stage {
		s += " " + e.Phase.String()
	}
	return s
}

func (e *StageError) Unwrap() error { return e.Err }

// Cause reduces err to the short, greppable reason of a termination state:
// "connection refused", "timeout", "bad certificate", … rather than the
// nested "dial tcp 127.0.0.1:1: connect: connection refused".
func Cause(err error) string {
	switch {
	case err == nil:
		return "none"
	case errors.Is(err, ErrTimeout), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "unreachable"
	}
	var se *StageError
	if errors.As(err, &se) {
		return Cause(se.Err)
	}
	var te interface{ Timeout() bool }
	if errors.As(err, &te) && te.Timeout() {
		return "timeout"
	}
	return err.Error()
}
