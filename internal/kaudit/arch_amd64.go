//go:build linux && amd64

package kaudit

import "golang.org/x/sys/unix"

const auditArch = unix.AUDIT_ARCH_X86_64

// syscalls are the calls the rule audits, by number on this architecture.
var syscalls = map[int]syscallInfo{
	unix.SYS_OPEN:       {name: "open", flagsArg: 1, dirfdArg: -1},
	unix.SYS_OPENAT:     {name: "openat", flagsArg: 2, dirfdArg: 0},
	unix.SYS_OPENAT2:    {name: "openat2", access: AccessRead, flagsArg: -1, dirfdArg: 0},
	unix.SYS_CREAT:      {name: "creat", access: AccessWrite, flagsArg: -1, dirfdArg: -1},
	unix.SYS_STAT:       {name: "stat", access: AccessRead, flagsArg: -1, dirfdArg: -1},
	unix.SYS_LSTAT:      {name: "lstat", access: AccessRead, flagsArg: -1, dirfdArg: -1},
	unix.SYS_NEWFSTATAT: {name: "newfstatat", access: AccessRead, flagsArg: -1, dirfdArg: 0},
	unix.SYS_STATX:      {name: "statx", access: AccessRead, flagsArg: -1, dirfdArg: 0},
	unix.SYS_ACCESS:     {name: "access", access: AccessRead, flagsArg: -1, dirfdArg: -1},
	unix.SYS_FACCESSAT:  {name: "faccessat", access: AccessRead, flagsArg: -1, dirfdArg: 0},
	unix.SYS_FACCESSAT2: {name: "faccessat2", access: AccessRead, flagsArg: -1, dirfdArg: 0},
	unix.SYS_READLINK:   {name: "readlink", access: AccessRead, flagsArg: -1, dirfdArg: -1},
	unix.SYS_READLINKAT: {name: "readlinkat", access: AccessRead, flagsArg: -1, dirfdArg: 0},
	unix.SYS_CHDIR:      {name: "chdir", access: AccessRead, flagsArg: -1, dirfdArg: -1},
	unix.SYS_EXECVE:     {name: "execve", access: AccessExec, flagsArg: -1, dirfdArg: -1},
	unix.SYS_EXECVEAT:   {name: "execveat", access: AccessExec, flagsArg: -1, dirfdArg: 0},
	unix.SYS_MKDIR:      {name: "mkdir", access: AccessWrite, flagsArg: -1, dirfdArg: -1},
	unix.SYS_MKDIRAT:    {name: "mkdirat", access: AccessWrite, flagsArg: -1, dirfdArg: 0},
	unix.SYS_RMDIR:      {name: "rmdir", access: AccessWrite, flagsArg: -1, dirfdArg: -1},
	unix.SYS_UNLINK:     {name: "unlink", access: AccessWrite, flagsArg: -1, dirfdArg: -1},
	unix.SYS_UNLINKAT:   {name: "unlinkat", access: AccessWrite, flagsArg: -1, dirfdArg: 0},
	unix.SYS_RENAME:     {name: "rename", access: AccessWrite, flagsArg: -1, dirfdArg: -1},
	unix.SYS_RENAMEAT:   {name: "renameat", access: AccessWrite, flagsArg: -1, dirfdArg: 0},
	unix.SYS_RENAMEAT2:  {name: "renameat2", access: AccessWrite, flagsArg: -1, dirfdArg: 0},
	unix.SYS_LINK:       {name: "link", access: AccessWrite, flagsArg: -1, dirfdArg: -1},
	unix.SYS_LINKAT:     {name: "linkat", access: AccessWrite, flagsArg: -1, dirfdArg: 0},
	unix.SYS_SYMLINK:    {name: "symlink", access: AccessWrite, flagsArg: -1, dirfdArg: -1},
	unix.SYS_SYMLINKAT:  {name: "symlinkat", access: AccessWrite, flagsArg: -1, dirfdArg: 1},
	unix.SYS_TRUNCATE:   {name: "truncate", access: AccessWrite, flagsArg: -1, dirfdArg: -1},
}
