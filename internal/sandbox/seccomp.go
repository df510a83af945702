package sandbox

import "github.com/cortexrt/cortex/internal/seccomp"

// Mode and open flag bits the set-id rules test (the same on amd64 and
// arm64).
const (
	modeSetUID = 0o4000
	modeSetGID = 0o2000
	oCreat     = 0o100
	oTmpfile   = 0o20000000 // __O_TMPFILE, without O_DIRECTORY
)

// SetIDProfile is a second filter every confined agent runs under, stacked
// on the agent profile of internal/seccomp (the kernel applies both; the
// stricter answer wins): allow everything but what SetIDRules refuse.
func SetIDProfile() seccomp.Profile {
	return seccomp.Profile{DefaultAction: seccomp.ActAllow, BadArchAction: seccomp.ActEPERM, Rules: SetIDRules()}
}

// SetIDRules refuse giving a file the set-user-ID or set-group-ID bit.
//
// A filesystem.write grant is an idmapped bind of a host directory: what
// the agent creates there is owned, on the host, by the user who ran the
// swarm, and the agent, as its owner, could chmod u+s it. The sandbox
// mounts it nosuid, but the host does not: the agent would leave a
// set-id program (set-id root when root ran the swarm) for any host user
// to run. So no agent may set those bits anywhere: chmod and friends,
// creating a file with them (open/openat/creat with O_CREAT or O_TMPFILE,
// mknod of a regular file), and openat2, whose mode the filter cannot
// read, fails with ENOSYS so callers fall back to openat. mkdir is not
// listed: the kernel ignores set-id bits in its mode.
func SetIDRules() []seccomp.Rule {
	bit := func(arg uint, b uint64) seccomp.Cond {
		return seccomp.Cond{Arg: arg, Op: seccomp.OpMaskedEqual, Mask: b, Value: b}
	}
	setid := func(mode uint) []seccomp.Match {
		return []seccomp.Match{{bit(mode, modeSetUID)}, {bit(mode, modeSetGID)}}
	}
	creating := func(flags, mode uint) []seccomp.Match {
		var out []seccomp.Match
		for _, f := range []uint64{oCreat, oTmpfile} {
			for _, m := range []uint64{modeSetUID, modeSetGID} {
				out = append(out, seccomp.Match{bit(flags, f), bit(mode, m)})
			}
		}
		return out
	}
	const (
		reason   = "a set-id file in a filesystem.write grant is a set-id program on the host, owned by the user who ran the swarm"
		whenMode = "mode has S_ISUID or S_ISGID"
		whenOpen = "flags have O_CREAT or O_TMPFILE and mode has S_ISUID or S_ISGID"
	)
	return []seccomp.Rule{
		{Syscall: "chmod", Action: seccomp.ActEPERM, Any: setid(1), When: whenMode, Reason: reason},
		{Syscall: "fchmod", Action: seccomp.ActEPERM, Any: setid(1), When: whenMode, Reason: reason},
		{Syscall: "fchmodat", Action: seccomp.ActEPERM, Any: setid(2), When: whenMode, Reason: reason},
		{Syscall: "fchmodat2", Nr: 452, Action: seccomp.ActEPERM, Any: setid(2), When: whenMode, Reason: reason},
		{Syscall: "creat", Action: seccomp.ActEPERM, Any: setid(1), When: whenMode, Reason: reason},
		{Syscall: "mknod", Action: seccomp.ActEPERM, Any: setid(1), When: whenMode, Reason: reason},
		{Syscall: "mknodat", Action: seccomp.ActEPERM, Any: setid(2), When: whenMode, Reason: reason},
		{Syscall: "open", Action: seccomp.ActEPERM, Any: creating(1, 2), When: whenOpen, Reason: reason},
		{Syscall: "openat", Action: seccomp.ActEPERM, Any: creating(2, 3), When: whenOpen, Reason: reason},
		{Syscall: "openat2", Nr: 437, Action: seccomp.ActENOSYS,
			Reason: "its mode is in memory the filter cannot read; ENOSYS makes callers fall back to openat, whose mode is checked (" + reason + ")"},
	}
}
