package logs

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// agentColors are the SGR colours agent prefixes cycle through, as docker
// compose does.
var agentColors = []string{"36", "33", "32", "35", "34", "96", "93", "92", "95", "94"}

// AgentColor returns the SGR colour code FormatText uses for agent; the same
// name always gets the same colour.
func AgentColor(agent string) string {
	h := fnv.New32a()
	h.Write([]byte(agent))
	return agentColors[h.Sum32()%uint32(len(agentColors))]
}

// FormatText renders rec for a terminal in docker compose style:
//
//	agent | message key=value ...
//
// The agent name is padded to width columns (0 = no padding) so the bars
// of several agents line up; with color it is coloured by AgentColor.
// Everything the agent controls (message, field keys and values, the name)
// is sanitised: escape sequences are removed, other control characters
// shown as \x.. escapes, so an agent cannot drive the operator's terminal.
// A message with embedded newlines becomes several lines, each with the
// prefix. Fields follow the message sorted by key. There is no trailing
// newline.
func FormatText(rec Record, color bool, width int) string {
	name := sanitizeTerminal(rec.Agent)
	pad := max(0, width-utf8.RuneCountInString(name))
	var prefix string
	if color {
		prefix = "\x1b[" + AgentColor(rec.Agent) + "m" + name + strings.Repeat(" ", pad) + " |\x1b[0m "
	} else {
		prefix = name + strings.Repeat(" ", pad) + " | "
	}
	msg := strings.TrimRight(rec.Message, "\r\n")
	lines := strings.Split(msg, "\n")
	if f := formatFields(rec.Fields); f != "" {
		last := len(lines) - 1
		if lines[last] == "" {
			lines[last] = f
		} else {
			lines[last] += " " + f
		}
	}
	var b strings.Builder
	for i, l := range lines {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(prefix)
		b.WriteString(sanitizeTerminal(l))
	}
	return b.String()
}

// formatFields renders fields as key=value pairs sorted by key; values
// that need it are quoted with Go escapes (which show control characters).
func formatFields(fields map[string]any) string {
	if len(fields) == 0 {
		return ""
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(quoteIfNeeded(k))
		b.WriteByte('=')
		b.WriteString(formatValue(fields[k]))
	}
	return b.String()
}

func formatValue(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return quoteIfNeeded(v)
	case json.Number:
		return quoteIfNeeded(string(v))
	case bool:
		return strconv.FormatBool(v)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case int, int64, uint64, int32, uint32:
		return fmt.Sprint(v)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return quoteIfNeeded(fmt.Sprint(v))
	}
	// JSON escapes control characters already; sanitise what remains
	// (bidi overrides are valid JSON text).
	return sanitizeTerminal(string(b))
}

// quoteIfNeeded returns s as is when it is a plain token, else Go-quoted
// (ASCII-only escapes, so nothing in it reaches the terminal raw).
func quoteIfNeeded(s string) string {
	if s == "" {
		return `""`
	}
	for _, r := range s {
		if r <= ' ' || r == '=' || r == '"' || r == '\\' || r == utf8.RuneError || isControl(r) || !strconv.IsPrint(r) {
			return strconv.QuoteToGraphic(s)
		}
	}
	return s
}
