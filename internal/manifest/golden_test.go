package manifest

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/*/problems.golden from the current output")

// checkFile runs Check on path and returns every problem, checking that the
// error has the type and category callers rely on.
func checkFile(t *testing.T, path string, opts ValidateOptions) (*Manifest, Problems) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := Check(f, "cortex.yaml", opts)
	if err == nil {
		return m, nil
	}
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error is not Problems: %T %v", err, err)
	}
	if !errdefs.IsInvalidArgument(err) {
		t.Errorf("error is not InvalidArgument")
	}
	return m, ps
}

// TestGolden checks every testdata/<case>/cortex.yaml against
// testdata/<case>/problems.golden: the exact file:line:col, field, message
// and fix of every problem Parse and Validate report (empty for valid
// manifests). Regenerate with go test -run TestGolden -update.
func TestGolden(t *testing.T) {
	cases, err := filepath.Glob("testdata/*/cortex.yaml")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, path := range cases {
		dir := filepath.Dir(path)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			opts := ValidateOptions{HostCPUs: 4, ProjectDir: dir}
			_, probs := checkFile(t, path, opts)
			var got strings.Builder
			for _, p := range probs {
				got.WriteString(p.String() + "\n")
			}
			golden := filepath.Join(dir, "problems.golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got.String()); diff != "" {
				t.Errorf("problems differ (-want +got):\n%s", diff)
			}
		})
	}
}
