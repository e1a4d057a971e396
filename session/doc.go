// Package session is the middle of strata's pipeline: the only entity
// between an Initiator (an accepted connection, after its front stages) and
// a Connector (a server of a backend) (DESIGN.md §1).
//
// A session exists only when data must be forwarded. It runs the front
// stages (PROXY decode, ClientHello peek, TLS decode), routes to a Backend,
// takes a server slot (queueing and retrying as the backend says), connects,
// and then owns the forwarding buffer pair — one buffer per direction, taken
// from a layers.BufferPool when data arrives and given back when empty —
// until both directions are done. When both ends are plain TCP sockets the
// bytes move through the kernel (splice) and no user-space buffer is used.
//
// The session decides when everything ends and records why, as a
// Termination ("client idle timeout", "server connect: connection refused",
// "client close") in one access-log Record per session.
//
// The package also holds what the session decides with: routing (Router),
// backends, servers, load balancing, queues and health checks.
package session
