package msg

import (
	"slices"
	"testing"
)

func fieldsOf(kv ...string) Fields {
	var fs Fields
	for i := 0; i < len(kv); i += 2 {
		fs = append(fs, Field{Name: []byte(kv[i]), Value: []byte(kv[i+1])})
	}
	return fs
}

func render(fs Fields) []string {
	var out []string
	for _, f := range fs {
		out = append(out, string(f.Name)+": "+string(f.Value))
	}
	return out
}

func TestFields(t *testing.T) {
	tests := []struct {
		name string
		in   Fields
		op   func(*Head)
		want []string
	}{
		{"set replaces first keeps position and case, drops later", fieldsOf("A", "1", "x-Y", "2", "B", "3", "X-y", "4"),
			func(h *Head) { h.Set([]byte("X-Y"), []byte("9")) }, []string{"A: 1", "x-Y: 9", "B: 3"}},
		{"set appends when absent", fieldsOf("A", "1"),
			func(h *Head) { h.Set([]byte("B"), []byte("2")) }, []string{"A: 1", "B: 2"}},
		{"add appends duplicate", fieldsOf("A", "1"),
			func(h *Head) { h.Add([]byte("a"), []byte("2")) }, []string{"A: 1", "a: 2"}},
		{"del removes all case-insensitively", fieldsOf("A", "1", "b", "2", "a", "3", "C", "4"),
			func(h *Head) {
				if n := h.Del("A"); n != 2 {
					panic(n)
				}
			}, []string{"b: 2", "C: 4"}},
		{"del absent", fieldsOf("A", "1"), func(h *Head) { h.Del("z") }, []string{"A: 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &Head{Fields: tt.in}
			tt.op(h)
			if got := render(h.Fields); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestGetValues(t *testing.T) {
	h := &Head{Fields: fieldsOf("Accept", "a", "ACCEPT", "b", "Host", "h")}
	if got := string(h.Get("accept")); got != "a" {
		t.Errorf("Get = %q", got)
	}
	if h.Get("missing") != nil || h.Has("missing") || !h.Has("HOST") {
		t.Error("Has/Get of missing field")
	}
	vs := h.Values(nil, "Accept")
	if len(vs) != 2 || string(vs[0]) != "a" || string(vs[1]) != "b" {
		t.Errorf("Values = %q", vs)
	}
}

func TestResetKeepsCapacity(t *testing.T) {
	h := &Head{Fields: make(Fields, 3, 16), Status: 200, Close: true}
	h.Reset()
	if cap(h.Fields) != 16 || len(h.Fields) != 0 || h.Status != 0 || h.Close || h.ContentLength != -1 {
		t.Errorf("after Reset: %+v", h)
	}
	allocs := testing.AllocsPerRun(100, func() {
		h.Reset()
		h.Add(nameHost, nameHost)
		_ = h.Get("host")
		h.Set(nameHost, nameHost)
		h.Del("host")
	})
	if allocs != 0 {
		t.Errorf("allocs = %v", allocs)
	}
}

var nameHost = []byte("Host")

func TestEqualFold(t *testing.T) {
	for _, tt := range []struct {
		b, s string
		want bool
	}{
		{"Content-Length", "content-length", true},
		{"content-lengtH", "CONTENT-LENGTH", true},
		{"content-length ", "content-length", false},
		{"\xc5\xbfey", "key", false}, // no Unicode folding (ſ vs s)
		{"K", "\u212a", false},
		{"[", "{", false},
	} {
		if got := EqualFold([]byte(tt.b), tt.s); got != tt.want {
			t.Errorf("EqualFold(%q, %q) = %v", tt.b, tt.s, got)
		}
	}
}

func BenchmarkGet(b *testing.B) {
	h := &Head{Fields: fieldsOf("Host", "a", "User-Agent", "x", "Accept", "*/*", "Accept-Language", "en",
		"Accept-Encoding", "gzip", "Connection", "keep-alive", "Cookie", "a=b", "X-Request-ID", "1")}
	b.ReportAllocs()
	for b.Loop() {
		if h.Get("x-request-id") == nil {
			b.Fatal("not found")
		}
	}
}
