package session

// Analysers.
//
// An HTTP session runs its analysers in the one order declared below, as
// HAProxy's stream.c does. Each one looks at (and may edit) the request or
// response head of the session and returns a result saying what happens
// next:
//
//   - resContinue: done; run the next analyser.
//   - resWait: it needs more data; the session runs the same analyser
//     again (the analyser itself reads once more, bounded by its timeout,
//     before it returns resWait, so the loop never spins).
//   - resAnswered: it answered the request itself (a redirect route, an
//     ACME HTTP-01 validation): the
//     session writes s.local and stops; nothing is forwarded.
//   - resAbort: the request cannot go on. Status is the error response to
//     write (0: none, the connection just closes); Err is the termination
//     to log (nil with Status 0: the connection ended quietly between
//     requests, and nothing is logged).
//   - resIdle: only from the first analyser: no request came within the
//     grace; the connection is handed over idle (http.go), nothing is
//     logged, and the chain starts again when the client speaks.
//
// Analysers allocate nothing in the steady state: values they set live in
// the session's arena, a scratch buffer reused from request to request.

// action is what an analyser asks the session to do next.
type action uint8

const (
	resContinue action = iota
	resWait
	resAnswered
	resAbort
	resIdle
)

// result is an analyser's answer: the action and, for resAbort, the
// status to answer with and the termination.
type result struct {
	action action
	status int
	err    error
}

var (
	cont     = result{action: resContinue}
	wait     = result{action: resWait}
	answer   = result{action: resAnswered}
	quietly  = result{action: resAbort}
	handOver = result{action: resIdle}
)

func abortWith(status int, err error) result {
	return result{action: resAbort, status: status, err: err}
}

// analyser is one named step of the chain.
type analyser struct {
	name string
	run  func(*httpSession) result
}

// requestAnalysers run in this order on each request, until one does not
// continue. The last one ("connect") makes the balancing decision, connects
// (with retries) and sends the request; it continues once the final
// response head is in.
var requestAnalysers = [...]analyser{
	{"wait-head", analyseWaitHead},             // analyse_waithead.go: http_request timeout → 408, codec errors
	{"acme-challenge", analyseACMEChallenge},   // analyse_acme.go: HTTP-01 validations, before rules and routes
	{"rules", analyseRules},                    // analyse_rules.go: allow/deny
	{"route", analyseRoute},                    // analyse_route.go: host, path, header, SNI, port → backend or redirect (analyse_redirect.go)
	{"hop-by-hop", analyseRequestHopByHop},     // analyse_hopbyhop.go: before anything adds fields
	{"request-headers", analyseRequestHeaders}, // analyse_headers.go: set/add/del
	{"forwarded", analyseForwarded},            // analyse_forwarded.go: X-Forwarded-*, Forwarded
	{"request-id", analyseRequestID},           // analyse_requestid.go
	{"wait-body", analyseWaitBody},             // analyse_waitbody.go: whole body buffered and valid
	{"connect", analyseConnect},                // http_connect.go: balance, connect, retries, send
}

// responseAnalysers run in this order on the final response head.
var responseAnalysers = [...]analyser{
	{"response-hop-by-hop", analyseResponseHopByHop}, // analyse_hopbyhop.go
	{"response-headers", analyseResponseHeaders},     // analyse_headers.go
	{"persistence-cookie", analyseResponseCookie},    // http_balance.go: after the header rules, which cannot remove it
	{"alt-svc", analyseAltSvc},                       // http_mux.go: announce HTTP/3
}
