package session

import (
	"net/http"
	"sync/atomic"
	"testing"
)

// TestHTTPACMEChallenge checks that HTTP-01 validations are answered before
// the deny rules and the redirect to https, and that every other request
// goes on to them.
func TestHTTPACMEChallenge(t *testing.T) {
	checkGoroutines(t)
	var backendHits atomic.Int32
	be := startHTTPBackend(t, func(w http.ResponseWriter, r *http.Request) {
		backendHits.Add(1)
		w.Write([]byte("app"))
	})
	b := newBackend(t, "app", "", 0, be.addr())
	var asked atomic.Value
	h := startHTTP(t, HTTPFrontendOptions{
		ACMEChallenge: func(host, path string) ([]byte, bool) {
			asked.Store(host + " " + path)
			if path == "/.well-known/acme-challenge/tok-en_1" {
				return []byte("tok-en_1.thumbprint"), true
			}
			return nil, false
		},
		Rules: []HTTPRule{{Match: HTTPMatch{Hosts: []string{"denied.test"}}, Deny: true, Status: 403}},
		Routes: []HTTPRoute{
			{Match: HTTPMatch{PathPrefixes: []string{"/app/"}}, Backend: b},
			{Match: HTTPMatch{PathPrefixes: []string{"/"}}, Redirect: &HTTPRedirect{Status: 308, Scheme: "https"}},
		},
	})
	cases := []struct {
		name, req      string
		status         int
		body, location string
	}{
		{"validation answered", "GET /.well-known/acme-challenge/tok-en_1 HTTP/1.1\r\nHost: a.test\r\n\r\n", 200, "tok-en_1.thumbprint", ""},
		{"validation answered despite a deny rule", "GET /.well-known/acme-challenge/tok-en_1 HTTP/1.1\r\nHost: denied.test\r\n\r\n", 200, "tok-en_1.thumbprint", ""},
		{"unknown token redirected", "GET /.well-known/acme-challenge/other HTTP/1.1\r\nHost: a.test\r\n\r\n", 308, "", "https://a.test/.well-known/acme-challenge/other"},
		{"POST is not a validation", "POST /.well-known/acme-challenge/tok-en_1 HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0\r\n\r\n", 308, "", "https://a.test/.well-known/acme-challenge/tok-en_1"},
		{"other paths redirected", "GET /x?y=1 HTTP/1.1\r\nHost: a.test:80\r\n\r\n", 308, "", "https://a.test/x?y=1"},
		{"routes still work", "GET /app/ HTTP/1.1\r\nHost: a.test\r\n\r\n", 200, "app", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := rawExchange(t, h, tc.req, "")
			if resp.StatusCode != tc.status || body != tc.body || resp.Header.Get("Location") != tc.location {
				t.Fatalf("got %d %q Location %q; want %d %q %q", resp.StatusCode, body, resp.Header.Get("Location"), tc.status, tc.body, tc.location)
			}
		})
	}
	if got := asked.Load(); got == nil {
		t.Fatal("the responder was never asked")
	}
	if n := backendHits.Load(); n != 1 {
		t.Fatalf("backend saw %d requests, want 1", n)
	}
}
