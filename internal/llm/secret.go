package llm

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/errdefs"
)

// secret is a provider key. It prints, logs and marshals as [redacted].
type secret struct{ v string }

func (s secret) String() string               { return "[redacted]" }
func (s secret) GoString() string             { return "[redacted]" }
func (s secret) LogValue() slog.Value         { return slog.StringValue("[redacted]") }
func (s secret) MarshalJSON() ([]byte, error) { return []byte(`"[redacted]"`), nil }
func (s secret) reveal() string               { return s.v }
func (s secret) empty() bool                  { return s.v == "" }

// loadKey reads the key of p from its file or environment variable. A key
// file must be a regular file owned by the daemon's user with no group or
// other permission bits; anything looser is refused, because any process
// on the host could then read the key.
func loadKey(p config.LLMProvider, getenv func(string) string) (secret, error) {
	switch {
	case p.APIKeyFile != "":
		return readKeyFile(p.Name, p.APIKeyFile)
	case p.APIKeyEnv != "":
		v := strings.TrimSpace(getenv(p.APIKeyEnv))
		if v == "" {
			return secret{}, errdefs.WithHint(
				errdefs.New(errdefs.FailedPrecondition, "llm provider %s: environment variable %s is empty or unset", p.Name, p.APIKeyEnv),
				"set "+p.APIKeyEnv+" in the daemon's environment, or use api_key_file")
		}
		return secret{v}, nil
	}
	return secret{}, nil
}

func readKeyFile(provider, path string) (secret, error) {
	st, err := os.Stat(path)
	if err != nil {
		return secret{}, errdefs.WithHint(
			errdefs.Wrap(errdefs.FailedPrecondition, fmt.Errorf("llm provider %s: key file: %w", provider, err)),
			"create it with: install -m 600 /dev/null "+path+" and write the key into it")
	}
	if !st.Mode().IsRegular() {
		return secret{}, errdefs.New(errdefs.FailedPrecondition, "llm provider %s: key file %s is not a regular file", provider, path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return secret{}, errdefs.WithHint(
			errdefs.New(errdefs.PermissionDenied, "llm provider %s: key file %s has mode %04o; it must not be readable or writable by group or others", provider, path, perm),
			"chmod 600 "+path)
	}
	if uid, ok := fileOwner(st); ok && uid != os.Geteuid() {
		return secret{}, errdefs.WithHint(
			errdefs.New(errdefs.PermissionDenied, "llm provider %s: key file %s is owned by uid %d, not by the daemon's uid %d", provider, path, uid, os.Geteuid()),
			fmt.Sprintf("chown %d %s", os.Geteuid(), path))
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return secret{}, errdefs.Wrap(errdefs.FailedPrecondition, fmt.Errorf("llm provider %s: read key file: %w", provider, err))
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return secret{}, errdefs.New(errdefs.FailedPrecondition, "llm provider %s: key file %s is empty", provider, path)
	}
	return secret{v}, nil
}
