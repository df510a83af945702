package seccomp

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// Action is what the filter does with a call.
type Action int

const (
	// ActAllow lets the call through.
	ActAllow Action = iota
	// ActEPERM refuses the call: it fails with EPERM, as if a privilege were
	// missing.
	ActEPERM
	// ActENOSYS pretends the call does not exist: it fails with ENOSYS, so
	// libc falls back to an older call.
	ActENOSYS
)

// String names the action as the docs show it.
func (a Action) String() string {
	switch a {
	case ActAllow:
		return "allow"
	case ActEPERM:
		return "errno EPERM"
	case ActENOSYS:
		return "errno ENOSYS"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Errno is the error number a refusing action returns (0 for ActAllow).
func (a Action) Errno() int {
	switch a {
	case ActEPERM:
		return errnoEPERM
	case ActENOSYS:
		return errnoENOSYS
	}
	return 0
}

// Op compares one 64-bit system call argument register with a value. The
// comparisons are libseccomp's, over the whole register.
type Op int

const (
	// OpEqual: arg == Value.
	OpEqual Op = iota + 1
	// OpNotEqual: arg != Value.
	OpNotEqual
	// OpGreater: arg > Value, unsigned.
	OpGreater
	// OpMaskedEqual: arg & Mask == Value.
	OpMaskedEqual
)

// String names the operator.
func (o Op) String() string {
	switch o {
	case OpEqual:
		return "=="
	case OpNotEqual:
		return "!="
	case OpGreater:
		return ">"
	case OpMaskedEqual:
		return "&mask=="
	}
	return fmt.Sprintf("Op(%d)", int(o))
}

// Cond is one comparison on argument Arg (0-5) of a call.
type Cond struct {
	Arg   uint
	Op    Op
	Value uint64
	Mask  uint64 // only for OpMaskedEqual
}

// Holds reports whether the comparison holds for the argument registers args.
func (c Cond) Holds(args [6]uint64) bool {
	v := args[c.Arg]
	switch c.Op {
	case OpEqual:
		return v == c.Value
	case OpNotEqual:
		return v != c.Value
	case OpGreater:
		return v > c.Value
	case OpMaskedEqual:
		return v&c.Mask == c.Value
	}
	return false
}

// Match is a conjunction: it matches when every Cond holds. libseccomp allows
// at most one Cond per argument in a Match.
type Match []Cond

// Holds reports whether every comparison holds.
func (m Match) Holds(args [6]uint64) bool {
	for _, c := range m {
		if !c.Holds(args) {
			return false
		}
	}
	return true
}

// Rule gives one system call an action, always or when its arguments match.
type Rule struct {
	// Syscall is the call's name as libseccomp spells it ("umount2"). A
	// call the native architecture does not have (vm86 on amd64) is left
	// out of its filter.
	Syscall string
	// Nr is the call's number, used only when the libseccomp in use is too
	// old to know the name. It is set only for calls numbered 424 and up,
	// which have the same number on every architecture Cortex supports.
	Nr int
	// Action is what the filter does when the rule applies; never ActAllow
	// (the default already allows).
	Action Action
	// Any lists alternative argument matches; the rule applies when any of
	// them holds. Empty means the rule always applies.
	Any []Match
	// When says in words when the rule applies ("" when always).
	When string
	// Reason says why agents are refused the call.
	Reason string
}

// Applies reports whether the rule applies to a call with argument registers
// args (the call's number having been checked already).
func (r Rule) Applies(args [6]uint64) bool {
	if len(r.Any) == 0 {
		return true
	}
	for _, m := range r.Any {
		if m.Holds(args) {
			return true
		}
	}
	return false
}

// Profile is a whole filter as data: what happens to calls no rule names, to
// calls from a foreign architecture, and the rules.
type Profile struct {
	// DefaultAction applies to calls no rule refuses. Cortex's is ActAllow.
	DefaultAction Action
	// BadArchAction applies to every call made through an architecture other
	// than the native one: the i386 int $0x80 gate, x32 numbers on x86_64,
	// AArch32 on arm64.
	BadArchAction Action
	// Rules refuse calls; at most one action per system call.
	Rules []Rule
}

// Validate reports every problem with the profile, joined.
func (p Profile) Validate() error {
	var errs []error
	if p.DefaultAction != ActAllow {
		errs = append(errs, fmt.Errorf("default action %s: only allow (a deny list) is supported", p.DefaultAction))
	}
	if p.BadArchAction.Errno() == 0 {
		errs = append(errs, fmt.Errorf("bad-arch action %s: must refuse", p.BadArchAction))
	}
	actions := map[string]Action{}
	for i, r := range p.Rules {
		where := fmt.Sprintf("rules[%d] (%s)", i, r.Syscall)
		if r.Syscall == "" {
			errs = append(errs, fmt.Errorf("%s: no syscall name", where))
		}
		if r.Action.Errno() == 0 {
			errs = append(errs, fmt.Errorf("%s: action %s: rules must refuse", where, r.Action))
		}
		if prev, ok := actions[r.Syscall]; ok && prev != r.Action {
			errs = append(errs, fmt.Errorf("%s: action %s conflicts with an earlier %s rule", where, r.Action, prev))
		}
		actions[r.Syscall] = r.Action
		if r.Nr != 0 && r.Nr < 424 {
			errs = append(errs, fmt.Errorf("%s: fallback number %d is below 424, where numbers differ between architectures", where, r.Nr))
		}
		if r.Reason == "" {
			errs = append(errs, fmt.Errorf("%s: no reason", where))
		}
		if (len(r.Any) == 0) != (r.When == "") {
			errs = append(errs, fmt.Errorf("%s: When must describe the argument matches exactly when there are some", where))
		}
		for j, m := range r.Any {
			if len(m) == 0 {
				errs = append(errs, fmt.Errorf("%s: match %d is empty", where, j))
			}
			seen := map[uint]bool{}
			for _, c := range m {
				switch {
				case c.Arg > 5:
					errs = append(errs, fmt.Errorf("%s: match %d: argument %d out of range 0-5", where, j, c.Arg))
				case seen[c.Arg]:
					errs = append(errs, fmt.Errorf("%s: match %d: two comparisons on argument %d (libseccomp allows one)", where, j, c.Arg))
				}
				seen[c.Arg] = true
				if c.Op < OpEqual || c.Op > OpMaskedEqual {
					errs = append(errs, fmt.Errorf("%s: match %d: unknown operator %d", where, j, int(c.Op)))
				}
				if c.Op == OpMaskedEqual && c.Value&^c.Mask != 0 {
					errs = append(errs, fmt.Errorf("%s: match %d: value %#x has bits outside mask %#x, so it never matches", where, j, c.Value, c.Mask))
				}
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return errdefs.Wrap(errdefs.InvalidArgument, fmt.Errorf("invalid seccomp profile: %w", err))
	}
	return nil
}

// RuleDoc is one line of the policy for people: docs/security.md and
// `cortex inspect` list these.
type RuleDoc struct {
	Syscall string `json:"syscall"`
	Action  string `json:"action"`
	When    string `json:"when,omitempty"`
	Reason  string `json:"reason"`
}

// Docs lists the profile for people, the architecture check first, then one
// entry per rule in profile order.
func (p Profile) Docs() []RuleDoc {
	docs := []RuleDoc{{
		Syscall: "*",
		Action:  p.BadArchAction.String(),
		When:    "made through a foreign architecture: i386 int $0x80, x32 numbers (bit 0x40000000)",
		Reason:  "the rules below are keyed by native numbers; another entry point would dodge them",
	}}
	for _, r := range p.Rules {
		docs = append(docs, RuleDoc{Syscall: r.Syscall, Action: r.Action.String(), When: r.When, Reason: r.Reason})
	}
	docs = append(docs, RuleDoc{
		Syscall: "*",
		Action:  p.DefaultAction.String(),
		When:    "anything not refused above",
		Reason:  "deny list: agents run arbitrary interpreters and native extensions",
	})
	return docs
}

// Rules lists the default profile for people; see [Profile.Docs].
func Rules() []RuleDoc { return Default().Docs() }

// WriteMarkdown writes docs as a Markdown table.
func WriteMarkdown(w io.Writer, docs []RuleDoc) error {
	cell := func(s string) string {
		if s == "" {
			return "always"
		}
		return strings.ReplaceAll(s, "|", `\|`)
	}
	var b strings.Builder
	b.WriteString("| syscall | action | when | why |\n|---|---|---|---|\n")
	for _, d := range docs {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", d.Syscall, d.Action, cell(d.When), cell(d.Reason))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
