package bundle

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cortexrt/cortex/internal/errdefs"
)

const testManifest = "version: \"1\"\nproject: demo\nagents:\n  - name: worker\n    runtime: python3.11\n    entrypoint: agents.worker:main\n"

// projectNodes is a small but complete project: code, an executable, a
// prompt, vendored node modules with a .bin symlink, an empty directory,
// and things the default and project ignore rules leave out.
var projectNodes = []node{
	{path: "cortex.yaml", content: testManifest},
	{path: ".cortexignore", content: "# local only\nsecrets.env\nlogs/\n*.log\n!keep.log\n/build\n"},
	{path: "agents/__init__.py", content: ""},
	{path: "agents/worker.py", content: "def main():\n    return 42\n", perm: 0o600},
	{path: "agents/run.sh", content: "#!/bin/sh\necho hi\n", perm: 0o700},
	{path: "agents/__pycache__/worker.cpython-311.pyc", content: "bytecode"},
	{path: "agents/stale.pyc", content: "bytecode"},
	{path: "prompts/system.txt", content: "You are helpful.\n"},
	{path: "node_modules/tool/cli.js", content: "console.log(1)\n", perm: 0o755},
	{path: "node_modules/.bin/tool", link: "../tool/cli.js"},
	{path: "vendor", dir: true},
	{path: ".git/HEAD", content: "ref: refs/heads/main\n"},
	{path: "old.cortex", content: "not packed"},
	{path: "secrets.env", content: "KEY=1"},
	{path: "logs/today.txt", content: "x"},
	{path: "debug.log", content: "x"},
	{path: "keep.log", content: "kept"},
	{path: "build/out.js", content: "x"},
	{path: "agents/build/keep.py", content: "anchored /build does not match here"},
}

// projectWant is what extracting the bundle of projectNodes gives.
var projectWant = map[string]string{
	".cortexignore":            "file 0644 # local only\nsecrets.env\nlogs/\n*.log\n!keep.log\n/build\n",
	"agents":                   "dir 0755",
	"agents/__init__.py":       "file 0644 ",
	"agents/build":             "dir 0755",
	"agents/build/keep.py":     "file 0644 anchored /build does not match here",
	"agents/run.sh":            "file 0755 #!/bin/sh\necho hi\n",
	"agents/worker.py":         "file 0644 def main():\n    return 42\n",
	"cortex.yaml":              "file 0644 " + testManifest,
	"keep.log":                 "file 0644 kept",
	"node_modules":             "dir 0755",
	"node_modules/.bin":        "dir 0755",
	"node_modules/.bin/tool":   "symlink -> ../tool/cli.js",
	"node_modules/tool":        "dir 0755",
	"node_modules/tool/cli.js": "file 0755 console.log(1)\n",
	"prompts":                  "dir 0755",
	"prompts/system.txt":       "file 0644 You are helpful.\n",
	"vendor":                   "dir 0755",
}

func TestRoundTrip(t *testing.T) {
	for _, walk := range []bool{false, true} {
		name := "openat2"
		if walk {
			name = "walk"
		}
		t.Run(name, func(t *testing.T) {
			forceWalk = walk
			defer func() { forceWalk = false }()
			dir := t.TempDir()
			writeTree(t, dir, projectNodes)
			var progress [][2]int64
			data, idx := createBytes(t, CreateOptions{Dir: dir, Progress: func(d, tot int64) { progress = append(progress, [2]int64{d, tot}) }})
			checkProgress(t, "Create", progress, idx.TotalSize())

			b, err := Open(writeBundle(t, data))
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer b.Close()
			if diff := cmp.Diff(idx, b.Index()); diff != "" {
				t.Errorf("Open index differs from Create's (-create +open):\n%s", diff)
			}
			if got := string(b.Manifest()); got != testManifest {
				t.Errorf("Manifest() = %q, want %q", got, testManifest)
			}
			if err := b.Verify(context.Background(), Limits{}); err != nil {
				t.Errorf("Verify: %v", err)
			}
			a := newArea(t)
			before := a.snapshot(t)
			progress = nil
			if err := b.Extract(context.Background(), a.dest, Limits{}, func(d, tot int64) { progress = append(progress, [2]int64{d, tot}) }); err != nil {
				t.Fatalf("Extract: %v", err)
			}
			checkProgress(t, "Extract", progress, idx.TotalSize())
			if diff := cmp.Diff(projectWant, listTree(t, a.dest)); diff != "" {
				t.Errorf("extracted tree (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(before, a.snapshot(t)); diff != "" {
				t.Errorf("Extract wrote outside dest (-before +after):\n%s", diff)
			}
			st, err := os.Stat(a.dest)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o755 {
				t.Errorf("dest mode = %v, want 0755", st.Mode().Perm())
			}
			if uid := int(st.Sys().(*syscall.Stat_t).Uid); uid != os.Geteuid() {
				t.Errorf("dest owned by uid %d, want %d", uid, os.Geteuid())
			}
		})
	}
}

func checkProgress(t *testing.T, what string, calls [][2]int64, total int64) {
	t.Helper()
	if len(calls) == 0 {
		t.Fatalf("%s: progress never called", what)
	}
	var last int64
	for _, c := range calls {
		if c[1] != total || c[0] < last || c[0] > total {
			t.Fatalf("%s: progress call %v out of order or range (total %d)", what, c, total)
		}
		last = c[0]
	}
	if last != total {
		t.Errorf("%s: progress ended at %d, want %d", what, last, total)
	}
}

func TestIndexContents(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, projectNodes)
	_, idx := createBytes(t, CreateOptions{Dir: dir})
	if idx.Version != 1 {
		t.Errorf("Version = %d, want 1", idx.Version)
	}
	if got := computeDigest(idx.Files); idx.Digest != got || !strings.HasPrefix(got, "sha256:") || len(got) != 71 {
		t.Errorf("Digest = %q, recomputed %q", idx.Digest, got)
	}
	want := map[string]File{
		"agents/run.sh":          {Path: "agents/run.sh", Mode: 0o755, Size: 18, SHA256: sha("#!/bin/sh\necho hi\n")},
		"agents/worker.py":       {Path: "agents/worker.py", Mode: 0o644, Size: 26, SHA256: sha("def main():\n    return 42\n")},
		"agents":                 {Path: "agents", Mode: fs.ModeDir | 0o755},
		"node_modules/.bin/tool": {Path: "node_modules/.bin/tool", Mode: fs.ModeSymlink | 0o777, Link: "../tool/cli.js"},
		"cortex.yaml":            {Path: "cortex.yaml", Mode: 0o644, Size: int64(len(testManifest)), SHA256: sha(testManifest)},
	}
	for p, w := range want {
		got, ok := idx.Lookup(p)
		if !ok {
			t.Errorf("Lookup(%q) missing", p)
			continue
		}
		if diff := cmp.Diff(w, got); diff != "" {
			t.Errorf("entry %q (-want +got):\n%s", p, diff)
		}
	}
	if len(idx.Files) != len(projectWant) {
		t.Errorf("index has %d entries, want %d", len(idx.Files), len(projectWant))
	}
}

func TestCreateManifestElsewhere(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, []node{
		{path: "cortex.yaml", content: "the project's own, replaced"},
		{path: "agents/a.py", content: "x"},
	})
	other := filepath.Join(t.TempDir(), "prod.yml")
	writeTree(t, filepath.Dir(other), []node{{path: "prod.yml", content: testManifest}})
	data, _ := createBytes(t, CreateOptions{Dir: dir, ManifestPath: other})
	b, err := Open(writeBundle(t, data))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := string(b.Manifest()); got != testManifest {
		t.Errorf("Manifest() = %q, want the --config file", got)
	}

	// Dir defaults to the manifest's directory.
	data2, idx := createBytes(t, CreateOptions{ManifestPath: filepath.Join(dir, "cortex.yaml")})
	if _, ok := idx.Lookup("agents/a.py"); !ok || len(data2) == 0 {
		t.Errorf("Create with only ManifestPath did not pack its directory: %+v", idx.Files)
	}
}

func TestCreateErrors(t *testing.T) {
	tests := []struct {
		name  string
		nodes []node
		setup func(t *testing.T, dir string)
		cat   errdefs.Category
		want  string
	}{
		{
			name:  "symlink leaving the project",
			nodes: []node{{path: "agents/bad", link: "../../etc/passwd"}},
			cat:   errdefs.InvalidArgument,
			want:  `path "agents/bad": symlink target "../../etc/passwd" leaves the bundle; bundles keep only symlinks that stay inside the bundle; make the link relative and inside the project, copy its target in, or add it to .cortexignore`,
		},
		{
			name:  "absolute symlink",
			nodes: []node{{path: "data", link: "/var/data"}},
			cat:   errdefs.InvalidArgument,
			want:  `path "data": symlink points to the absolute path "/var/data"`,
		},
		{
			name:  "symlink escaping through another",
			nodes: []node{{path: "here", link: "."}, {path: "up", link: "here/.."}},
			cat:   errdefs.InvalidArgument,
			want:  `path "up": symlink target "here/.." leaves the bundle`,
		},
		{
			name: "socket",
			setup: func(t *testing.T, dir string) {
				l, err := net.Listen("unix", filepath.Join(dir, "agent.sock"))
				if err != nil {
					t.Skipf("unix socket: %v", err)
				}
				t.Cleanup(func() { l.Close() })
			},
			cat:  errdefs.InvalidArgument,
			want: `path "agent.sock": is a socket; bundles hold regular files, directories and symlinks only, add it to .cortexignore`,
		},
		{
			name: "fifo",
			setup: func(t *testing.T, dir string) {
				if err := syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			cat:  errdefs.InvalidArgument,
			want: `path "pipe": is a fifo`,
		},
		{
			name:  "name not UTF-8",
			nodes: []node{{path: "bad\xffname.py", content: "x"}},
			cat:   errdefs.InvalidArgument,
			want:  `name is not valid UTF-8; rename the file or add it to .cortexignore`,
		},
		{
			name:  "bad ignore pattern",
			nodes: []node{{path: ".cortexignore", content: "ok\n[a-\n"}},
			cat:   errdefs.InvalidArgument,
			want:  `.cortexignore:2: bad pattern "[a-"`,
		},
		{
			name:  "no manifest",
			setup: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "cortex.yaml")) },
			cat:   errdefs.NotFound,
			want:  "no manifest at",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, append([]node{{path: "cortex.yaml", content: testManifest}}, tc.nodes...))
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			var out strings.Builder
			_, err := Create(context.Background(), &out, CreateOptions{Dir: dir})
			if err == nil {
				t.Fatal("Create succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %q, want it to contain %q", err, tc.want)
			}
			if got := errdefs.CategoryOf(err); got != tc.cat {
				t.Errorf("category = %q, want %q", got, tc.cat)
			}
			if out.Len() != 0 {
				t.Errorf("Create wrote %d bytes before failing", out.Len())
			}
		})
	}
}

func TestCreateIgnoredSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, []node{
		{path: "cortex.yaml", content: testManifest},
		{path: ".cortexignore", content: "run/\nout\n"},
		{path: "out", link: "/tmp"},
	})
	if err := os.Mkdir(filepath.Join(dir, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "run", "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, idx := createBytes(t, CreateOptions{Dir: dir})
	var got []string
	for _, f := range idx.Files {
		got = append(got, f.Path)
	}
	if diff := cmp.Diff([]string{".cortexignore", "cortex.yaml"}, got); diff != "" {
		t.Errorf("index paths (-want +got):\n%s", diff)
	}
}

func TestCreateLimits(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, []node{{path: "cortex.yaml", content: testManifest}})
	c := &creator{dir: dir, lim: Limits{MaxEntries: 3, MaxFileSize: 10, MaxTotalSize: 15}}
	var err error
	if c.ign, err = newIgnorer(nil, ""); err != nil {
		t.Fatal(err)
	}
	writeTree(t, dir, []node{{path: "a", content: "12345678901"}})
	if err := c.walk(context.Background(), dir, ""); err == nil || !strings.Contains(err.Error(), `path "a": is 11 bytes; bundles hold files of at most 10 bytes`) {
		t.Errorf("walk over the file size limit: %v", err)
	}
}

func TestExtractDestination(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, projectNodes)
	data, _ := createBytes(t, CreateOptions{Dir: dir})
	b, err := Open(writeBundle(t, data))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()

	t.Run("empty existing dest", func(t *testing.T) {
		a := newArea(t)
		if err := os.Mkdir(a.dest, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := b.Extract(ctx, a.dest, Limits{}, nil); err != nil {
			t.Fatalf("Extract: %v", err)
		}
		if diff := cmp.Diff(projectWant, listTree(t, a.dest)); diff != "" {
			t.Errorf("extracted tree (-want +got):\n%s", diff)
		}
	})
	t.Run("non-empty dest is left alone", func(t *testing.T) {
		a := newArea(t)
		writeTree(t, a.dest, []node{{path: "mine.txt", content: "mine"}})
		err := b.Extract(ctx, a.dest, Limits{}, nil)
		if !errdefs.IsAlreadyExists(err) {
			t.Fatalf("Extract = %v, want AlreadyExists", err)
		}
		if diff := cmp.Diff(map[string]string{"mine.txt": "file 0644 mine"}, listTree(t, a.dest)); diff != "" {
			t.Errorf("dest changed (-want +got):\n%s", diff)
		}
		if m, _ := filepath.Glob(filepath.Join(filepath.Dir(a.dest), ".dest.extract-*")); len(m) != 0 {
			t.Errorf("temporary directories left: %v", m)
		}
	})
	t.Run("missing parent", func(t *testing.T) {
		a := newArea(t)
		err := b.Extract(ctx, filepath.Join(a.root, "nope", "dest"), Limits{}, nil)
		if !errdefs.IsNotFound(err) {
			t.Errorf("Extract = %v, want NotFound", err)
		}
	})
	t.Run("canceled", func(t *testing.T) {
		a := newArea(t)
		if err := os.Mkdir(a.dest, 0o755); err != nil {
			t.Fatal(err)
		}
		before := a.snapshot(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		err := b.Extract(cctx, a.dest, Limits{}, nil)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Extract = %v, want context.Canceled", err)
		}
		if _, err := os.Lstat(a.dest); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("dest remains after a failed Extract: %v", err)
		}
		if diff := cmp.Diff(before, a.snapshot(t)); diff != "" {
			t.Errorf("area changed (-before +after):\n%s", diff)
		}
	})
	t.Run("limits", func(t *testing.T) {
		for _, tc := range []struct {
			lim  Limits
			want string
		}{
			{Limits{MaxEntries: 5}, "has 17 entries; the limit is 5"},
			{Limits{MaxFileSize: 60}, fmt.Sprintf(`entry "cortex.yaml": declares %d bytes; the limit is 60 bytes per file`, len(testManifest))},
			{Limits{MaxTotalSize: 100}, "declares more than 100 bytes of files"},
		} {
			a := newArea(t)
			err := b.Extract(ctx, a.dest, tc.lim, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errdefs.IsInvalidArgument(err) {
				t.Errorf("Extract with %+v = %v, want InvalidArgument containing %q", tc.lim, err, tc.want)
			}
		}
	})
	t.Run("closed", func(t *testing.T) {
		b2, err := Open(writeBundle(t, data))
		if err != nil {
			t.Fatal(err)
		}
		b2.Close()
		if err := b2.Verify(ctx, Limits{}); err == nil {
			t.Error("Verify after Close succeeded")
		}
	})
}

func TestOpenMissingFile(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "none.cortex"))
	if !errdefs.IsNotFound(err) {
		t.Errorf("Open(missing) = %v, want NotFound", err)
	}
}

func TestCreateNeverExcludesManifest(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, []node{
		{path: "cortex.yaml", content: testManifest},
		{path: ".cortexignore", content: "*\n!.cortexignore\n"},
		{path: "agents/a.py", content: "x"},
	})
	_, idx := createBytes(t, CreateOptions{Dir: dir})
	var got []string
	for _, f := range idx.Files {
		got = append(got, f.Path)
	}
	if diff := cmp.Diff([]string{".cortexignore", "cortex.yaml"}, got); diff != "" {
		t.Errorf("index paths (-want +got):\n%s", diff)
	}
}

// TestConcurrentExtract extracts one bundle to one dest from several
// goroutines, as two uploads of the same bundle would: exactly one wins,
// the others get AlreadyExists, and no temporary directory is left.
func TestConcurrentExtract(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, projectNodes)
	data, _ := createBytes(t, CreateOptions{Dir: dir})
	b, err := Open(writeBundle(t, data))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a := newArea(t)
	const n = 4
	errs := make(chan error, n)
	for range n {
		go func() { errs <- b.Extract(context.Background(), a.dest, Limits{}, nil) }()
	}
	won := 0
	for range n {
		switch err := <-errs; {
		case err == nil:
			won++
		case errdefs.IsAlreadyExists(err):
		default:
			t.Errorf("Extract: %v", err)
		}
	}
	if won != 1 {
		t.Errorf("%d extractions succeeded, want 1", won)
	}
	if diff := cmp.Diff(projectWant, listTree(t, a.dest)); diff != "" {
		t.Errorf("extracted tree (-want +got):\n%s", diff)
	}
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(a.dest), ".dest.extract-*")); len(m) != 0 {
		t.Errorf("temporary directories left: %v", m)
	}
}
