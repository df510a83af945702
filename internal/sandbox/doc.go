// Package sandbox builds the isolated process an agent runs in and owns the
// sandbox init: a hidden subcommand of cortexd ("cortexd init", like runc's
// "runc init") that the daemon re-execs inside fresh pid, mount, uts, ipc
// and network namespaces.
//
// The daemon side (Start) creates the init, lets the caller place it in its
// cgroup and attach the egress gateway before any agent code runs, then
// sends the Spec. The init side (Init) applies each confinement layer as a
// separate Step, in order, starts the agent as its only child, reaps
// zombies, forwards signals, and records the agent's exit status in a file
// so a restarted daemon can learn it. Its own log lines travel back to the
// daemon as JSON over the control socket.
//
// Daemon side it also opens the directories grants come from without
// trusting their paths twice (Dir: a directory opened without following
// symlinks and identified by device, inode, owner and mount; grants opened
// beneath it with openat2 RESOLVE_BENEATH and made with mkdirat), and
// clones each grant as a detached mount (CloneTree) the init attaches by
// descriptor (Bind.Tree).
//
// This package does not decide limits, policies or restart behaviour; it is
// told them. It must never apply a restriction to the daemon process itself:
// Landlock, seccomp and credential changes happen only in the init.
package sandbox
