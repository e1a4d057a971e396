// Command h3load is strata's own HTTP/3 load client: it keeps C QUIC
// connections open to one server, runs M requests in flight on each (one
// request stream per request, GET after GET), and prints the rate, the
// latency percentiles and, given the server's pid, the server's CPU time
// per request.
//
//	h3load -url https://localhost:8443/small -c 16 -m 16 -d 8s -ca root.crt -pid 1234
//
// It is what the README's HTTP/3 numbers were measured with, next to
// Caddy's HTTP/3 on the same machine.
package main
