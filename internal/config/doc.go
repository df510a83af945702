// Package config owns the daemon's configuration file
// (etc/cortex/config.yaml), the host paths of the design and every CORTEX_*
// environment variable Cortex reads. Nothing else reads the environment.
//
// Environment variables:
//
//	CORTEX_ROOT             prefix for every host path (etc/cortex, var/lib/cortex,
//	                        var/log/cortex, var/cache/cortex, run/cortex, usr/lib/cortex);
//	                        unset means the FHS paths under /.
//	CORTEX_HOST             API address the CLI talks to (unix:///path or a path);
//	                        default is run/cortex/cortexd.sock under the root.
//	CORTEX_DAEMON           path of the cortexd binary the CLI starts when no daemon
//	                        answers; default: cortexd beside the cortex binary, then $PATH.
//	CORTEX_NO_AUTOSTART=1   the CLI never starts a daemon.
//	CORTEX_TEST_PRIVILEGED=1  tests that need root or a kernel feature fail instead of
//	                        skipping (read by internal/kerneltest).
//
// The config file follows Default() -> Parse(io.Reader) -> Validate().
package config
