package seccomp

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// evalOCI is what an OCI runtime does with a call to name on a listed
// architecture: the first matching entry's errno, else the default
// (allow, errno 0).
func evalOCI(p specs.LinuxSeccomp, name string, args [6]uint64) int {
	for _, sc := range p.Syscalls {
		hit := false
		for _, n := range sc.Names {
			hit = hit || n == name
		}
		if !hit {
			continue
		}
		all := true
		for _, a := range sc.Args {
			v := args[a.Index]
			switch a.Op {
			case specs.OpEqualTo:
				all = all && v == a.Value
			case specs.OpNotEqual:
				all = all && v != a.Value
			case specs.OpGreaterThan:
				all = all && v > a.Value
			case specs.OpMaskedEqual:
				all = all && v&a.Value == a.ValueTwo
			default:
				all = false
			}
		}
		if all {
			return int(*sc.ErrnoRet)
		}
	}
	return 0
}

// probeArgs are argument vectors that sit on either side of every
// comparison in the profile (and with junk in the upper halves).
func probeArgs(p Profile) [][6]uint64 {
	out := [][6]uint64{{}}
	for _, r := range p.Rules {
		for _, m := range r.Any {
			var hit [6]uint64
			for _, c := range m {
				switch c.Op {
				case OpEqual, OpMaskedEqual:
					hit[c.Arg] = c.Value
				case OpNotEqual:
					hit[c.Arg] = c.Value + 1
				case OpGreater:
					hit[c.Arg] = c.Value + 1
				}
			}
			out = append(out, hit)
			for i := range 6 {
				near := hit
				near[i] ^= 1
				out = append(out, near)
				junk := hit
				junk[i] |= 0xdead_beef_0000_0000
				out = append(out, junk)
			}
		}
	}
	return out
}

// TestOCIProfileIsTheSameFilter: for every call the profile names and
// argument vectors on both sides of each comparison, the OCI form refuses
// exactly what the profile's rules refuse, with the same errno.
func TestOCIProfileIsTheSameFilter(t *testing.T) {
	p := Default()
	oci, err := p.OCI()
	if err != nil {
		t.Fatal(err)
	}
	if oci.DefaultAction != specs.ActAllow || len(oci.Architectures) == 0 {
		t.Fatalf("default %s, architectures %v", oci.DefaultAction, oci.Architectures)
	}
	names := map[string]bool{"read": true, "openat": true}
	for _, r := range p.Rules {
		names[r.Syscall] = true
	}
	probes := probeArgs(p)
	checked := 0
	for name := range names {
		for _, args := range probes {
			want := 0
			for _, r := range p.Rules {
				if r.Syscall == name && r.Applies(args) {
					want = r.Action.Errno()
					break
				}
			}
			if got := evalOCI(oci, name, args); got != want {
				t.Fatalf("%s%v: OCI profile gives errno %d, the profile %d", name, args, got, want)
			}
			checked++
		}
	}
	t.Logf("%d calls x %d argument vectors agree", len(names), len(probes))
	if checked < 1000 {
		t.Fatalf("only %d probes", checked)
	}
}
