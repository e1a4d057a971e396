package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Error is one problem found in a configuration file, at the position of the
// YAML node that caused it. Line and Col are 1-based.
type Error struct {
	File string
	Line int
	Col  int
	Msg  string
}

// Error formats the problem as "FILE:LINE:COL: msg", the form editors and
// `strata validate` print.
func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// Errors is every problem Parse found in one file, sorted by position.
// Parse returns it (never an empty one) when the file is not valid.
type Errors []*Error

// Error joins the errors with newlines, one per line.
func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// sortErrors orders errors by position and drops exact duplicates, which
// arise when an anchored node is reached through several aliases.
func sortErrors(es Errors) Errors {
	slices.SortStableFunc(es, func(a, b *Error) int {
		if c := cmp.Compare(a.Line, b.Line); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Col, b.Col); c != 0 {
			return c
		}
		return strings.Compare(a.Msg, b.Msg)
	})
	return slices.CompactFunc(es, func(a, b *Error) bool { return *a == *b })
}
