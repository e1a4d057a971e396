package h2

import (
	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// headerBlock decodes a client's header blocks as their HEADERS and
// CONTINUATION frames arrive (the framer checks that they follow each
// other), into a field list reused from block to block, with the checks
// of RFC 9113 §8.2 and §8.3 that x/net's framer applies to the
// MetaHeadersFrames it builds: a field value with a forbidden byte, a
// field name that is not a lower-case token, a pseudo-header field after
// a regular one, twice, unknown, or response and request ones mixed make
// the request malformed; a list past SETTINGS_MAX_HEADER_LIST_SIZE is
// truncated. Decoding goes on to the end of the block either way, so that
// the HPACK dynamic table stays in step with the client's.
type headerBlock struct {
	dec        *hpack.Decoder
	meta       http2.MetaHeadersFrame
	fields     []hpack.HeaderField
	maxList    int
	remain     int
	invalid    bool
	sawRegular bool
	pseudo     uint8 // the pseudo-header fields seen (bits below)
}

const (
	pseudoMethod = 1 << iota
	pseudoPath
	pseudoScheme
	pseudoAuthority
	pseudoProtocol
	pseudoStatus
	pseudoRequest = pseudoMethod | pseudoPath | pseudoScheme | pseudoAuthority | pseudoProtocol
)

func newHeaderBlock(maxList int) *headerBlock {
	b := &headerBlock{maxList: maxList}
	b.dec = hpack.NewDecoder(headerTableSize, b.emit)
	b.dec.SetMaxStringLength(maxList)
	return b
}

// start begins the block of f and decodes its first fragment; done
// reports that the block ended with it.
func (b *headerBlock) start(f *http2.HeadersFrame) (done bool, err error) {
	clear(b.fields)
	b.fields = b.fields[:0]
	b.meta = http2.MetaHeadersFrame{HeadersFrame: f}
	b.remain, b.invalid, b.sawRegular, b.pseudo = b.maxList, false, false, 0
	b.dec.SetEmitEnabled(true)
	return b.write(f.HeaderBlockFragment(), f.HeadersEnded())
}

// write decodes the next fragment of the block.
func (b *headerBlock) write(frag []byte, end bool) (done bool, err error) {
	if _, err := b.dec.Write(frag); err != nil {
		return false, http2.ConnectionError(http2.ErrCodeCompression)
	}
	if !end {
		return false, nil
	}
	if err := b.dec.Close(); err != nil {
		return false, http2.ConnectionError(http2.ErrCodeCompression)
	}
	b.meta.Fields = b.fields
	return true, nil
}

func (b *headerBlock) fail() {
	b.invalid = true
	b.dec.SetEmitEnabled(false)
}

func (b *headerBlock) emit(hf hpack.HeaderField) {
	if !httpguts.ValidHeaderFieldValue(hf.Value) {
		b.fail()
		return
	}
	if len(hf.Name) > 0 && hf.Name[0] == ':' {
		var bit uint8
		switch hf.Name {
		case ":method":
			bit = pseudoMethod
		case ":path":
			bit = pseudoPath
		case ":scheme":
			bit = pseudoScheme
		case ":authority":
			bit = pseudoAuthority
		case ":protocol":
			bit = pseudoProtocol
		case ":status":
			bit = pseudoStatus
		}
		if bit == 0 || b.sawRegular || b.pseudo&bit != 0 {
			b.fail()
			return
		}
		b.pseudo |= bit
		if b.pseudo&pseudoStatus != 0 && b.pseudo&pseudoRequest != 0 {
			b.fail()
			return
		}
	} else {
		b.sawRegular = true
		if !validWireName(hf.Name) {
			b.fail()
			return
		}
	}
	size := int(hf.Size())
	if size > b.remain {
		b.dec.SetEmitEnabled(false)
		b.meta.Truncated = true
		b.remain = 0
		return
	}
	b.remain -= size
	b.fields = append(b.fields, hf)
}

// validWireName accepts a field name as HTTP/2 carries it: a token, in
// lower case.
func validWireName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !httpguts.IsTokenRune(rune(c)) || 'A' <= c && c <= 'Z' {
			return false
		}
	}
	return true
}
