// Package layers is the bottom of strata's pipeline: the entities and the
// stage vocabulary every other package speaks (DESIGN.md §1, §4).
//
// A Listener accepts a socket and makes an Initiator for it; the L4 rules
// run on the Initiator before anything else is allocated; then the front
// stages (PROXY decode, ClientHello peek, TLS decode, …) are stacked on the
// connection, each one wrapping the net.Conn below it and reporting what it
// learned (handshake facts) or why it failed (a *StageError) up to the
// session. A Connector makes the backend Connection.
//
// layers imports no other strata package; tlsstage, session and cmd build
// on it.
package layers
