// Package msg is strata's version-neutral HTTP message (DESIGN.md §3; what
// HAProxy calls HTX, kept small).
//
// The HTTP/1 stage (layers/h1) parses a request or response head straight
// from its buffer into a Head; the HTTP/2 and HTTP/3 stages will convert
// their streams into the same form. The session's analysers read and edit
// only this form, never a protocol's bytes, and the outbound stage writes it
// back out in its own framing. Nothing here is specific to one HTTP version:
// message framing is a BodyKind, not a Content-Length or Transfer-Encoding
// field.
//
// Memory: the byte slices in a Head (method, path, field names and values)
// usually point into the buffer the stage parsed from. They are valid until
// that stage reuses or returns the buffer, and must never be written
// through: to change a value, store a new slice. Reset keeps the Fields
// capacity, so a Head reused for every message on a connection allocates
// nothing in the steady state.
package msg
