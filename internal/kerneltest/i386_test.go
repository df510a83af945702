package kerneltest

import (
	"os"
	"testing"
)

// TestI386Gate probes the host's i386 gate and the simulated closed one.
// The host answer is logged (it differs between kernels of one build);
// the simulated gate must be closed on every kernel.
func TestI386Gate(t *testing.T) {
	host := I386(t)
	if host.Simulated != (os.Getenv(EnvIA32) == "off") {
		t.Errorf("host gate %+v, with %s=%q", host, EnvIA32, os.Getenv(EnvIA32))
	}
	sim := SimulatedNoIA32(t)
	if sim.Live || !sim.Simulated || sim.Vector != VectorClosed {
		t.Errorf("simulated gate %+v, want closed int $0x81", sim)
	}
	// The gate answers a second call the same way (getpid: ok or SIGSEGV).
	got, err := host.Call(20, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := host.Want("ok"); got != want {
		t.Errorf("i386 getpid through %s: %s, want %s", host, got, want)
	}
}

func TestI386GateWant(t *testing.T) {
	for _, tc := range []struct {
		g    I386Gate
		live string
		want string
	}{
		{I386Gate{Vector: VectorIA32, Live: true}, "EPERM", "EPERM"},
		{I386Gate{Vector: VectorIA32, Live: true}, "ok", "ok"},
		{I386Gate{Vector: VectorIA32}, "EPERM", "SIGSEGV"},
		{I386Gate{Vector: VectorClosed, Simulated: true}, "EPERM", "SIGSEGV"},
	} {
		if got := tc.g.Want(tc.live); got != tc.want {
			t.Errorf("%+v.Want(%q) = %q, want %q", tc.g, tc.live, got, tc.want)
		}
	}
}
