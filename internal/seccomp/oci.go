package seccomp

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// OCIArchitectures are the architectures an OCI profile lists: the ones
// Cortex's rules are written for. A call made through any other entry
// point (i386, x32, AArch32) meets the runtime's bad-architecture action,
// which with runc and crun kills the thread instead of failing with EPERM.
var OCIArchitectures = []specs.Arch{specs.ArchX86_64, specs.ArchAARCH64}

// OCI returns the profile in the OCI runtime spec's form: the JSON that
// runc, crun, containerd and CRI-O load, and that Kubernetes reads from a
// node for a Localhost seccomp profile. It is the same filter: the default
// action allows, each rule becomes SCMP_ACT_ERRNO with its errno, and a
// rule's alternative matches (Any) become one entry each (an entry's
// argument comparisons must all hold; entries for one call are
// alternatives). Unconditional rules with the same action share an entry.
func (p Profile) OCI() (specs.LinuxSeccomp, error) {
	if err := p.Validate(); err != nil {
		return specs.LinuxSeccomp{}, err
	}
	out := specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: OCIArchitectures}
	plain := map[Action]int{} // action -> index of its unconditional entry
	for _, r := range p.Rules {
		errno := uint(r.Action.Errno())
		if len(r.Any) == 0 {
			if i, ok := plain[r.Action]; ok {
				out.Syscalls[i].Names = append(out.Syscalls[i].Names, r.Syscall)
				continue
			}
			plain[r.Action] = len(out.Syscalls)
			out.Syscalls = append(out.Syscalls, specs.LinuxSyscall{Names: []string{r.Syscall}, Action: specs.ActErrno, ErrnoRet: &errno})
			continue
		}
		for _, m := range r.Any {
			sc := specs.LinuxSyscall{Names: []string{r.Syscall}, Action: specs.ActErrno, ErrnoRet: &errno}
			for _, c := range m {
				a, err := ociArg(c)
				if err != nil {
					return specs.LinuxSeccomp{}, fmt.Errorf("%s: %w", r.Syscall, err)
				}
				sc.Args = append(sc.Args, a)
			}
			out.Syscalls = append(out.Syscalls, sc)
		}
	}
	return out, nil
}

// ociArg translates one comparison. For a masked comparison the OCI form
// (libseccomp's) takes the mask as value and the datum as valueTwo.
func ociArg(c Cond) (specs.LinuxSeccompArg, error) {
	a := specs.LinuxSeccompArg{Index: c.Arg, Value: c.Value}
	switch c.Op {
	case OpEqual:
		a.Op = specs.OpEqualTo
	case OpNotEqual:
		a.Op = specs.OpNotEqual
	case OpGreater:
		a.Op = specs.OpGreaterThan
	case OpMaskedEqual:
		a.Op, a.Value, a.ValueTwo = specs.OpMaskedEqual, c.Mask, c.Value
	default:
		return a, fmt.Errorf("operator %s has no OCI form", c.Op)
	}
	return a, nil
}
