package strictyaml

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// Error is one problem in a YAML file. Line and Col are 1-based; zero means
// unknown (Col is zero for syntax errors, which the YAML parser reports by
// line only). Field is the dotted path of the field ("supervisor.kill_grace",
// "agents[1].name"), empty for problems of the document itself.
type Error struct {
	File      string
	Line, Col int
	Field     string
	Msg       string
	Fix       string
}

// Error formats e as "file:line:col: field: msg; fix", leaving out the parts
// that are empty or unknown.
func (e *Error) Error() string {
	return Format(e.File, e.Line, e.Col, e.Field, e.Msg, e.Fix)
}

// Format renders a problem in the house format shared by every config file:
// "file:line:col: field: msg; fix".
func Format(file string, line, col int, field, msg, fix string) string {
	var b strings.Builder
	if file != "" {
		b.WriteString(file)
		if line > 0 {
			b.WriteString(":" + strconv.Itoa(line))
			if col > 0 {
				b.WriteString(":" + strconv.Itoa(col))
			}
		}
		b.WriteString(": ")
	} else if line > 0 {
		b.WriteString("line " + strconv.Itoa(line))
		if col > 0 {
			b.WriteString(":" + strconv.Itoa(col))
		}
		b.WriteString(": ")
	}
	if field != "" {
		b.WriteString(field + ": ")
	}
	b.WriteString(msg)
	if fix != "" {
		b.WriteString("; " + fix)
	}
	return b.String()
}

// Errors is every problem found in one file. As an error it prints one
// problem per line and belongs to the errdefs.InvalidArgument category.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap gives Errors the errdefs.InvalidArgument category, so
// errdefs.IsInvalidArgument(err) holds and the CLI exits 2.
func (es Errors) Unwrap() error {
	return &errdefs.Error{Cat: errdefs.InvalidArgument, Msg: "invalid configuration"}
}

// Sort orders es by line, then column, then field, keeping the order of
// equal problems.
func (es Errors) Sort() {
	slices.SortStableFunc(es, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col), strings.Compare(a.Field, b.Field))
	})
}

// Err returns es as an error, or nil when it is empty.
func (es Errors) Err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}
