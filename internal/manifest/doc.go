// Package manifest owns cortex.yaml: the model (types.go), parsing it
// strictly with positions (Parse, Load), checking its meaning (Validate) and
// deciding every field of every agent (Resolve: agent, then the manifest's
// defaults, then the daemon's).
//
// Problems are reported all at once, sorted by position, each as
// "file:line:col: field: what is wrong; how to fix" (see Problems). The
// package also holds the shared meaning of manifest values that other
// packages enforce: network.access rules (ParseHostRule) and channel ACL
// patterns (ChannelMatches).
//
// It must not touch the host beyond reading the manifest and, when asked
// (ValidateOptions.ProjectDir), stat-ing the declared filesystem paths; it
// starts nothing, reads no environment and imports no daemon package.
package manifest
