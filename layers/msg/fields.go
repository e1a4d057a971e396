package msg

// Field is one header or trailer field. Name keeps the case it was received
// or set with; comparisons of names are ASCII case-insensitive. The slices
// are read-only and live as long as the memory they point into (see the
// package comment).
type Field struct {
	Name, Value []byte
}

// Fields is an ordered list of fields: a message's headers or its
// trailers. Repeated names are kept as separate entries, in order.
type Fields []Field

// Index returns the index of the first field named name, or -1.
func (fs Fields) Index(name string) int {
	for i := range fs {
		if EqualFold(fs[i].Name, name) {
			return i
		}
	}
	return -1
}

// Get returns the value of the first field named name, or nil.
func (fs Fields) Get(name string) []byte {
	if i := fs.Index(name); i >= 0 {
		return fs[i].Value
	}
	return nil
}

// Values appends the values of every field named name to dst, in order.
func (fs Fields) Values(dst [][]byte, name string) [][]byte {
	for i := range fs {
		if EqualFold(fs[i].Name, name) {
			dst = append(dst, fs[i].Value)
		}
	}
	return dst
}

// Del removes every field named name, keeping the others in order, and
// returns how many it removed.
func (fs *Fields) Del(name string) int {
	s := *fs
	j := 0
	for i := range s {
		if EqualFold(s[i].Name, name) {
			continue
		}
		s[j] = s[i]
		j++
	}
	clear(s[j:])
	*fs = s[:j]
	return len(s) - j
}

// Set replaces the first field named name with value (keeping its
// position and the case of its name) and removes later ones; when there is
// none it appends one. name and value are stored, not copied.
func (fs *Fields) Set(name, value []byte) {
	s := *fs
	for i := range s {
		if equalFoldBytes(s[i].Name, name) {
			s[i].Value = value
			j := i + 1
			for k := i + 1; k < len(s); k++ {
				if !equalFoldBytes(s[k].Name, name) {
					s[j] = s[k]
					j++
				}
			}
			clear(s[j:])
			*fs = s[:j]
			return
		}
	}
	*fs = append(s, Field{Name: name, Value: value})
}

// Add appends a field; name and value are stored, not copied.
func (fs *Fields) Add(name, value []byte) {
	*fs = append(*fs, Field{Name: name, Value: value})
}

// EqualFold reports whether b and s are equal under ASCII case folding
// (field names and tokens are ASCII; no Unicode folding, no allocation).
func EqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

func equalFoldBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}
