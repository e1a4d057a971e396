package session

import (
	"errors"

	"github.com/strata-proxy/strata/layers"
)

// Termination is why a session ended: the side, stage and phase where the
// first terminal event happened, and its cause. Its String is the
// termination state of the access log, written exactly as
// layers.StageError.Error writes it, so that one grep finds both.
type Termination struct {
	Side  layers.Side
	Stage string // short stage name ("tls", "peek", "queue"); "" or "tcp" for the socket itself
	Phase layers.Phase
	// Cause is the short reason ("connection refused", "timeout"); empty
	// for a normal end ("client close").
	Cause string
}

// TerminationOf turns err into a Termination: a *layers.StageError keeps
// its place; anything else is charged to the proxy.
func TerminationOf(err error) Termination {
	var se *layers.StageError
	if errors.As(err, &se) {
		return Termination{Side: se.Side, Stage: se.Stage, Phase: se.Phase, Cause: layers.Cause(se.Err)}
	}
	return Termination{Side: layers.SideProxy, Cause: layers.Cause(err)}
}

// closedBy is the Termination of a normal end: the side that closed first.
func closedBy(side layers.Side) Termination {
	return Termination{Side: side, Phase: layers.PhaseClose}
}

// IsError reports whether the session ended on an error (a timeout, a
// refused connect, a reset) rather than by one side closing normally.
func (t Termination) IsError() bool { return t.Cause != "" }

// String is the termination state: "client tls handshake: bad
// certificate", "server connect: connection refused", "client idle
// timeout", "proxy route: no route", "client close".
func (t Termination) String() string { return string(t.appendText(nil)) }

// appendText appends String's text to b without allocating.
func (t Termination) appendText(b []byte) []byte {
	b = append(b, t.Side.String()...)
	if t.Stage != "" && t.Stage != "tcp" {
		b = append(b, ' ')
		b = append(b, t.Stage...)
	}
	if p := t.Phase.String(); t.Phase != layers.PhaseNone && p != t.Stage {
		b = append(b, ' ')
		b = append(b, p...)
	}
	switch t.Cause {
	case "":
		return b
	case "timeout":
		return append(b, " timeout"...)
	}
	b = append(b, ": "...)
	return append(b, t.Cause...)
}
