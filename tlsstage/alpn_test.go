package tlsstage

import (
	"slices"
	"testing"
)

func TestALPNTable(t *testing.T) {
	var tab ALPNTable[string]
	if _, ok := tab.Lookup(""); ok {
		t.Error("empty table has a default")
	}
	tab.Register("h2", "h2 mux")
	tab.Register("http/1.1", "h1 mux")
	tab.Register("acme-tls/1", "acme")
	tab.Register("h2", "h2 mux v2")
	tab.Default("h1 mux (no alpn)")

	if got, want := tab.Protocols(), []string{"h2", "http/1.1", "acme-tls/1"}; !slices.Equal(got, want) {
		t.Errorf("Protocols = %q, want %q", got, want)
	}
	tab.Protocols()[0] = "mutated"
	tests := []struct {
		name   string
		alpn   string
		want   string
		wantOK bool
	}{
		{"h2 replaced", "h2", "h2 mux v2", true},
		{"h1", "http/1.1", "h1 mux", true},
		{"acme", "acme-tls/1", "acme", true},
		{"no alpn", "", "h1 mux (no alpn)", true},
		{"unknown", "spdy/3", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tab.Lookup(tc.alpn)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("Lookup(%q) = %q, %v; want %q, %v", tc.alpn, got, ok, tc.want, tc.wantOK)
			}
		})
	}
	var viaEmpty ALPNTable[int]
	viaEmpty.Register("", 7)
	if got, ok := viaEmpty.Lookup(""); got != 7 || !ok || len(viaEmpty.Protocols()) != 0 {
		t.Errorf("Register(\"\") did not set the default: %d %v %q", got, ok, viaEmpty.Protocols())
	}
}
