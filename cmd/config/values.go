package config

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
)

// sizeUnits maps a lower-case unit suffix to its multiplier: KB is 1000
// bytes, KiB 1024.
var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	// Longest suffixes first so "kib" is not read as "b".
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30},
	{"kb", 1000}, {"mb", 1000 * 1000}, {"gb", 1000 * 1000 * 1000},
	{"b", 1},
}

// parseSize reads "512", "512B", "4KB", "16KiB", "1MiB" into bytes.
func parseSize(s string) (int64, error) {
	num, mult := strings.TrimSpace(s), int64(1)
	lower := strings.ToLower(num)
	for _, u := range sizeUnits {
		if strings.HasSuffix(lower, u.suffix) {
			num, mult = strings.TrimSpace(num[:len(num)-len(u.suffix)]), u.mult
			break
		}
	}
	if num == "" || num[0] < '0' || num[0] > '9' {
		return 0, fmt.Errorf("invalid size %q; write e.g. 512, 4KB or 16KiB", s)
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("size %q is too large", s)
		}
		return 0, fmt.Errorf("invalid size %q; write e.g. 512, 4KB or 16KiB", s)
	}
	if v > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return v * mult, nil
}

// formatSize prints a size the way a user would write it.
func formatSize(v int64) string {
	switch {
	case v >= 1<<20 && v%(1<<20) == 0:
		return strconv.FormatInt(v>>20, 10) + "MiB"
	case v >= 1<<10 && v%(1<<10) == 0:
		return strconv.FormatInt(v>>10, 10) + "KiB"
	}
	return strconv.FormatInt(v, 10)
}

// maxPortRange is the most ports one bind entry may expand to.
const maxPortRange = 1024

// parsePort reads a port number 1-65535.
func parsePort(s string) (int, error) {
	if s == "" {
		return 0, errors.New("missing port")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("invalid port %q", s)
		}
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 || v > 65535 {
		if err != nil {
			return 0, fmt.Errorf("port %s out of range 1-65535", s)
		}
		return 0, fmt.Errorf("port %d out of range 1-65535", v)
	}
	return v, nil
}

// splitHostPort splits "host:port" and "[v6]:port". The host is returned
// without brackets and checked: empty, an IP address or a host name.
func splitHostPort(s string) (host, port string, err error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", "", fmt.Errorf("missing port in %q; write host:port", s)
	}
	host, port = s[:i], s[i+1:]
	if strings.HasPrefix(host, "[") {
		if !strings.HasSuffix(host, "]") {
			return "", "", fmt.Errorf("missing ']' in address %q", s)
		}
		host = host[1 : len(host)-1]
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.Is6() || ip.Is4In6() {
			return "", "", fmt.Errorf("invalid IPv6 address %q", host)
		}
		return host, port, nil
	}
	if strings.ContainsAny(host, "[]") {
		return "", "", fmt.Errorf("invalid address %q", s)
	}
	if strings.Contains(host, ":") {
		return "", "", fmt.Errorf("IPv6 address in %q must be in brackets, as [%s]:%s", s, host, port)
	}
	if host == "" {
		return "", port, nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return host, port, nil
	}
	if !validHostname(host) {
		return "", "", fmt.Errorf("invalid host %q", host)
	}
	return host, port, nil
}

// validHostname reports whether s is a DNS name (letters, digits, hyphens,
// dot-separated labels of at most 63 bytes) that is not all digits and dots.
func validHostname(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	letter := false
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
				letter = true
			case c >= '0' && c <= '9', c == '-':
			default:
				return false
			}
		}
	}
	return letter
}

// parseBind reads one bind entry: "host:port" or "host:a-b".
func parseBind(s string) ([]ListenAddr, error) {
	host, port, err := splitHostPort(s)
	if err != nil {
		return nil, err
	}
	lo, hi := port, port
	if a, b, ok := strings.Cut(port, "-"); ok {
		lo, hi = a, b
	}
	first, err := parsePort(lo)
	if err != nil {
		return nil, err
	}
	last, err := parsePort(hi)
	if err != nil {
		return nil, err
	}
	if first > last {
		return nil, fmt.Errorf("port range %d-%d is reversed; write %d-%d", first, last, last, first)
	}
	if last-first+1 > maxPortRange {
		return nil, fmt.Errorf("port range %d-%d has %d ports, more than %d", first, last, last-first+1, maxPortRange)
	}
	out := make([]ListenAddr, 0, last-first+1)
	for p := first; p <= last; p++ {
		out = append(out, ListenAddr{Network: "tcp", Host: host, Port: p})
	}
	return out, nil
}

// parsePrefix reads a CIDR; a bare IP is a /32 or /128.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR %q", s)
		}
		if p.Addr().Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR %q: zones are not allowed", s)
		}
		return p.Masked(), nil
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid CIDR or IP address %q", s)
	}
	if ip.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("invalid IP address %q: zones are not allowed", s)
	}
	return netip.PrefixFrom(ip, ip.BitLen()), nil
}

// parseSNI reads a server name pattern: a host name or "*.suffix".
func parseSNI(s string) (string, error) {
	name := strings.ToLower(strings.TrimSuffix(s, "."))
	check := strings.TrimPrefix(name, "*.")
	if strings.Contains(check, "*") || !validHostname(check) {
		return "", fmt.Errorf("invalid server name %q; write a host name or *.domain", s)
	}
	return name, nil
}

// validName reports whether s is a valid frontend or backend name:
// [A-Za-z0-9_.-]+.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// validToken reports whether s is an RFC 9110 token, the grammar of
// methods, header field names and cookie names.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// fieldValueProblem says why s cannot be sent as a header field value, or
// returns "". Control bytes other than HTAB (CR and LF above all) would
// split or smuggle fields; surrounding whitespace would be stripped by the
// receiver.
func fieldValueProblem(s string) string {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\r', c == '\n':
			return "contains a line break (CR or LF)"
		case c == 0:
			return "contains a NUL byte"
		case c < 0x20 && c != '\t', c == 0x7f:
			return fmt.Sprintf("contains the control byte 0x%02x", c)
		}
	}
	if strings.TrimLeft(s, " \t") != s || strings.TrimRight(s, " \t") != s {
		return "has leading or trailing whitespace"
	}
	return ""
}

// parseHostPattern reads a request host pattern: a host name, an IP
// address or "*.domain", returned in lower case without a trailing dot.
func parseHostPattern(s string) (string, error) {
	if ip, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil && ip.Zone() == "" {
		return ip.String(), nil
	}
	name := strings.ToLower(strings.TrimSuffix(s, "."))
	check := strings.TrimPrefix(name, "*.")
	if strings.Contains(check, "*") || !validHostname(check) {
		if strings.Contains(s, ":") || strings.Contains(s, "/") {
			return "", fmt.Errorf("invalid host %q; write a host name, an IP address or *.domain, without a port or a scheme", s)
		}
		return "", fmt.Errorf("invalid host %q; write a host name, an IP address or *.domain", s)
	}
	return name, nil
}

// parseAuthority checks a host or host:port to send in a Host field or a
// Location: a host name or IP address (IPv6 in brackets) and an optional
// port. It returns s unchanged.
func parseAuthority(s string) (string, error) {
	if strings.ContainsAny(s, "/?#@") {
		return "", fmt.Errorf("invalid host %q: write it without a scheme or a path", s)
	}
	if !strings.Contains(s, ":") {
		if _, err := netip.ParseAddr(s); err != nil && !validHostname(s) {
			return "", fmt.Errorf("invalid host %q; write a host name or an IP address, and :port if needed", s)
		}
		return s, nil
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		ip, err := netip.ParseAddr(s[1 : len(s)-1])
		if err != nil || !ip.Is6() || ip.Zone() != "" {
			return "", fmt.Errorf("invalid IPv6 address %q", s)
		}
		return s, nil
	}
	host, port, err := splitHostPort(s)
	if err != nil {
		return "", err
	}
	if host == "" {
		return "", fmt.Errorf("missing host in %q", s)
	}
	if _, err := parsePort(port); err != nil {
		return "", err
	}
	return s, nil
}

// pathProblem says why s cannot be used as an absolute path (with a query
// when query), or returns "": it must start with "/" and hold visible ASCII
// only, with '%' starting a %XX escape and no '#'.
func pathProblem(s string, query bool) string {
	if !strings.HasPrefix(s, "/") {
		return "must start with /"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c <= ' ' || c >= 0x7f:
			return "must be visible ASCII; percent-encode spaces and other bytes"
		case c == '#':
			return "must not contain a fragment (#)"
		case c == '?' && !query:
			return "must not contain a query (?)"
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return "has a '%' that does not start a %XX escape"
			}
		}
	}
	return ""
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// validCookieValue reports whether s is made of RFC 6265 cookie-octets.
func validCookieValue(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == ',' || c == ';' || c == '\\' {
			return false
		}
	}
	return true
}
