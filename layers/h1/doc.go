// Package h1 is strata's HTTP/1.1 codec: the parse and append functions
// the HTTP/1 stage uses to turn the bytes in its buffer into the
// version-neutral message of layers/msg and back (DESIGN.md §3).
//
// Parsing works straight on the caller's buffer: ParseRequestHead and
// ParseResponseHead fill a reused *msg.Head whose slices point into that
// buffer, and report ErrIncomplete until the whole head is there; the
// returned length lets the caller parse a pipelined message from the rest.
// A ChunkedDecoder strips chunked framing incrementally without copying.
// Nothing allocates on the common path.
//
// The parser is strict by RFC 9112, because a proxy that frames a message
// differently from its backend lets a client smuggle a request past it: any
// ambiguity in framing (Content-Length with Transfer-Encoding, differing
// lengths, obfuscated codings, obs-fold, bare CR or LF, control bytes) is an
// *Error carrying the status to answer with (400, 413, 414, 431, 501, 505),
// and the caller closes the connection after answering it.
//
// Choices where RFC 9112 leaves room, all on the strict side: a bare LF is
// never a line terminator (§2.2 lets a recipient accept it; a proxy must
// not); repeated identical Content-Length values, as fields or a list
// ("5, 5"), fold to one as HAProxy does, differing ones are 400; chunked is
// the only transfer coding (any other is 501, a request whose last coding
// is not chunked 400, and Transfer-Encoding in an HTTP/1.0 message 400);
// a framing field name spelt with '_' is 400; an absolute-form target's
// authority replaces the Host field; ',' is refused in a Host. The vectors
// in h1test/vectors.txt pin each rule down.
//
// Writing is canonical: AppendRequestHead and AppendResponseHead emit
// exactly one framing field derived from Head.Body (never a framing field
// copied from the input), and AppendChunk / AppendLastChunk emit chunked
// framing without extensions. To write a head and a body without copying
// the body, append the head into a scratch slice and write
// net.Buffers{head, body} (writev); AppendChunkBuffers does the same for
// one chunk.
package h1
