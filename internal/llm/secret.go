package llm

import (
	"fmt"
	"os"
	"strings"

	"github.com/cortexrt/cortex/internal/config"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/llm/canon"
)

// loadKey reads the key of p from its file or environment variable. A key
// file must be a regular file owned by the daemon's user with no group or
// other permission bits; anything looser is refused, because any process
// on the host could then read the key.
func loadKey(p config.LLMProvider, getenv func(string) string) (canon.Secret, error) {
	switch {
	case p.APIKeyFile != "":
		return readKeyFile(p.Name, p.APIKeyFile)
	case p.APIKeyEnv != "":
		v := strings.TrimSpace(getenv(p.APIKeyEnv))
		if v == "" {
			return canon.Secret{}, errdefs.WithHint(
				errdefs.New(errdefs.FailedPrecondition, "llm provider %s: environment variable %s is empty or unset", p.Name, p.APIKeyEnv),
				"set "+p.APIKeyEnv+" in the daemon's environment, or use api_key_file")
		}
		return canon.NewSecret(v), nil
	}
	return canon.Secret{}, nil
}

func readKeyFile(provider, path string) (canon.Secret, error) {
	st, err := os.Stat(path)
	if err != nil {
		return canon.Secret{}, errdefs.WithHint(
			errdefs.Wrap(errdefs.FailedPrecondition, fmt.Errorf("llm provider %s: key file: %w", provider, err)),
			"create it with: install -m 600 /dev/null "+path+" and write the key into it")
	}
	if !st.Mode().IsRegular() {
		return canon.Secret{}, errdefs.New(errdefs.FailedPrecondition, "llm provider %s: key file %s is not a regular file", provider, path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return canon.Secret{}, errdefs.WithHint(
			errdefs.New(errdefs.PermissionDenied, "llm provider %s: key file %s has mode %04o; it must not be readable or writable by group or others", provider, path, perm),
			"chmod 600 "+path)
	}
	if uid, ok := fileOwner(st); ok && uid != os.Geteuid() {
		return canon.Secret{}, errdefs.WithHint(
			errdefs.New(errdefs.PermissionDenied, "llm provider %s: key file %s is owned by uid %d, not by the daemon's uid %d", provider, path, uid, os.Geteuid()),
			fmt.Sprintf("chown %d %s", os.Geteuid(), path))
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return canon.Secret{}, errdefs.Wrap(errdefs.FailedPrecondition, fmt.Errorf("llm provider %s: read key file: %w", provider, err))
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return canon.Secret{}, errdefs.New(errdefs.FailedPrecondition, "llm provider %s: key file %s is empty", provider, path)
	}
	return canon.NewSecret(v), nil
}
