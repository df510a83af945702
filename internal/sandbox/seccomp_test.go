package sandbox

import (
	"testing"

	"github.com/cortexrt/cortex/internal/seccomp"
)

func TestSetIDProfileValid(t *testing.T) {
	if err := SetIDProfile().Validate(); err != nil {
		t.Fatal(err)
	}
	// Stacked on the agent profile, it must not name a call that profile
	// already rules on (the two would then be better merged).
	base := map[string]bool{}
	for _, r := range seccomp.Default().Rules {
		base[r.Syscall] = true
	}
	for _, r := range SetIDRules() {
		if base[r.Syscall] {
			t.Errorf("%s is already in seccomp.Default()", r.Syscall)
		}
	}
}

// TestSetIDRules checks, as data, which calls the set-id rules refuse.
func TestSetIDRules(t *testing.T) {
	rules := map[string]seccomp.Rule{}
	for _, r := range SetIDRules() {
		rules[r.Syscall] = r
	}
	const (
		oWronly  = 0o1
		oTmpfile = 0o20200000 // O_TMPFILE as libc spells it (with O_DIRECTORY)
		atFDCWD  = 0xffffffffffffff9c
	)
	tests := []struct {
		name    string
		syscall string
		args    [6]uint64
		refused bool
	}{
		{"chmod 4755", "chmod", [6]uint64{0, 0o4755}, true},
		{"chmod 2755", "chmod", [6]uint64{0, 0o2755}, true},
		{"chmod 0755", "chmod", [6]uint64{0, 0o755}, false},
		{"chmod 1777 sticky", "chmod", [6]uint64{0, 0o1777}, false},
		{"fchmod u+s", "fchmod", [6]uint64{3, 0o4700}, true},
		{"fchmodat g+s", "fchmodat", [6]uint64{atFDCWD, 0, 0o2750, 0}, true},
		{"fchmodat 0644", "fchmodat", [6]uint64{atFDCWD, 0, 0o644, 0}, false},
		{"fchmodat2 u+s", "fchmodat2", [6]uint64{atFDCWD, 0, 0o4755, 0}, true},
		{"creat 4755", "creat", [6]uint64{0, 0o4755}, true},
		{"creat 0644", "creat", [6]uint64{0, 0o644}, false},
		{"mknod regular 4755", "mknod", [6]uint64{0, 0o100000 | 0o4755, 0}, true},
		{"mknodat fifo", "mknodat", [6]uint64{atFDCWD, 0, 0o10000 | 0o644, 0}, false},
		{"open O_CREAT 4755", "open", [6]uint64{0, oWronly | oCreat, 0o4755}, true},
		{"open O_CREAT 0666", "open", [6]uint64{0, oWronly | oCreat, 0o666}, false},
		{"open without O_CREAT ignores mode", "open", [6]uint64{0, oWronly, 0o4755}, false},
		{"openat O_CREAT 2755", "openat", [6]uint64{atFDCWD, 0, oWronly | oCreat, 0o2755}, true},
		{"openat O_TMPFILE 4755", "openat", [6]uint64{atFDCWD, 0, oWronly | oTmpfile, 0o4755}, true},
		{"openat O_CREAT 0644", "openat", [6]uint64{atFDCWD, 0, oWronly | oCreat, 0o644}, false},
		{"openat read with junk mode", "openat", [6]uint64{atFDCWD, 0, 0, 0o7777}, false},
		{"openat O_CREAT junk in upper half", "openat", [6]uint64{atFDCWD, 0, 0xdead_0000_0000 | oCreat, 0xbeef_0000_0000 | 0o4755}, true},
		{"openat2 always", "openat2", [6]uint64{atFDCWD, 0, 0, 24}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, ok := rules[tc.syscall]
			if !ok {
				t.Fatalf("no rule for %s", tc.syscall)
			}
			if got := r.Applies(tc.args); got != tc.refused {
				t.Errorf("%s%v refused = %v, want %v", tc.syscall, tc.args, got, tc.refused)
			}
		})
	}
}
