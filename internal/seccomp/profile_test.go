package seccomp

import (
	"bytes"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cortexrt/cortex/internal/errdefs"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func TestDefaultValidates(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateRejects(t *testing.T) {
	ok := Rule{Syscall: "mount", Action: ActEPERM, Reason: "r"}
	tests := []struct {
		name    string
		profile Profile
		want    string
	}{
		{"default deny", Profile{DefaultAction: ActEPERM, BadArchAction: ActEPERM, Rules: []Rule{ok}}, "only allow"},
		{"bad arch allowed", Profile{BadArchAction: ActAllow, Rules: []Rule{ok}}, "bad-arch action allow"},
		{"allow rule", Profile{BadArchAction: ActEPERM, Rules: []Rule{{Syscall: "read", Action: ActAllow, Reason: "r"}}}, "rules must refuse"},
		{"no name", Profile{BadArchAction: ActEPERM, Rules: []Rule{{Action: ActEPERM, Reason: "r"}}}, "no syscall name"},
		{"no reason", Profile{BadArchAction: ActEPERM, Rules: []Rule{{Syscall: "mount", Action: ActEPERM}}}, "no reason"},
		{"conflicting actions", Profile{BadArchAction: ActEPERM, Rules: []Rule{ok, {Syscall: "mount", Action: ActENOSYS, Reason: "r"}}}, "conflicts"},
		{"low fallback number", Profile{BadArchAction: ActEPERM, Rules: []Rule{{Syscall: "x", Nr: 165, Action: ActEPERM, Reason: "r"}}}, "below 424"},
		{"when without matches", Profile{BadArchAction: ActEPERM, Rules: []Rule{{Syscall: "mount", Action: ActEPERM, When: "w", Reason: "r"}}}, "When must describe"},
		{"matches without when", Profile{BadArchAction: ActEPERM, Rules: []Rule{{Syscall: "ioctl", Action: ActEPERM, Reason: "r", Any: []Match{{lower32(1, 1)}}}}}, "When must describe"},
		{"empty match", Profile{BadArchAction: ActEPERM, Rules: []Rule{{Syscall: "ioctl", Action: ActEPERM, When: "w", Reason: "r", Any: []Match{{}}}}}, "is empty"},
		{"arg out of range", Profile{BadArchAction: ActEPERM, Rules: []Rule{{Syscall: "ioctl", Action: ActEPERM, When: "w", Reason: "r", Any: []Match{{lower32(6, 1)}}}}}, "out of range"},
		{"two conds on one arg", Profile{BadArchAction: ActEPERM, Rules: []Rule{{Syscall: "ioctl", Action: ActEPERM, When: "w", Reason: "r", Any: []Match{{lower32(1, 1), lower32(1, 2)}}}}}, "two comparisons on argument 1"},
		{"value outside mask", Profile{BadArchAction: ActEPERM, Rules: []Rule{{Syscall: "ioctl", Action: ActEPERM, When: "w", Reason: "r", Any: []Match{{{Arg: 1, Op: OpMaskedEqual, Mask: 0xf, Value: 0x10}}}}}}, "outside mask"},
		{"unknown op", Profile{BadArchAction: ActEPERM, Rules: []Rule{{Syscall: "ioctl", Action: ActEPERM, When: "w", Reason: "r", Any: []Match{{{Arg: 1, Op: Op(42)}}}}}}, "unknown operator"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.profile.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("category %q, want invalid argument", errdefs.CategoryOf(err))
			}
		})
	}
}

// TestDefaultRefusesWhatTheIssueLists checks the profile names every call the
// issue asks to refuse, with the action it asks for.
func TestDefaultRefusesWhatTheIssueLists(t *testing.T) {
	actions := map[string]Action{}
	for _, r := range Default().Rules {
		actions[r.Syscall] = r.Action
	}
	eperm := strings.Fields(`
		mount umount umount2 pivot_root move_mount open_tree open_tree_attr fsopen fsmount fsconfig fspick mount_setattr chroot
		ptrace process_vm_readv process_vm_writev unshare setns clone
		init_module finit_module delete_module kexec_load kexec_file_load reboot bpf perf_event_open
		keyctl add_key request_key userfaultfd open_by_handle_at name_to_handle_at swapon swapoff
		io_uring_setup io_uring_enter io_uring_register socket ioctl personality
		acct clock_adjtime clock_settime create_module get_kernel_syms get_mempolicy ioperm iopl kcmp
		lookup_dcookie mbind move_pages nfsservctl query_module quotactl set_mempolicy settimeofday stime
		sysfs _sysctl uselib ustat vm86 vm86old fanotify_init syslog`)
	for _, name := range eperm {
		if got, ok := actions[name]; !ok || got != ActEPERM {
			t.Errorf("%s: action %v (listed %v), want %v", name, got, ok, ActEPERM)
		}
	}
	if got := actions["clone3"]; got != ActENOSYS {
		t.Errorf("clone3: action %v, want %v", got, ActENOSYS)
	}
	if p := Default(); p.DefaultAction != ActAllow || p.BadArchAction != ActEPERM {
		t.Errorf("default %v, bad arch %v; want allow, errno EPERM", p.DefaultAction, p.BadArchAction)
	}
}

func rule(t *testing.T, syscall, whenPrefix string) Rule {
	t.Helper()
	for _, r := range Default().Rules {
		if r.Syscall == syscall && strings.HasPrefix(r.When, whenPrefix) {
			return r
		}
	}
	t.Fatalf("no %s rule with When starting %q", syscall, whenPrefix)
	return Rule{}
}

func personalityAllowed(persona uint64) bool {
	switch persona {
	case 0, 0x8, 0x20000, 0x20008, 0xffffffff:
		return true
	}
	return false
}

// TestPersonalityCover checks the union of single-argument matches against
// the plain statement "only 0, 0x8, 0x20000, 0x20008 and 0xffffffff".
func TestPersonalityCover(t *testing.T) {
	r := rule(t, "personality", "persona")
	values := []uint64{0, 0x8, 0x20000, 0x20008, 0xffffffff, 0x40000, 0x400000, 0x100000, 0x0400008, 0xfffffffe, 0x7fffffff, 0x80000000, 0xffff_ffff_ffff_ffff, 1 << 32, 1<<32 | 0x8}
	for b := range 32 {
		values = append(values, 1<<b, 0xffffffff&^(1<<b), 1<<b|0x20008, 1<<32|1<<b)
		for c := range 32 {
			values = append(values, 1<<b|1<<c, 0xffffffff&^(1<<b|1<<c))
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		v := uint64(rng.Uint32())
		// Sparse and dense values both, not just uniform ones.
		switch rng.IntN(3) {
		case 0:
			v &= uint64(rng.Uint32())
		case 1:
			v |= uint64(rng.Uint32())
		}
		values = append(values, v)
	}
	for _, v := range values {
		var args [6]uint64
		args[0] = v
		if refused, want := r.Applies(args), !personalityAllowed(v); refused != want {
			t.Errorf("personality(%#x): refused %v, want %v", v, refused, want)
		}
	}
}

func TestArgsCannotHideInUpperHalf(t *testing.T) {
	const junk = 0xdead_beef_0000_0000
	tests := []struct {
		name string
		r    Rule
		args [6]uint64
	}{
		{"clone CLONE_NEWUSER", rule(t, "clone", "flags"), [6]uint64{junk | cloneNewUser | 17}},
		{"socket AF_PACKET", rule(t, "socket", "domain"), [6]uint64{junk | 17, 3}},
		{"socket AF_VSOCK", rule(t, "socket", "domain"), [6]uint64{junk | 40, 1}},
		{"socket AF_KEY", rule(t, "socket", "domain"), [6]uint64{junk | afKey, 3}},
		{"socket AF_INET SOCK_RAW domain", rule(t, "socket", "AF_INET or"), [6]uint64{junk | afInet, sockRaw}},
		{"socket AF_INET SOCK_RAW type", rule(t, "socket", "AF_INET or"), [6]uint64{afInet, junk | sockRaw}},
		{"socket AF_NETLINK audit", rule(t, "socket", "AF_NETLINK"), [6]uint64{afNetlink, 3, junk | 9}},
		{"socketpair AF_INET", rule(t, "socketpair", "domain"), [6]uint64{junk | afInet, 1}},
		{"ioctl TIOCSTI", rule(t, "ioctl", "request is TIOCSTI"), [6]uint64{0, junk | tiocsti}},
		{"personality ADDR_NO_RANDOMIZE", rule(t, "personality", "persona"), [6]uint64{junk | 0x40000}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.r.Applies(tc.args) {
				t.Errorf("args %#x: rule %q does not apply", tc.args, tc.r.When)
			}
		})
	}
}

func TestRulesGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteMarkdown(&buf, Rules()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "rules.md")
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), buf.String()); diff != "" {
		t.Errorf("Rules() markdown differs from %s (-want +got); if intended, run go test -update:\n%s", path, diff)
	}
}

func TestDocsListEveryRule(t *testing.T) {
	p := Default()
	docs := p.Docs()
	if got, want := len(docs), len(p.Rules)+2; got != want {
		t.Fatalf("%d docs, want %d (bad arch, rules, default)", got, want)
	}
	for i, r := range p.Rules {
		want := RuleDoc{Syscall: r.Syscall, Action: r.Action.String(), When: r.When, Reason: r.Reason}
		if diff := cmp.Diff(want, docs[i+1]); diff != "" {
			t.Errorf("docs[%d] (-want +got):\n%s", i+1, diff)
		}
	}
}
