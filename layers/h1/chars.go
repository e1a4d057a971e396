package h1

// Byte classes, as tables indexed by byte (RFC 9110 §5.6.2, §5.5;
// RFC 3986 §2).
const (
	cTchar  = 1 << iota // token character
	cValue              // field-vchar, obs-text, SP or HTAB: allowed in a field value
	cTarget             // allowed in a request target (visible ASCII except '#')
	cAuth               // allowed in an authority: unreserved, pct, sub-delims, ':', '[', ']'
	cHex
	cQdtext // qdtext of a quoted-string
)

var class = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		switch {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
			t[c] |= cTchar | cAuth
		}
		switch b {
		case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
			t[c] |= cTchar
		}
		switch b {
		// No ',' although RFC 3986 allows it in a reg-name: a Host that
		// reads as a list is an ambiguity between hops, not a name.
		case '-', '.', '_', '~', '%', '!', '$', '&', '\'', '(', ')', '*', '+', ';', '=', ':', '[', ']':
			t[c] |= cAuth
		}
		if b == '\t' || b == ' ' || (0x21 <= b && b <= 0x7e) || b >= 0x80 {
			t[c] |= cValue
		}
		if 0x21 <= b && b <= 0x7e && b != '#' {
			t[c] |= cTarget
		}
		if '0' <= b && b <= '9' || 'a' <= b && b <= 'f' || 'A' <= b && b <= 'F' {
			t[c] |= cHex
		}
		if b == '\t' || b == ' ' || b == 0x21 || (0x23 <= b && b <= 0x5b) || (0x5d <= b && b <= 0x7e) || b >= 0x80 {
			t[c] |= cQdtext
		}
	}
	return t
}()

func isTchar(c byte) bool { return class[c]&cTchar != 0 }

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if class[c]&cTchar == 0 {
			return false
		}
	}
	return true
}

func isOWS(c byte) bool { return c == ' ' || c == '\t' }

func trimOWS(b []byte) []byte {
	for len(b) > 0 && isOWS(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isOWS(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}
