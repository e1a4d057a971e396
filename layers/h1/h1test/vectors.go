// Package h1test holds test support shared by the tests of layers/h1,
// session and integration, as net/http/httptest does for net/http: the
// HTTP/1 smuggling and malformed-input vectors and their reader. Nothing
// outside tests imports it.
package h1test

import (
	"bufio"
	"bytes"
	_ "embed"
	"fmt"
	"strconv"
	"strings"
)

//go:embed vectors.txt
var vectorsFile []byte

// Vector is one block of vectors.txt: an HTTP/1 input and what strict
// parsing makes of it.
type Vector struct {
	Name     string
	Response bool   // a response, not a request
	Method   string // for a response, the request's method (default GET)
	In       []byte
	Accept   bool // exactly one complete message the codec parses
	Status   int  // for a rejection, the status the codec answers
}

// Vectors returns the vectors of vectors.txt, whose format is described
// at its top. The file is part of the package, so it cannot fail to parse
// at run time without failing this package's own test.
func Vectors() ([]Vector, error) { return parse(vectorsFile) }

func parse(data []byte) ([]Vector, error) {
	var vs []Vector
	var cur *Vector
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		s := sc.Text()
		errf := func(format string, args ...any) error {
			return fmt.Errorf("vectors.txt:%d: %s", line, fmt.Sprintf(format, args...))
		}
		switch {
		case s == "" || strings.HasPrefix(s, "#"):
		case strings.HasPrefix(s, "=== "):
			vs = append(vs, Vector{Name: strings.TrimPrefix(s, "=== "), Method: "GET"})
			cur = &vs[len(vs)-1]
		case cur == nil:
			return nil, errf("%q before the first ===", s)
		case strings.HasPrefix(s, "kind: "):
			cur.Response = strings.TrimPrefix(s, "kind: ") == "response"
		case strings.HasPrefix(s, "method: "):
			cur.Method = strings.TrimPrefix(s, "method: ")
		case strings.HasPrefix(s, "in: "):
			u, err := strconv.Unquote(strings.TrimPrefix(s, "in: "))
			if err != nil {
				return nil, errf("%v", err)
			}
			cur.In = append(cur.In, u...)
		case s == "want: accept":
			cur.Accept = true
		case strings.HasPrefix(s, "want: reject "):
			st, err := strconv.Atoi(strings.TrimPrefix(s, "want: reject "))
			if err != nil {
				return nil, errf("%v", err)
			}
			cur.Status = st
		default:
			return nil, errf("unknown line %q", s)
		}
	}
	return vs, sc.Err()
}
