package hstream

import (
	"bytes"
	"testing"

	"golang.org/x/net/http2/hpack"

	"github.com/strata-proxy/strata/layers/msg"
)

// fuzzFields splits "name:value" lines into a header list; a name may
// start with ':' (a pseudo-header field).
func fuzzFields(b []byte) []hpack.HeaderField {
	var out []hpack.HeaderField
	for _, line := range bytes.Split(b, []byte("\n")) {
		i := bytes.IndexByte(line[min(1, len(line)):], ':')
		if i < 0 {
			continue
		}
		i += min(1, len(line))
		out = append(out, hpack.HeaderField{Name: string(line[:i]), Value: string(line[i+1:])})
	}
	return out
}

// FuzzBuildHead checks the head built from an HTTP/2 header list, the
// path of the HTTP/2 mux of strata's own: it never panics, a refusal is
// an *Error, and a head it accepts reads the same once written as HTTP/1
// (the checks of FuzzNew).
func FuzzBuildHead(f *testing.F) {
	f.Add([]byte(":method:GET\n:scheme:https\n:authority:example.com\n:path:/\naccept:*/*"), true)
	f.Add([]byte(":method:POST\n:scheme:https\n:authority:example.com:8443\n:path:/up?x=1\ncontent-length:5"), false)
	f.Add([]byte(":method:POST\n:scheme:http\n:path:/\nhost:example.com\nte:trailers\ntrailer:x-sum"), false)
	f.Add([]byte(":method:GET\n:scheme:https\n:authority:a\n:path:/\nhost:b"), true)
	f.Add([]byte(":method:GET\n:scheme:https\n:authority:a\n:path:/\nconnection:close"), true)
	f.Add([]byte(":method:CONNECT\n:authority:example.com:443"), false)
	f.Add([]byte(":method:OPTIONS\n:scheme:https\n:authority:a\n:path:*"), true)
	f.Add([]byte(":method:POST\n:scheme:https\n:authority:a\n:path:/\ncontent-length:+5"), false)
	f.Add([]byte(":method:GET\n:scheme:ftp\n:authority:a\n:path:/"), true)
	f.Fuzz(func(t *testing.T, fields []byte, endStream bool) {
		var h msg.Head
		malformed, err := BuildHead(&h, fuzzFields(fields), endStream, Options{MaxBody: 1 << 20})
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("refusal %v is not an *Error", err)
			}
			return
		}
		if malformed {
			t.Fatal("malformed without an error")
		}
		if len(h.Method) == 0 || !validName(string(h.Method)) {
			return // the HPACK layer refuses an invalid :method first
		}
		checkAccepted(t, &h)
		checkHTTP1(t, &h)
	})
}
