package h1

import (
	"github.com/strata-proxy/strata/layers/h1/h1test"
	"testing"
)

// vector is one block of the shared vectors (h1test/vectors.txt).
type vector struct {
	name     string
	response bool
	method   string // the request's method, for a response
	in       []byte
	accept   bool
	status   int // for a rejection
}

// readVectors returns the shared vectors of layers/h1/h1test in this
// file's form.
func readVectors() ([]vector, error) {
	hs, err := h1test.Vectors()
	if err != nil {
		return nil, err
	}
	vs := make([]vector, len(hs))
	for i, h := range hs {
		vs[i] = vector{name: h.Name, response: h.Response, method: h.Method, in: h.In, accept: h.Accept, status: h.Status}
	}
	return vs, nil
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	vs, err := readVectors()
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
