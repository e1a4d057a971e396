package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v4"
)

// maxNodes bounds the size of the document after alias expansion, so that
// a small file of nested aliases cannot make Parse run for ever.
const maxNodes = 1 << 20

// Parse parses, defaults and validates the configuration in data. file is
// used in error messages and its directory resolves relative paths. When the
// configuration is not valid Parse returns every problem it found as Errors.
func Parse(file string, data []byte) (*Config, error) {
	p := &parser{file: file, dir: filepath.Dir(file), checked: map[string]string{}, errAt: map[Pos]bool{}}
	root := p.document(data)
	if root == nil {
		return nil, sortErrors(p.errs)
	}
	cfg := p.config(root)
	if len(p.errs) > 0 {
		return nil, sortErrors(p.errs)
	}
	return cfg, nil
}

// parser is one parse in progress. It collects errors instead of stopping
// at the first so that a user sees every problem at once.
type parser struct {
	file string
	dir  string
	errs Errors

	// listeners counts bind addresses over all frontends, against
	// maxListeners.
	listeners int
	// checked memoises file checks by their paths, so a certificate
	// reached through many aliases is loaded once; the value is the
	// problem found, "" when none.
	checked map[string]string
	// errAt holds the positions of the errors recorded so far.
	errAt map[Pos]bool
}

func (p *parser) errorf(n *yaml.Node, format string, args ...any) {
	line, col := 1, 1
	if n != nil && n.Line >= 1 {
		line = n.Line
		if n.Column >= 1 {
			col = n.Column
		}
	}
	p.errorAt(line, col, fmt.Sprintf(format, args...))
}

func (p *parser) errorAt(line, col int, msg string) {
	line, col = max(line, 1), max(col, 1)
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Col: col, Msg: msg})
	p.errAt[Pos{line, col}] = true
}

// document decodes data into a node tree and returns its root, or nil after
// recording why there is none.
func (p *parser) document(data []byte) *yaml.Node {
	l, err := yaml.NewLoader(bytes.NewReader(data))
	if err != nil {
		p.errorAt(1, 1, err.Error())
		return nil
	}
	var doc yaml.Node
	if err := l.Load(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.errorAt(1, 1, "empty configuration")
		} else {
			p.yamlError(err)
		}
		return nil
	}
	var next yaml.Node
	if err := l.Load(&next); err == nil {
		p.errorf(&next, "only one YAML document is allowed")
		return nil
	} else if !errors.Is(err, io.EOF) {
		p.yamlError(err)
		return nil
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			p.errorAt(1, 1, "empty configuration")
			return nil
		}
		root = root.Content[0]
	}
	if isNull(root) {
		p.errorf(root, "empty configuration")
		return nil
	}
	var size int
	if !p.measure(root, map[*yaml.Node]int{}, &size) {
		return nil
	}
	return root
}

func (p *parser) yamlError(err error) {
	var le *yaml.LoadError
	if errors.As(err, &le) {
		msg := strings.TrimPrefix(le.Message, "yaml: ")
		if le.ContextMsg != "" {
			msg = le.ContextMsg + ": " + msg
		}
		p.errorAt(le.Mark.Line, le.Mark.Column, "YAML syntax: "+msg)
		return
	}
	p.errorAt(1, 1, strings.TrimPrefix(err.Error(), "yaml: "))
}

// measure computes the size of n once aliases are expanded, memoised per
// node, and reports recursive aliases and documents over maxNodes. memo holds
// -1 for nodes being measured, which is how a cycle shows.
func (p *parser) measure(n *yaml.Node, memo map[*yaml.Node]int, total *int) bool {
	size, ok := p.expandedSize(n, memo)
	if !ok {
		return false
	}
	*total = size
	if size > maxNodes {
		p.errorf(n, "configuration too large: %d nodes once aliases are expanded (limit %d)", size, maxNodes)
		return false
	}
	return true
}

func (p *parser) expandedSize(n *yaml.Node, memo map[*yaml.Node]int) (int, bool) {
	if n == nil {
		return 0, true
	}
	if s, ok := memo[n]; ok {
		if s < 0 {
			p.errorf(n, "recursive alias")
			return 0, false
		}
		return s, true
	}
	memo[n] = -1
	s := 1
	if n.Kind == yaml.AliasNode {
		if memo[n.Alias] < 0 {
			p.errorf(n, "recursive alias *%s", n.Value)
			return 0, false
		}
		c, ok := p.expandedSize(n.Alias, memo)
		if !ok {
			return 0, false
		}
		s += c
	}
	for _, c := range n.Content {
		cs, ok := p.expandedSize(c, memo)
		if !ok {
			return 0, false
		}
		s += cs
		if s > maxNodes {
			break
		}
	}
	memo[n] = s
	return s, true
}

// deref follows aliases; measure has ruled out cycles.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			if n.Value == "" {
				return "no value"
			}
			return "null"
		case "!!str":
			return strconv.Quote(n.Value)
		}
		return n.Value
	}
	return "an unexpected node"
}

// entry is one key of a mapping with its value.
type entry struct {
	key *yaml.Node
	val *yaml.Node
}

// fields holds the keys of one mapping; missing keys read as nil.
type fields map[string]entry

func (f fields) val(name string) *yaml.Node { return f[name].val }

func (f fields) has(name string) bool { _, ok := f[name]; return ok }

// mapping checks that n is a mapping of the keys in valid, with no key
// twice, and returns its entries. A null n is an empty mapping. what names
// the mapping in messages ("frontend", "tls", ...).
func (p *parser) mapping(n *yaml.Node, what string, valid []string) fields {
	n = deref(n)
	f := fields{}
	if isNull(n) {
		return f
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s: expected a mapping, got %s", what, describe(n))
		return nil
	}
	if !p.standardTag(n, what) {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.errorf(k, "%s: keys must be plain strings, got %s", what, describe(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			p.errorf(k, "%s: merge keys (<<) are not supported; anchor and alias the whole value instead", what)
			continue
		}
		name := k.Value
		if prev, dup := f[name]; dup {
			p.errorf(k, "%s: duplicate key %q (first at %d:%d)", what, name, prev.key.Line, prev.key.Column)
			continue
		}
		if valid != nil && !slices.Contains(valid, name) {
			p.errorf(k, "%s: unknown key %q%s", what, name, hint(name, valid))
			continue
		}
		f[name] = entry{key: k, val: v}
	}
	return f
}

// hint suggests the closest valid name, or lists them all.
func hint(got string, valid []string) string {
	best, bestD := "", 1<<30
	for _, v := range valid {
		if d := distance(strings.ToLower(got), v); d < bestD {
			best, bestD = v, d
		}
	}
	if best != "" && bestD <= max(1, len(best)/3) {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	if len(valid) == 0 {
		return ""
	}
	return "; valid keys: " + strings.Join(valid, ", ")
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 20
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// scalar returns n as a scalar, or records why it is not one.
func (p *parser) scalar(n *yaml.Node, what, want string) (*yaml.Node, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode || isNull(n) {
		p.errorf(n, "%s: expected %s, got %s", what, want, describeOrMissing(n))
		return nil, false
	}
	if !p.standardTag(n, what) {
		return nil, false
	}
	return n, true
}

// standardTag records an error unless n has no tag or a standard one:
// strata has no meaning for application tags such as !env.
func (p *parser) standardTag(n *yaml.Node, what string) bool {
	if t := n.Tag; t != "" && t != "!" && !strings.HasPrefix(t, "!!") && !strings.HasPrefix(t, "tag:yaml.org,2002:") {
		p.errorf(n, "%s: unsupported YAML tag %s", what, t)
		return false
	}
	return true
}

func describeOrMissing(n *yaml.Node) string {
	if n == nil {
		return "nothing"
	}
	return describe(n)
}

// str reads a non-empty string. Any scalar is accepted as its text, so
// `min_version: 1.2` reads as "1.2".
func (p *parser) str(n *yaml.Node, what string) (string, bool) {
	s, ok := p.scalar(n, what, "a string")
	if !ok {
		return "", false
	}
	if s.Value == "" {
		p.errorf(s, "%s: must not be empty", what)
		return "", false
	}
	return s.Value, true
}

// enum reads a string that must be one of valid.
func (p *parser) enum(n *yaml.Node, what string, valid ...string) (string, bool) {
	s, ok := p.str(n, what)
	if !ok {
		return "", false
	}
	if !slices.Contains(valid, s) {
		p.errorf(deref(n), "%s: unknown value %q; valid values: %s", what, s, strings.Join(valid, ", "))
		return "", false
	}
	return s, true
}

// integer reads an integer in [lo, hi].
func (p *parser) integer(n *yaml.Node, what string, lo, hi int) (int, bool) {
	s, ok := p.scalar(n, what, "an integer")
	if !ok {
		return 0, false
	}
	if s.ShortTag() != "!!int" {
		p.errorf(s, "%s: expected an integer, got %s", what, describe(s))
		return 0, false
	}
	v, err := strconv.ParseInt(strings.ReplaceAll(s.Value, "_", ""), 0, 64)
	if err != nil {
		p.errorf(s, "%s: invalid integer %q", what, s.Value)
		return 0, false
	}
	if v < int64(lo) || v > int64(hi) {
		switch {
		case v < 0 && lo >= 0:
			p.errorf(s, "%s: must not be negative, got %d", what, v)
		case v < int64(lo) && hi >= math.MaxInt16:
			p.errorf(s, "%s: must be at least %d, got %d", what, lo, v)
		default:
			p.errorf(s, "%s: %d out of range %d-%d", what, v, lo, hi)
		}
		return 0, false
	}
	return int(v), true
}

const maxInt = int(^uint32(0) >> 1) // keep counts within int32 on every platform

// boolean reads true or false.
func (p *parser) boolean(n *yaml.Node, what string) (bool, bool) {
	s, ok := p.scalar(n, what, "true or false")
	if !ok {
		return false, false
	}
	if s.ShortTag() != "!!bool" {
		p.errorf(s, "%s: expected true or false, got %s", what, describe(s))
		return false, false
	}
	v, err := strconv.ParseBool(strings.ToLower(s.Value))
	if err != nil {
		p.errorf(s, "%s: expected true or false, got %s", what, describe(s))
		return false, false
	}
	return v, true
}

// duration reads a Go duration ("5s", "1m30s"). It must be positive, or
// zero when allowZero.
func (p *parser) duration(n *yaml.Node, what string, allowZero bool) (time.Duration, bool) {
	s, ok := p.scalar(n, what, "a duration such as 5s")
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s.Value)
	if err != nil {
		if _, ierr := strconv.ParseInt(s.Value, 10, 64); ierr == nil {
			p.errorf(s, "%s: duration %q has no unit; write e.g. %ss or %sms", what, s.Value, s.Value, s.Value)
		} else {
			p.errorf(s, "%s: invalid duration %q; write e.g. 5s, 1m30s or 250ms", what, s.Value)
		}
		return 0, false
	}
	if d < 0 || (d == 0 && !allowZero) {
		p.errorf(s, "%s: duration must be greater than 0, got %s", what, s.Value)
		return 0, false
	}
	return d, true
}

// size reads a byte size ("16KiB", "1MiB", "512", "4KB") in [lo, hi].
func (p *parser) size(n *yaml.Node, what string, lo, hi int64) (int64, bool) {
	s, ok := p.scalar(n, what, "a size such as 16KiB")
	if !ok {
		return 0, false
	}
	v, err := parseSize(s.Value)
	if err != nil {
		p.errorf(s, "%s: %v", what, err)
		return 0, false
	}
	if v < lo || v > hi {
		p.errorf(s, "%s: %s out of range %s-%s", what, s.Value, formatSize(lo), formatSize(hi))
		return 0, false
	}
	return v, true
}

// seq returns the items of a list; a null n is an empty list. A single
// scalar is accepted as a one-item list when scalarOK.
func (p *parser) seq(n *yaml.Node, what string, scalarOK bool) []*yaml.Node {
	n = deref(n)
	switch {
	case isNull(n):
		return nil
	case !p.standardTag(n, what):
		return nil
	case n.Kind == yaml.SequenceNode:
		return n.Content
	case scalarOK && n.Kind == yaml.ScalarNode:
		return []*yaml.Node{n}
	}
	if scalarOK {
		p.errorf(n, "%s: expected a string or a list, got %s", what, describe(n))
	} else {
		p.errorf(n, "%s: expected a list, got %s", what, describe(n))
	}
	return nil
}

// strs reads a list of non-empty strings.
func (p *parser) strs(n *yaml.Node, what string) []string {
	var out []string
	for _, item := range p.seq(n, what, false) {
		if s, ok := p.str(item, what); ok {
			out = append(out, s)
		}
	}
	return out
}

// alpn reads a list of ALPN protocol names.
func (p *parser) alpn(n *yaml.Node) []string {
	var out []string
	for _, item := range p.seq(n, "alpn", false) {
		s, ok := p.str(item, "alpn")
		if !ok {
			continue
		}
		if len(s) > 255 {
			p.errorf(deref(item), "alpn: protocol name longer than 255 bytes")
			continue
		}
		out = append(out, s)
	}
	return out
}

// path reads a file path and resolves it against the configuration's
// directory. It returns the path as written too, for messages.
func (p *parser) path(n *yaml.Node, what string) (resolved, written string, ok bool) {
	s, ok := p.str(n, what)
	if !ok {
		return "", "", false
	}
	return p.resolve(s), s, true
}

func (p *parser) resolve(s string) string {
	if filepath.IsAbs(s) {
		return s
	}
	return filepath.Join(p.dir, s)
}

func pos(n *yaml.Node) Pos {
	if n == nil {
		return Pos{1, 1}
	}
	return Pos{Line: max(n.Line, 1), Col: max(n.Column, 1)}
}
