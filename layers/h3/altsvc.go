package h3

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// AltSvcMaxAge is how long clients may remember the HTTP/3 endpoint that
// an Alt-Svc value announces (Caddy's and most CDNs' choice is a day).
const AltSvcMaxAge = 24 * time.Hour

// AltSvc is the Alt-Svc field value announcing HTTP/3 on ports, for the
// responses of a frontend's TCP connections (RFC 7838): for example
// `h3=":443"; ma=86400`. Duplicate ports are announced once, in ascending
// order; no port gives "".
func AltSvc(ports []int) string {
	ps := slices.Clone(ports)
	slices.Sort(ps)
	ps = slices.Compact(ps)
	var b strings.Builder
	ma := strconv.Itoa(int(AltSvcMaxAge / time.Second))
	for _, p := range ps {
		if p <= 0 || p > 65535 {
			continue
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(`h3=":`)
		b.WriteString(strconv.Itoa(p))
		b.WriteString(`"; ma=`)
		b.WriteString(ma)
	}
	return b.String()
}
