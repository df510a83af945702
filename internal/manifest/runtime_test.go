package manifest

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRuntimeCandidates(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		ok   bool
	}{
		{"python3.11", []string{"python3.11"}, true},
		{"nodejs22", []string{"nodejs22"}, true},
		{"python>=3.11", []string{"python3.13", "python3.12", "python3.11"}, true},
		{"python>=3.13", []string{"python3.13"}, true},
		{"nodejs>=18", []string{"nodejs22", "nodejs20", "nodejs18"}, true},
		{"nodejs>=20", []string{"nodejs22", "nodejs20"}, true},
		{"python>=3.9", nil, false},
		{"python>3.11", nil, false},
		{"python >=3.11", nil, false},
		{"python>= 3.11", nil, false},
		{"python>=3.11.2", nil, false},
		{"python>=nodejs18", nil, false},
		{"node>=20", nil, false},
		{"ruby>=3", nil, false},
		{"python3", nil, false},
		{">=3.11", nil, false},
		{"", nil, false},
	} {
		got, ok := RuntimeCandidates(tc.in)
		if ok != tc.ok || !cmp.Equal(got, tc.want) {
			t.Errorf("RuntimeCandidates(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
		if IsRuntimeRange(tc.in) != (tc.ok && containsOp(tc.in)) {
			t.Errorf("IsRuntimeRange(%q) = %v", tc.in, IsRuntimeRange(tc.in))
		}
	}
}

func containsOp(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		if s[i:i+2] == RuntimeRangeOp {
			return true
		}
	}
	return false
}

func FuzzRuntimeCandidates(f *testing.F) {
	for _, s := range []string{"python3.11", "python>=3.11", "nodejs>=18", "python>=3.9", ">=", "python>="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cands, ok := RuntimeCandidates(s)
		if !ok {
			if len(cands) != 0 {
				t.Fatalf("%q: not ok but %v", s, cands)
			}
			return
		}
		if len(cands) == 0 {
			t.Fatalf("%q: ok without candidates", s)
		}
		for _, c := range cands {
			if !ValidRuntime(c) || IsRuntimeRange(c) {
				t.Fatalf("%q: candidate %q is not a runtime name", s, c)
			}
		}
	})
}
