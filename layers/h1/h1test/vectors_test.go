package h1test

import "testing"

// TestVectorsParse: the embedded file parses, names are unique, and every
// vector says what it expects.
func TestVectorsParse(t *testing.T) {
	vs, err := Vectors()
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) < 150 {
		t.Fatalf("%d vectors; want at least 150", len(vs))
	}
	seen := map[string]bool{}
	for _, v := range vs {
		if seen[v.Name] {
			t.Errorf("duplicate vector name %q", v.Name)
		}
		seen[v.Name] = true
		if len(v.In) == 0 || (!v.Accept && v.Status == 0) {
			t.Errorf("%s: no input or no expectation", v.Name)
		}
	}
	for _, bad := range []string{"in: \"x\"\n", "=== a\nwant: reject x\n", "=== a\nbogus\n", "=== a\nin: \"unterminated\n"} {
		if _, err := parse([]byte(bad)); err == nil {
			t.Errorf("parse(%q) succeeded; want an error", bad)
		}
	}
}
