package bus

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode/utf8"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// subjectRoot prefixes every channel subject on the embedded server and on
// bridged brokers: cortex.<project>.<channel>.
const subjectRoot = "cortex"

const (
	maxChannelLen = 255
	maxNameLen    = 128
	maxIDLen      = 128
)

// ValidChannel checks a channel name: one or more tokens of letters,
// digits, '-' and '_', separated by single dots, at most 255 bytes.
func ValidChannel(ch string) error {
	if ch == "" {
		return errdefs.New(errdefs.InvalidArgument, "channel name is empty")
	}
	if len(ch) > maxChannelLen {
		return errdefs.New(errdefs.InvalidArgument, "channel name is longer than %d bytes", maxChannelLen)
	}
	for _, tok := range strings.Split(ch, ".") {
		if tok == "" || !isTokenSafe(tok) {
			return errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "channel %q is not a valid name", ch),
				"use letters, digits, '-' and '_', with '.' between parts, e.g. analysis-results")
		}
	}
	return nil
}

// validName checks a project or agent name: 1-128 bytes of UTF-8 without
// control characters or whitespace.
func validName(kind, s string) error {
	if s == "" {
		return errdefs.New(errdefs.InvalidArgument, "%s name is empty", kind)
	}
	if len(s) > maxNameLen || !utf8.ValidString(s) {
		return errdefs.New(errdefs.InvalidArgument, "%s name %q is not valid", kind, s)
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return errdefs.New(errdefs.InvalidArgument, "%s name %q contains a space or control character", kind, s)
		}
	}
	return nil
}

// validMsgID accepts client-chosen message ids: 1-128 printable ASCII bytes
// without spaces or quotes.
func validMsgID(s string) bool {
	if s == "" || len(s) > maxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

func isTokenSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if !safeByte(s[i]) {
			return false
		}
	}
	return true
}

func safeByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// escapeToken makes s usable as one subject token: safe bytes are kept,
// every other byte becomes ~XX (hex). It is reversible and never yields
// '.', '*', '>' or glob characters.
func escapeToken(s string) string {
	if isTokenSafe(s) {
		return s
	}
	const hexd = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if safeByte(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('~')
		b.WriteByte(hexd[c>>4])
		b.WriteByte(hexd[c&15])
	}
	return b.String()
}

func unescapeToken(s string) (string, bool) {
	if !strings.Contains(s, "~") {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '~' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		v, err := hex.DecodeString(s[i+1 : i+3])
		if err != nil {
			return "", false
		}
		b.WriteByte(v[0])
		i += 2
	}
	return b.String(), true
}

// subject is the NATS subject of a project's channel.
func subject(project, channel string) string {
	return subjectRoot + "." + escapeToken(project) + "." + channel
}

// projectPrefix is the subject prefix of all of a project's channels,
// ending in '.'.
func projectPrefix(project string) string {
	return subjectRoot + "." + escapeToken(project) + "."
}

// splitSubject is the inverse of subject.
func splitSubject(subj string) (project, channel string, ok bool) {
	rest, ok := strings.CutPrefix(subj, subjectRoot+".")
	if !ok {
		return "", "", false
	}
	p, ch, ok := strings.Cut(rest, ".")
	if !ok {
		return "", "", false
	}
	project, ok = unescapeToken(p)
	if !ok || ValidChannel(ch) != nil {
		return "", "", false
	}
	return project, ch, true
}

// streamName is the JetStream stream holding a durable channel. Stream
// names may not hold dots, so it is a digest; the stream's metadata names
// the project and channel.
func streamName(project, channel string) string {
	h := sha256.Sum256([]byte(project + "\x00" + channel))
	return "CX_" + hex.EncodeToString(h[:12])
}

// consumerName is the durable consumer of one agent on a durable channel.
func consumerName(agent string) string {
	h := sha256.Sum256([]byte(agent))
	return "A_" + hex.EncodeToString(h[:12])
}

// validPattern checks an ACL entry: a channel name whose tokens may also be
// '*' (any one token) or, as the last token, '>' (one or more tokens).
func validPattern(p string) error {
	if p == "" || len(p) > maxChannelLen {
		return errdefs.New(errdefs.InvalidArgument, "channel pattern %q is not valid", p)
	}
	toks := strings.Split(p, ".")
	for i, tok := range toks {
		switch {
		case tok == "*":
		case tok == ">" && i == len(toks)-1:
		case tok != "" && isTokenSafe(tok):
		default:
			return errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "channel pattern %q is not valid", p),
				"use channel names, '*' for one part or a final '>' for the rest, e.g. results.*")
		}
	}
	return nil
}

// allowed reports whether channel matches any pattern; nil patterns allow
// every channel, an empty non-nil list none.
func allowed(patterns []string, channel string) bool {
	if patterns == nil {
		return true
	}
	for _, p := range patterns {
		if matchPattern(p, channel) {
			return true
		}
	}
	return false
}

func matchPattern(p, channel string) bool {
	if p == channel {
		return true
	}
	pt := strings.Split(p, ".")
	ct := strings.Split(channel, ".")
	for i, tok := range pt {
		if tok == ">" {
			return len(ct) > i
		}
		if i >= len(ct) || (tok != "*" && tok != ct[i]) {
			return false
		}
	}
	return len(pt) == len(ct)
}
