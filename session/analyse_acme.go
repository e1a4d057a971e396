package session

import "bytes"

// ACMEChallenge answers an ACME HTTP-01 validation request: given the
// request's Host field and path, it returns the key authorization to
// answer with, or ok false when the request is not a validation this
// process (or an instance sharing its storage) is waiting for.
// acme.Provider.HTTPChallenge has this shape.
type ACMEChallenge func(host, path string) (body []byte, ok bool)

// acmeChallengePrefix is the path prefix of HTTP-01 validation requests
// (RFC 8555 §8.3).
var acmeChallengePrefix = []byte("/.well-known/acme-challenge/")

var (
	methodGET = []byte("GET")
	textPlain = []byte("text/plain")
)

// analyseACMEChallenge answers HTTP-01 validations before the rules and the
// routes, so that neither a deny rule nor the redirect to https can stand
// between the CA and the answer. Any other request goes on untouched.
func analyseACMEChallenge(s *httpSession) result {
	respond := s.c.f.o.ACMEChallenge
	h := s.req
	if respond == nil || !bytes.Equal(h.Method, methodGET) || !bytes.HasPrefix(h.Path, acmeChallengePrefix) {
		return cont
	}
	body, ok := respond(string(h.Authority), string(h.Path))
	if !ok {
		return cont
	}
	s.localResponse(200, body)
	s.local.Set(nameContentType, textPlain)
	return answer
}
