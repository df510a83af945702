// Package deps vendors an agent's third-party packages into its bundle.
// At bundle time (the CLI: cortex bundle, cortex run DIR) it finds each
// agent's dependency file (the manifest's dependencies: key, else the
// project's requirements.txt or pyproject.toml for a Python agent, its
// package.json for a Node agent), installs it for the interpreter the
// agent will run with, checks the installed packages import without a
// network, and hands the result to internal/bundle as a layer
// (.cortex/layers/<digest>) with a meta file (.cortex/deps.json, the
// Meta type) saying which agent uses which layer and what it was built
// for. At run time the daemon reads Meta (ParseMeta) to bind each agent's
// layer into its sandbox and to refuse an interpreter the packages were
// not built for (LayerInfo.Check).
//
// Python packages are installed with the host's pip (the target
// interpreter's own `python -m pip`, else pip on PATH with --python),
// into a directory with --target, wheels only (--only-binary=:all:): the
// same wheels always give the same tree, no package code runs at install
// time, and compiled wheels match the interpreter's ABI. pip reads its
// usual configuration: pip.conf and the PIP_* environment (PIP_INDEX_URL,
// PIP_FIND_LINKS, PIP_NO_INDEX), which the child process inherits. A
// requirements file with --hash lines is installed with --require-hashes.
// Node packages are installed with `npm ci --omit=dev --ignore-scripts`
// (scripts only when the manifest says dependencies: {scripts: true})
// from package.json and its package-lock.json, with npm's configuration
// (.npmrc, npm_config_*).
//
// Every refusal (no lock file, no matching distribution, a hash
// mismatch, a package that needs the network when imported) is an
// errdefs.InvalidArgument error naming the dependency file and the
// package, and nothing is left behind.
//
// This package must not start agents, read the daemon's state, or write
// anywhere but its own temporary directories.
package deps
