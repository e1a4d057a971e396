package h1

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// vector is one block of testdata/vectors.txt.
type vector struct {
	name     string
	response bool
	method   string // the request's method, for a response
	in       []byte
	accept   bool
	status   int // for a rejection
}

// readVectors parses testdata/vectors.txt (its format is described at the
// top of the file). The end-to-end tests copy this function.
func readVectors(path string) ([]vector, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var vs []vector
	var cur *vector
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	line := 0
	for sc.Scan() {
		line++
		s := sc.Text()
		errf := func(format string, args ...any) error {
			return fmt.Errorf("%s:%d: %s", path, line, fmt.Sprintf(format, args...))
		}
		switch {
		case s == "" || strings.HasPrefix(s, "#"):
		case strings.HasPrefix(s, "=== "):
			vs = append(vs, vector{name: strings.TrimPrefix(s, "=== "), method: "GET"})
			cur = &vs[len(vs)-1]
		case cur == nil:
			return nil, errf("%q before the first ===", s)
		case strings.HasPrefix(s, "kind: "):
			cur.response = strings.TrimPrefix(s, "kind: ") == "response"
		case strings.HasPrefix(s, "method: "):
			cur.method = strings.TrimPrefix(s, "method: ")
		case strings.HasPrefix(s, "in: "):
			u, err := strconv.Unquote(strings.TrimPrefix(s, "in: "))
			if err != nil {
				return nil, errf("%v", err)
			}
			cur.in = append(cur.in, u...)
		case s == "want: accept":
			cur.accept = true
		case strings.HasPrefix(s, "want: reject "):
			st, err := strconv.Atoi(strings.TrimPrefix(s, "want: reject "))
			if err != nil {
				return nil, errf("%v", err)
			}
			cur.status = st
		default:
			return nil, errf("unknown line %q", s)
		}
	}
	return vs, sc.Err()
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	vs, err := readVectors("testdata/vectors.txt")
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

// TestVectors runs every smuggling and malformed-input vector: a rejected
// one must fail with its status; an accepted one must be exactly one
// complete message whose canonical form parses back the same.
func TestVectors(t *testing.T) {
	vs := loadVectors(t)
	if len(vs) < 150 {
		t.Fatalf("only %d vectors", len(vs))
	}
	seen := map[string]bool{}
	for _, v := range vs {
		if seen[v.name] {
			t.Fatalf("duplicate vector %q", v.name)
		}
		seen[v.name] = true
		if !v.accept && v.status == 0 {
			t.Fatalf("vector %q has no want", v.name)
		}
		t.Run(v.name, func(t *testing.T) {
			var method []byte
			if v.response {
				method = []byte(v.method)
			}
			m, err := parseMessage(v.in, v.response, method, Limits{})
			if !v.accept {
				if got := statusOf(err); got != v.status {
					t.Fatalf("input %q: got %v, want reject %d", v.in, err, v.status)
				}
				return
			}
			if err != nil {
				t.Fatalf("input %q: %v, want accept", v.in, err)
			}
			if m.n != len(v.in) {
				t.Fatalf("input %q: message is %d of %d bytes", v.in, m.n, len(v.in))
			}
			checkRoundTrip(t, m, method)
		})
	}
}

// TestVectorsIncremental feeds each vector's input in growing prefixes: a
// prefix must never be rejected with another status than the whole input
// would give, nor accepted as a different head.
func TestVectorsIncremental(t *testing.T) {
	for _, v := range loadVectors(t) {
		if v.response {
			continue
		}
		t.Run(v.name, func(t *testing.T) {
			for i := 0; i < len(v.in); i++ {
				_, err := parseMessage(v.in[:i], false, nil, Limits{})
				if err == nil {
					t.Fatalf("prefix %q is a whole message", v.in[:i])
				}
				if err == ErrIncomplete {
					continue
				}
				if v.accept {
					t.Fatalf("prefix %q refused with %v but the whole input is accepted", v.in[:i], err)
				}
				if got := statusOf(err); got != v.status && v.status != 431 && v.status != 414 {
					t.Fatalf("prefix %q refused with %v, the whole input with %d", v.in[:i], err, v.status)
				}
			}
		})
	}
}
