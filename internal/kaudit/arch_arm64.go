//go:build linux && arm64

package kaudit

import "golang.org/x/sys/unix"

const auditArch = unix.AUDIT_ARCH_AARCH64

// syscalls are the calls the rule audits, by number on this architecture
// (arm64 has only the *at forms).
var syscalls = map[int]syscallInfo{
	unix.SYS_OPENAT:     {name: "openat", flagsArg: 2, dirfdArg: 0},
	unix.SYS_OPENAT2:    {name: "openat2", access: AccessRead, flagsArg: -1, dirfdArg: 0},
	unix.SYS_FSTATAT:    {name: "newfstatat", access: AccessRead, flagsArg: -1, dirfdArg: 0},
	unix.SYS_STATX:      {name: "statx", access: AccessRead, flagsArg: -1, dirfdArg: 0},
	unix.SYS_FACCESSAT:  {name: "faccessat", access: AccessRead, flagsArg: -1, dirfdArg: 0},
	unix.SYS_FACCESSAT2: {name: "faccessat2", access: AccessRead, flagsArg: -1, dirfdArg: 0},
	unix.SYS_READLINKAT: {name: "readlinkat", access: AccessRead, flagsArg: -1, dirfdArg: 0},
	unix.SYS_CHDIR:      {name: "chdir", access: AccessRead, flagsArg: -1, dirfdArg: -1},
	unix.SYS_EXECVE:     {name: "execve", access: AccessExec, flagsArg: -1, dirfdArg: -1},
	unix.SYS_EXECVEAT:   {name: "execveat", access: AccessExec, flagsArg: -1, dirfdArg: 0},
	unix.SYS_MKDIRAT:    {name: "mkdirat", access: AccessWrite, flagsArg: -1, dirfdArg: 0},
	unix.SYS_UNLINKAT:   {name: "unlinkat", access: AccessWrite, flagsArg: -1, dirfdArg: 0},
	unix.SYS_RENAMEAT2:  {name: "renameat2", access: AccessWrite, flagsArg: -1, dirfdArg: 0},
	unix.SYS_LINKAT:     {name: "linkat", access: AccessWrite, flagsArg: -1, dirfdArg: 0},
	unix.SYS_SYMLINKAT:  {name: "symlinkat", access: AccessWrite, flagsArg: -1, dirfdArg: 1},
	unix.SYS_TRUNCATE:   {name: "truncate", access: AccessWrite, flagsArg: -1, dirfdArg: -1},
}
