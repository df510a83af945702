package canon

import "log/slog"

// Secret is a provider key. It prints, logs and marshals as [redacted];
// only Reveal gives the key, to the connector that sends it upstream.
type Secret struct{ v string }

// NewSecret wraps key.
func NewSecret(key string) Secret { return Secret{key} }

func (s Secret) String() string               { return "[redacted]" }
func (s Secret) GoString() string             { return "[redacted]" }
func (s Secret) LogValue() slog.Value         { return slog.StringValue("[redacted]") }
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"[redacted]"`), nil }

// Reveal returns the key.
func (s Secret) Reveal() string { return s.v }

// Empty reports whether there is no key (an openai-compatible server).
func (s Secret) Empty() bool { return s.v == "" }
