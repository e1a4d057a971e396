package session

import (
	"bytes"
	"strings"
	"testing"
	"unsafe"

	"github.com/strata-proxy/strata/layers/msg"
)

// FuzzCookieValue checks the persistence cookie parser on any Cookie
// fields and cookie name: it never panics, what it finds is a slice of
// one of the Cookie field values (no copy, no bytes of its own), and it
// agrees with a plain reference reading of RFC 6265 §4.2: the first pair
// whose name, trimmed of spaces and tabs, equals name exactly (case
// matters), with its value trimmed and unquoted. The seed corpus is in
// testdata/fuzz/FuzzCookieValue.
func FuzzCookieValue(f *testing.F) {
	f.Add("x=1; SRV=b; y=2", "", "SRV")
	f.Add(`SRV="d"`, "SRV=e", "SRV")
	f.Add("SRVX=i; XSRV=j", "srv=h", "SRV")
	f.Add("SRV; x=1;;=;", "SRV=g", "SRV")
	f.Add(" \tSRV\t=\t\" \";", "", "SRV")
	f.Add("a=b", "a=c", "")
	f.Fuzz(func(t *testing.T, v1, v2, name string) {
		var fs msg.Fields
		fs.Add([]byte("Host"), []byte("x"))
		fs.Add([]byte("Cookie"), []byte(v1))
		fs.Add([]byte("x-other"), []byte(v2+"; "+name+"=other"))
		fs.Add([]byte("cOOKIE"), []byte(v2))
		got, ok := cookieValue(fs, name)

		want, wantOK := referenceCookie([]string{v1, v2}, name)
		if ok != wantOK || string(got) != want {
			t.Fatalf("cookieValue(%q, %q; %q) = %q, %v; the reference finds %q, %v", v1, v2, name, got, ok, want, wantOK)
		}
		if ok && len(got) > 0 && !within(got, fs[1].Value) && !within(got, fs[3].Value) {
			t.Fatalf("value %q does not point into a Cookie field", got)
		}
		if !ok && got != nil {
			t.Fatalf("no cookie, but a value %q", got)
		}
	})
}

// referenceCookie is cookieValue written the obvious way, on strings.
func referenceCookie(values []string, name string) (string, bool) {
	for _, v := range values {
		for _, pair := range strings.Split(v, ";") {
			k, val, found := strings.Cut(pair, "=")
			if !found || strings.Trim(k, " \t") != name {
				continue
			}
			val = strings.Trim(val, " \t")
			if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
				val = val[1 : len(val)-1]
			}
			return val, true
		}
	}
	return "", false
}

// within reports whether sub is a slice of the memory of b.
func within(sub, b []byte) bool {
	if len(b) == 0 {
		return false
	}
	s, e := uintptr(unsafe.Pointer(&b[0])), uintptr(unsafe.Pointer(&b[0]))+uintptr(len(b))
	p := uintptr(unsafe.Pointer(&sub[0]))
	return p >= s && p+uintptr(len(sub)) <= e && bytes.Contains(b, sub)
}
