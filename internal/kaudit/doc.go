// Package kaudit reports the file system calls the kernel refused to
// given processes, from the kernel's audit subsystem: for each watched
// uid it adds an audit rule (the syscalls that open, create, remove,
// rename, stat or execute a path; failures only; this daemon's filter
// key) and reads the records from the audit netlink socket's read-only
// multicast group, which does not compete with an auditd that may own
// the socket. Each refusal of ENOENT, EACCES, EPERM, EROFS or ENOTDIR is
// reported with the path as the process named it (made absolute with its
// working directory), the access it wanted (read, write, exec) and the
// pid, once the pid is confirmed to live in the watched pid namespace
// (so another daemon's agent with the same uid is never reported).
//
// Why not Landlock's own audit records (AUDIT_LANDLOCK_ACCESS, kernel
// 6.15+): Cortex hides what an agent may not see by leaving it out of the
// agent's mount tree, so a refused path is absent (ENOENT) or on a
// read-only mount (EROFS) before Landlock is asked; Landlock records
// would only show what the mount tree already stops. The syscall records
// see the refusal the agent actually got, without changing the sandbox.
//
// Auditing must be enabled in the kernel for records to exist: Watch
// enables it when it is off and turns it off again when the last watch
// closes (a host with auditd has it on already). While enabled, the
// kernel also prints audit records to its log when no auditd listens.
// Where the audit socket is out of reach (a container without
// CAP_AUDIT_CONTROL, a kernel without audit), Watch fails and callers
// learn without file system records.
//
// This package must not know about agents or projects: callers map the
// uid and pid namespace to an agent.
package kaudit
