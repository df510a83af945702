package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/strictyaml"
	"go.yaml.in/yaml/v3"
)

// ClientConfig is the CLI's own file (~/.config/cortex/config.yaml, or
// CORTEX_CONFIG): named contexts, each a daemon and the credentials to
// reach it, like kubectl's kubeconfig.
//
//	version: "1"
//	current_context: prod
//	contexts:
//	  prod:
//	    host: https://cortex.example.com:7443
//	    ca: prod-ca.pem              # relative paths: beside this file
//	    api_key_file: prod.key       # or api_key: cortex_..., or cert + key
//	  local:
//	    host: unix:///run/cortex/cortexd.sock
type ClientConfig struct {
	Version        string                   `yaml:"version"`
	CurrentContext string                   `yaml:"current_context"`
	Contexts       map[string]ClientContext `yaml:"contexts"`

	// Source is the file it was read from.
	Source string `yaml:"-"`
}

// ClientContext is one daemon and how to authenticate to it.
type ClientContext struct {
	// Host is https://HOST:PORT (TLS 1.3), unix:///PATH or a socket path.
	Host string `yaml:"host" example:"https://cortex.example.com:7443"`
	// CA is the PEM file of the CA the daemon's certificate must chain
	// to (cortex auth ca prints it); empty means the system's roots.
	CA string `yaml:"ca"`
	// Cert and Key are a client certificate and its key (cortex auth cert
	// issue writes them), for mTLS.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// APIKey is an API key's secret; APIKeyFile a file holding it (the
	// safer place: keep it 0600).
	APIKey     string `yaml:"api_key"`
	APIKeyFile string `yaml:"api_key_file"`
}

// ParseClientConfig reads a client config strictly; every problem comes
// back at once as "file:line:col: field: what; how to fix". Relative
// paths are made absolute against the file's directory.
func ParseClientConfig(data []byte, source string) (*ClientConfig, error) {
	c := &ClientConfig{Version: "1", Source: source}
	root, err := strictyaml.Parse(data, source)
	if err != nil {
		return nil, err
	}
	keys := map[string]*yaml.Node{}
	errs := strictyaml.DecodeNode(root, "", c, strictyaml.Options{Seen: func(field string, key *yaml.Node) { keys[field] = key }})
	at := func(field, msg, fix string) {
		n := keys[field]
		if n == nil {
			for k, kn := range keys {
				if strings.HasPrefix(k, field+".") && (n == nil || kn.Line < n.Line) {
					n = kn
				}
			}
		}
		if n == nil {
			n = root
		}
		errs = append(errs, strictyaml.At(n, field, msg, fix))
	}
	if c.Version != "1" {
		at("version", fmt.Sprintf("%q is not supported", c.Version), `use "1"`)
	}
	dir := filepath.Dir(source)
	names := make([]string, 0, len(c.Contexts))
	for n := range c.Contexts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		cx := c.Contexts[name]
		f := "contexts." + name
		if _, _, err := parseHost(cx.Host); err != nil {
			at(f+".host", err.Error(), "write https://HOST:PORT or unix:///PATH")
		}
		if (cx.Cert == "") != (cx.Key == "") {
			at(f, "cert and key go together", "set both or neither")
		}
		if cx.APIKey != "" && cx.APIKeyFile != "" {
			at(f, "api_key and api_key_file are both set", "keep one")
		}
		for _, p := range []*string{&cx.CA, &cx.Cert, &cx.Key, &cx.APIKeyFile} {
			*p = absBeside(dir, *p)
		}
		c.Contexts[name] = cx
	}
	if c.CurrentContext != "" {
		if _, ok := c.Contexts[c.CurrentContext]; !ok {
			at("current_context", fmt.Sprintf("no context named %q", c.CurrentContext), strictyaml.DidYouMean(c.CurrentContext, names, "name one of contexts"))
		}
	}
	for _, e := range errs {
		e.File = source
	}
	errs.Sort()
	return c, errs.Err()
}

func absBeside(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	if strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[2:])
		}
	}
	return filepath.Join(dir, p)
}

// parseHost splits a host setting into a socket path or an https URL.
func parseHost(h string) (socket, url string, err error) {
	switch {
	case strings.HasPrefix(h, "https://"):
		rest := strings.TrimSuffix(strings.TrimPrefix(h, "https://"), "/")
		if rest == "" || strings.Contains(rest, "/") {
			return "", "", fmt.Errorf("%q: write https://HOST:PORT with no path", h)
		}
		return "", "https://" + rest, nil
	case strings.HasPrefix(h, "http://"):
		return "", "", fmt.Errorf("%q: the API is served over TLS only; use https://", h)
	case strings.HasPrefix(h, "unix://"):
		p := strings.TrimPrefix(h, "unix://")
		if !filepath.IsAbs(p) {
			return "", "", fmt.Errorf("%q: the socket path must be absolute", h)
		}
		return p, "", nil
	case filepath.IsAbs(h):
		return h, "", nil
	}
	return "", "", fmt.Errorf("%q is not https://HOST:PORT, unix:///PATH or a socket path", h)
}

// Endpoint is the daemon the CLI talks to and how it authenticates,
// resolved from the environment and the client config.
type Endpoint struct {
	// Socket is the unix socket path (local daemon), or "" when URL is set.
	Socket string
	// URL is https://HOST:PORT of a remote daemon.
	URL string
	// CA, Cert and Key are PEM files; APIKey is a key's secret.
	CA, Cert, Key string
	APIKey        string
	// Context names the client config context used ("" when none).
	Context string
	// Default: the local socket of CORTEX_ROOT, chosen because nothing
	// else was set; only then may the CLI start a daemon itself.
	Default bool
}

// Remote reports whether the endpoint is a TCP daemon.
func (ep Endpoint) Remote() bool { return ep.URL != "" }

// String names the endpoint for messages.
func (ep Endpoint) String() string {
	if ep.URL != "" {
		return ep.URL
	}
	return ep.Socket
}

// Endpoint resolves which daemon to talk to: CORTEX_HOST, else the
// context named by CORTEX_CONTEXT or the client config's
// current_context, else the local socket under CORTEX_ROOT. CORTEX_API_KEY,
// CORTEX_CA, CORTEX_CERT and CORTEX_KEY override the context's fields.
func (e Env) Endpoint() (Endpoint, error) {
	var ep Endpoint
	switch {
	case e.Host != "":
		s, u, err := parseHost(e.Host)
		if err != nil {
			return ep, errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "CORTEX_HOST: %v", err), "write CORTEX_HOST=https://HOST:PORT or unix:///PATH")
		}
		ep.Socket, ep.URL = s, u
	default:
		cc, err := e.LoadClientConfig()
		if err != nil {
			return ep, err
		}
		name := e.Context
		if name == "" && cc != nil {
			name = cc.CurrentContext
		}
		if name == "" {
			ep.Socket, ep.Default = NewPaths(e.Root).Socket, true
			break
		}
		if cc == nil {
			return ep, errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "CORTEX_CONTEXT=%s but there is no client config at %s", name, e.ClientConfig), "create it (see docs/cli.md) or unset CORTEX_CONTEXT")
		}
		cx, ok := cc.Contexts[name]
		if !ok {
			return ep, errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "%s: no context named %q", cc.Source, name), "cortex contexts are the keys under contexts:")
		}
		ep.Socket, ep.URL, _ = parseHost(cx.Host)
		ep.CA, ep.Cert, ep.Key, ep.APIKey, ep.Context = cx.CA, cx.Cert, cx.Key, cx.APIKey, name
		if cx.APIKeyFile != "" {
			b, err := os.ReadFile(cx.APIKeyFile)
			if err != nil {
				return ep, errdefs.Wrap(errdefs.InvalidArgument, fmt.Errorf("%s: contexts.%s.api_key_file: %w", cc.Source, name, err))
			}
			ep.APIKey = strings.TrimSpace(string(b))
		}
	}
	if e.APIKey != "" {
		ep.APIKey = e.APIKey
	}
	if e.CA != "" {
		ep.CA = e.CA
	}
	if e.Cert != "" || e.Key != "" {
		ep.Cert, ep.Key = e.Cert, e.Key
	}
	if (ep.Cert == "") != (ep.Key == "") {
		return ep, errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "a client certificate needs its key (CORTEX_CERT and CORTEX_KEY)"), "set both or neither")
	}
	return ep, nil
}

// LoadClientConfig reads the client config; nil (no error) when there
// is none.
func (e Env) LoadClientConfig() (*ClientConfig, error) {
	if e.ClientConfig == "" {
		return nil, nil
	}
	data, err := os.ReadFile(e.ClientConfig)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return ParseClientConfig(data, e.ClientConfig)
}
