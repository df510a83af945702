package logs

import (
	"strings"
	"unicode/utf8"
)

// escapeLen returns the length in bytes of the terminal escape sequence
// (ECMA-48: CSI, OSC/DCS/SOS/PM/APC strings, two-byte ESC sequences, and
// their C1 forms) starting at s[i], or 0 when none starts there. An
// unterminated sequence runs to the end of s.
func escapeLen(s string, i int) int {
	var j int // index after the introducer
	var kind byte
	switch {
	case s[i] == 0x1b:
		if i+1 >= len(s) {
			return 1
		}
		c := s[i+1]
		switch c {
		case '[':
			kind = '['
		case ']', 'P', 'X', '^', '_':
			kind = ']'
		default:
			// ESC, intermediates 0x20-0x2F, then one final byte.
			j = i + 1
			for j < len(s) && s[j] >= 0x20 && s[j] <= 0x2f {
				j++
			}
			if j < len(s) && s[j] >= 0x30 && s[j] <= 0x7e {
				j++
			}
			return j - i
		}
		j = i + 2
	case s[i] == 0xc2 && i+1 < len(s):
		switch s[i+1] {
		case 0x9b: // CSI
			kind = '['
		case 0x9d, 0x90, 0x98, 0x9e, 0x9f: // OSC, DCS, SOS, PM, APC
			kind = ']'
		default:
			return 0
		}
		j = i + 2
	default:
		return 0
	}
	if kind == '[' {
		for j < len(s) && s[j] >= 0x20 && s[j] <= 0x3f {
			j++
		}
		if j < len(s) && s[j] >= 0x40 && s[j] <= 0x7e {
			j++
		}
		return j - i
	}
	// A control string ends at BEL, ESC \ or C1 ST.
	for j < len(s) {
		switch {
		case s[j] == 0x07:
			return j + 1 - i
		case s[j] == 0x1b && j+1 < len(s) && s[j+1] == '\\':
			return j + 2 - i
		case s[j] == 0xc2 && j+1 < len(s) && s[j+1] == 0x9c:
			return j + 2 - i
		}
		j++
	}
	return len(s) - i
}

// isControl reports runes that must never reach a terminal raw: C0 and C1
// controls, DEL, and the bidi/line-separator formatting characters that can
// make text display differently from what it is.
func isControl(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r == 0x200e, r == 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069,
		r == 0x2028, r == 0x2029:
		return true
	}
	return false
}

// appendEscaped writes r as visible text: \x1b for ASCII, \u202e beyond.
func appendEscaped(b *strings.Builder, r rune) {
	const hex = "0123456789abcdef"
	if r < 0x80 {
		b.WriteString(`\x`)
		b.WriteByte(hex[r>>4])
		b.WriteByte(hex[r&0xf])
		return
	}
	b.WriteString(`\u`)
	for shift := 12; shift >= 0; shift -= 4 {
		b.WriteByte(hex[(r>>shift)&0xf])
	}
}

// stripEscapes removes terminal escape sequences and keeps everything else.
func stripEscapes(s string) string {
	var b strings.Builder
	last := 0
	for i := 0; i < len(s); {
		if n := escapeLen(s, i); n > 0 {
			b.WriteString(s[last:i])
			i += n
			last = i
			continue
		}
		i++
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// escapeControls makes every control character, escape sequence and bidi
// override of s visible text (strict mode): nothing in the result is
// interpreted by a terminal. Invalid UTF-8 becomes U+FFFD.
func escapeControls(s string) string {
	return mapRunes(s, false, true)
}

// sanitizeTerminal prepares s for a terminal: escape sequences are removed,
// other control characters (except tab) shown as visible escapes.
func sanitizeTerminal(s string) string {
	return mapRunes(s, true, false)
}

func mapRunes(s string, strip, escapeTab bool) string {
	clean := true
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || (isControl(r) && (r != '\t' || escapeTab)) {
			clean = false
			break
		}
		i += n
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		if strip {
			if n := escapeLen(s, i); n > 0 {
				i += n
				continue
			}
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		switch {
		case r == utf8.RuneError && n == 1:
			b.WriteRune(utf8.RuneError)
		case r == '\t' && !escapeTab:
			b.WriteByte('\t')
		case isControl(r):
			appendEscaped(&b, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
