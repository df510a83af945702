package config

import (
	"os"
	"path/filepath"
	"strings"
)

// Paths are the host locations of the design, all under Root.
type Paths struct {
	Root       string `json:"root"`
	ConfigFile string `json:"config_file"` // etc/cortex/config.yaml
	PluginsDir string `json:"plugins_dir"` // etc/cortex/plugins
	HooksDir   string `json:"hooks_dir"`   // etc/cortex/hooks
	LibDir     string `json:"lib_dir"`     // var/lib/cortex: state, bundles
	CacheDir   string `json:"cache_dir"`   // var/cache/cortex
	LogDir     string `json:"log_dir"`     // var/log/cortex
	RunDir     string `json:"run_dir"`     // run/cortex: socket, per-agent runtime files
	Socket     string `json:"socket"`      // run/cortex/cortexd.sock
	ShareDir   string `json:"share_dir"`   // usr/lib/cortex: SDKs, runtime shims
}

// NewPaths lays the design's paths out under root ("" or "/" for the FHS).
func NewPaths(root string) Paths {
	if root == "" {
		root = "/"
	}
	root = filepath.Clean(root)
	j := func(p ...string) string { return filepath.Join(append([]string{root}, p...)...) }
	return Paths{
		Root:       root,
		ConfigFile: j("etc", "cortex", "config.yaml"),
		PluginsDir: j("etc", "cortex", "plugins"),
		HooksDir:   j("etc", "cortex", "hooks"),
		LibDir:     j("var", "lib", "cortex"),
		CacheDir:   j("var", "cache", "cortex"),
		LogDir:     j("var", "log", "cortex"),
		RunDir:     j("run", "cortex"),
		Socket:     j("run", "cortex", "cortexd.sock"),
		ShareDir:   j("usr", "lib", "cortex"),
	}
}

// MkdirAll creates the directories the daemon writes to.
func (p Paths) MkdirAll() error {
	for _, d := range []string{filepath.Dir(p.ConfigFile), p.PluginsDir, p.HooksDir, p.LibDir, p.CacheDir, p.LogDir, p.RunDir, p.ShareDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// Env is every environment setting the CLI and daemon read.
type Env struct {
	Root        string // CORTEX_ROOT
	Host        string // CORTEX_HOST: https://HOST:PORT, unix:///PATH or a socket path
	Daemon      string // CORTEX_DAEMON
	NoAutostart bool   // CORTEX_NO_AUTOSTART=1
	PyenvRoot   string // PYENV_ROOT, where runtime discovery looks for pyenv's Pythons

	APIKey  string // CORTEX_API_KEY
	CA      string // CORTEX_CA
	Cert    string // CORTEX_CERT
	Key     string // CORTEX_KEY
	Context string // CORTEX_CONTEXT
	// ClientConfig is CORTEX_CONFIG, else $XDG_CONFIG_HOME/cortex/config.yaml,
	// else ~/.config/cortex/config.yaml ("" when no home is known).
	ClientConfig string
}

// FromEnv reads the environment.
func FromEnv() Env {
	e := Env{
		Root:         os.Getenv("CORTEX_ROOT"),
		Host:         os.Getenv("CORTEX_HOST"),
		Daemon:       os.Getenv("CORTEX_DAEMON"),
		NoAutostart:  os.Getenv("CORTEX_NO_AUTOSTART") == "1",
		PyenvRoot:    os.Getenv("PYENV_ROOT"),
		APIKey:       strings.TrimSpace(os.Getenv("CORTEX_API_KEY")),
		CA:           os.Getenv("CORTEX_CA"),
		Cert:         os.Getenv("CORTEX_CERT"),
		Key:          os.Getenv("CORTEX_KEY"),
		Context:      os.Getenv("CORTEX_CONTEXT"),
		ClientConfig: os.Getenv("CORTEX_CONFIG"),
	}
	if e.ClientConfig == "" {
		if x := os.Getenv("XDG_CONFIG_HOME"); x != "" {
			e.ClientConfig = filepath.Join(x, "cortex", "config.yaml")
		} else if home, err := os.UserHomeDir(); err == nil {
			e.ClientConfig = filepath.Join(home, ".config", "cortex", "config.yaml")
		}
	}
	return e
}

// Getenv reads the variable an llm provider's api_key_env names: the one
// variable Cortex reads whose name the operator, not Cortex, chooses.
func Getenv(name string) string { return os.Getenv(name) }
