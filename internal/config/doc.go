// Package config owns the daemon's configuration file
// (etc/cortex/config.yaml), the host paths of the design and every
// environment variable Cortex reads. Nothing else reads the environment
// (net/http's ProxyFromEnvironment aside: the LLM gateway's upstream calls
// honour HTTPS_PROXY, HTTP_PROXY and NO_PROXY).
//
// Environment variables:
//
//	CORTEX_ROOT             prefix for every host path (etc/cortex, var/lib/cortex,
//	                        var/log/cortex, var/cache/cortex, run/cortex, usr/lib/cortex);
//	                        unset means the FHS paths under /.
//	CORTEX_HOST             API address the CLI talks to: https://HOST:PORT (a remote
//	                        daemon, TLS 1.3), unix:///path or a path; default is
//	                        run/cortex/cortexd.sock under the root. Set, the CLI
//	                        never starts a daemon.
//	CORTEX_API_KEY          an API key's secret, sent as Authorization: Bearer.
//	CORTEX_CA               PEM file of the CA a remote daemon's certificate chains to.
//	CORTEX_CERT, CORTEX_KEY a client certificate and its key (mTLS).
//	CORTEX_CONTEXT          the client config context to use (overrides current_context).
//	CORTEX_CONFIG           the client config file; default
//	                        $XDG_CONFIG_HOME/cortex/config.yaml or ~/.config/cortex/config.yaml
//	                        (HOME and XDG_CONFIG_HOME are read for it).
//	CORTEX_DAEMON           path of the cortexd binary the CLI starts when no daemon
//	                        answers; default: cortexd beside the cortex binary, then $PATH.
//	                        A version cortex-ops update installed under the root
//	                        (usr/lib/cortex/current/cortexd) comes first.
//	CORTEX_NO_AUTOSTART=1   the CLI never starts a daemon.
//	PYENV_ROOT              where runtime discovery looks for pyenv's Pythons
//	                        (versions/<x.y.z>/bin); default /root/.pyenv.
//	(api_key_env)           the variable an llm provider's api_key_env names holds
//	                        its key (read with Getenv, by the daemon only).
//	CORTEX_TEST_PRIVILEGED=1  tests that need root or a kernel feature fail instead of
//	                        skipping (read by internal/kerneltest).
//
// The config file follows Default() -> Parse(io.Reader) -> Validate(). It
// owns every section as plain data (the bus and llm sections included), so
// it imports no subsystem and the CLI links none: internal/bus and
// internal/llm consume Bus and LLM. Durations are time.Duration and sizes
// manifest.Quantity in every section, decoded once by strictyaml.
package config
