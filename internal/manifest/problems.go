package manifest

import (
	"cmp"
	"slices"
	"strings"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/strictyaml"
)

// Problem is one thing wrong with a manifest. Field is the dotted path of
// the field ("agents[1].resources.mem_limit"), empty for the file itself;
// Pos is where it was written (zero when unknown, e.g. for a missing field
// of a manifest built in code). Fix says how to put it right and may be
// empty.
type Problem struct {
	File  string
	Pos   Position
	Field string
	Msg   string
	Fix   string
}

// String formats p as "file:line:col: field: msg; fix".
func (p Problem) String() string {
	return strictyaml.Format(p.File, p.Pos.Line, p.Pos.Col, p.Field, p.Msg, p.Fix)
}

// Problems is every problem Parse or Validate found, sorted by line, then
// column. As an error it prints one problem per line; errors.As(err,
// &Problems{}) retrieves it, and errdefs.IsInvalidArgument(err) is true (its
// Unwrap yields an errdefs error of that category).
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Unwrap gives Problems the errdefs.InvalidArgument category.
func (ps Problems) Unwrap() error {
	return &errdefs.Error{Cat: errdefs.InvalidArgument, Msg: "invalid manifest"}
}

func (ps Problems) sort() {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Col, b.Pos.Col), strings.Compare(a.Field, b.Field))
	})
}

// err returns ps sorted as an error, or nil when empty.
func (ps Problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	ps.sort()
	return ps
}

func fromStrict(es strictyaml.Errors, file string) Problems {
	ps := make(Problems, 0, len(es))
	for _, e := range es {
		ps = append(ps, Problem{File: file, Pos: Position{Line: e.Line, Col: e.Col}, Field: e.Field, Msg: e.Msg, Fix: e.Fix})
	}
	return ps
}

// splitFix splits "what; how" texts (ParseQuantity's, RuntimeAvailable's)
// into message and fix.
func splitFix(s string) (msg, fix string) {
	msg, fix, _ = strings.Cut(s, "; ")
	return msg, fix
}
