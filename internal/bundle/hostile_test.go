package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cortexrt/cortex/internal/errdefs"
)

var update = flag.Bool("update", false, "rewrite testdata/hostile from the generators")

// absTarget is where the absolute-path cases aim; the test checks it was
// not created.
const absTarget = "/tmp/cortex-bundle-hostile-abs"

// tarEntry is one raw archive entry.
type tarEntry struct {
	hdr  tar.Header
	body []byte
}

func regEntry(p, content string, perm int64) (File, tarEntry) {
	mode := modeFile
	if perm == 0o755 {
		mode = modeExec
	}
	return File{Path: p, Mode: mode, Size: int64(len(content)), SHA256: sha(content)},
		tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: perm, Size: int64(len(content)), ModTime: modTime}, body: []byte(content)}
}

func dirEntry(p string) (File, tarEntry) {
	return File{Path: p, Mode: modeDir},
		tarEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: 0o755, ModTime: modTime}}
}

func symEntry(p, target string) (File, tarEntry) {
	return File{Path: p, Mode: modeSymlink, Link: target},
		tarEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: p, Linkname: target, Mode: 0o777, ModTime: modTime}}
}

// hostile builds an archive entry by entry: the index lists files, the
// archive holds entries; each can be made to disagree with the other.
type hostile struct {
	files   []File
	entries []tarEntry
	// rawIndex replaces the index JSON; noIndex leaves it out.
	rawIndex []byte
	noIndex  bool
	// keepOrder writes entries as added rather than manifest first, then
	// by name.
	keepOrder bool
	// truncate leaves the last entry's body and the end of the archive out.
	truncate bool
	// tarTrailer is written after the end of the tar; gzTrailer after the
	// gzip member.
	tarTrailer, gzTrailer []byte
	// format forces a tar format (for names USTAR and PAX cannot hold).
	format tar.Format
}

// newHostile starts from a valid project: cortex.yaml, app/, app/main.py.
func newHostile() *hostile {
	h := &hostile{}
	h.add(regEntry(ManifestName, "version: \"1\"\nproject: hostile\n", 0o644))
	h.add(dirEntry("app"))
	h.add(regEntry("app/main.py", "print('hi')\n", 0o644))
	return h
}

func (h *hostile) add(f File, e tarEntry) *hostile {
	h.files = append(h.files, f)
	h.entries = append(h.entries, e)
	return h
}

func (h *hostile) indexOnly(f File, _ tarEntry) *hostile {
	h.files = append(h.files, f)
	return h
}

func (h *hostile) archiveOnly(_ File, e tarEntry) *hostile {
	h.entries = append(h.entries, e)
	return h
}

func (h *hostile) index() *Index {
	files := append([]File(nil), h.files...)
	sort.SliceStable(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return &Index{Version: FormatVersion, Digest: computeDigest(files), Files: files}
}

func (h *hostile) bytes(t testing.TB) []byte {
	t.Helper()
	raw := h.rawIndex
	if raw == nil {
		var err error
		if raw, err = marshalIndex(h.index()); err != nil {
			t.Fatal(err)
		}
	}
	entries := append([]tarEntry(nil), h.entries...)
	if !h.keepOrder {
		sort.SliceStable(entries, func(i, j int) bool {
			a, b := strings.TrimSuffix(entries[i].hdr.Name, "/"), strings.TrimSuffix(entries[j].hdr.Name, "/")
			if (a == ManifestName) != (b == ManifestName) {
				return a == ManifestName
			}
			return a < b
		})
	}
	if !h.noIndex {
		_, ie := regEntry(IndexPath, string(raw), 0o644)
		entries = append([]tarEntry{ie}, entries...)
	}
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for i, e := range entries {
		hdr := e.hdr
		hdr.Format = h.format
		if err := tw.WriteHeader(&hdr); err != nil {
			t.Fatalf("write %q: %v", hdr.Name, err)
		}
		if h.truncate && i == len(entries)-1 {
			break
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatalf("write %q: %v", hdr.Name, err)
		}
	}
	if !h.truncate {
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	tb.Write(h.tarTrailer)
	return gz(t, tb.Bytes(), h.gzTrailer)
}

func gz(t testing.TB, data, trailer []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	level := gzip.BestSpeed
	if *update {
		// Smaller fixtures, slower (90 s for too-many-entries).
		level = gzip.BestCompression
	}
	zw, err := gzip.NewWriterLevel(&out, level)
	if err != nil {
		t.Fatal(err)
	}
	zw.Header = gzip.Header{OS: 255}
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	out.Write(trailer)
	return out.Bytes()
}

type hostileCase struct {
	name  string
	build func(t testing.TB) []byte
	lim   Limits
	want  string // a substring of the error
}

const out = "../../../outside" // from dest, <area>/outside

func hostileCases() []hostileCase {
	return []hostileCase{
		{
			name:  "absolute-path",
			build: func(t testing.TB) []byte { return newHostile().add(regEntry(absTarget, "pwned", 0o644)).bytes(t) },
			want:  `entry "` + absTarget + `": path is absolute; bundles hold relative paths only`,
		},
		{
			name: "absolute-path-unindexed",
			build: func(t testing.TB) []byte {
				return newHostile().archiveOnly(regEntry(absTarget, "pwned", 0o644)).bytes(t)
			},
			want: `entry "` + absTarget + `": path is absolute; bundles hold relative paths only`,
		},
		{
			name:  "dotdot-path",
			build: func(t testing.TB) []byte { return newHostile().add(regEntry(out+"/pwned", "pwned", 0o644)).bytes(t) },
			want:  `entry "../../../outside/pwned": path escapes the bundle; bundles hold relative paths only`,
		},
		{
			name: "dotdot-path-unindexed",
			build: func(t testing.TB) []byte {
				return newHostile().archiveOnly(regEntry("app/../"+out+"/pwned", "pwned", 0o644)).bytes(t)
			},
			want: `entry "app/../../../../outside/pwned": path escapes the bundle`,
		},
		{
			name: "symlink-out-then-file",
			build: func(t testing.TB) []byte {
				return newHostile().add(symEntry("evil", out)).add(regEntry("evil/pwned", "pwned", 0o644)).bytes(t)
			},
			want: `entry "evil": symlink target "../../../outside" leaves the bundle`,
		},
		{
			name: "symlink-out-then-file-unindexed",
			build: func(t testing.TB) []byte {
				return newHostile().archiveOnly(symEntry("evil", out)).archiveOnly(regEntry("evil/pwned", "pwned", 0o644)).bytes(t)
			},
			want: `entry "evil": is not in the index`,
		},
		{
			name: "symlink-inside-then-file",
			build: func(t testing.TB) []byte {
				return newHostile().add(symEntry("l", "app")).add(regEntry("l/pwned", "pwned", 0o644)).bytes(t)
			},
			want: `entry "l/pwned": its parent "l" is a symlink; bundles never hold entries below a symlink`,
		},
		{
			name:  "symlink-absolute",
			build: func(t testing.TB) []byte { return newHostile().add(symEntry("etc", "/etc")).bytes(t) },
			want:  `entry "etc": symlink points to the absolute path "/etc"`,
		},
		{
			name: "symlink-chain-escape",
			build: func(t testing.TB) []byte {
				return newHostile().add(symEntry("app/here", "..")).add(symEntry("app/up", "here/..")).bytes(t)
			},
			want: `entry "app/up": symlink target "here/.." leaves the bundle`,
		},
		{
			name: "hardlink-out",
			build: func(t testing.TB) []byte {
				f, _ := regEntry("app/passwd", "", 0o644)
				return newHostile().add(f, tarEntry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "app/passwd", Linkname: out + "/keep.txt", ModTime: modTime}}).bytes(t)
			},
			want: `entry "app/passwd": is a hard link (to "../../../outside/keep.txt"); bundles refuse hard links`,
		},
		{
			name: "char-device",
			build: func(t testing.TB) []byte {
				f, _ := regEntry("app/tty", "", 0o644)
				return newHostile().add(f, tarEntry{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "app/tty", Mode: 0o666, Devmajor: 5, Devminor: 0, ModTime: modTime}}).bytes(t)
			},
			want: `entry "app/tty": is a character device; bundles never hold device files`,
		},
		{
			name: "block-device",
			build: func(t testing.TB) []byte {
				f, _ := regEntry("app/sda", "", 0o644)
				return newHostile().add(f, tarEntry{hdr: tar.Header{Typeflag: tar.TypeBlock, Name: "app/sda", Mode: 0o660, Devmajor: 8, Devminor: 0, ModTime: modTime}}).bytes(t)
			},
			want: `entry "app/sda": is a block device; bundles never hold device files`,
		},
		{
			name: "fifo",
			build: func(t testing.TB) []byte {
				f, _ := regEntry("app/pipe", "", 0o644)
				return newHostile().add(f, tarEntry{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "app/pipe", Mode: 0o644, ModTime: modTime}}).bytes(t)
			},
			want: `entry "app/pipe": is a fifo`,
		},
		{
			name: "too-many-entries",
			build: func(t testing.TB) []byte {
				h := newHostile()
				h.add(dirEntry("many"))
				for i := range 200_000 {
					h.add(regEntry(fmt.Sprintf("many/%06d", i), "", 0o644))
				}
				return h.bytes(t)
			},
			lim:  Limits{MaxEntries: 1000},
			want: "has 200004 entries; the limit is 1000",
		},
		{
			name: "declared-10GiB",
			build: func(t testing.TB) []byte {
				h := newHostile()
				h.files = append(h.files, File{Path: "big.bin", Mode: modeFile, Size: 10 << 30, SHA256: sha("")})
				h.entries = append(h.entries, tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "big.bin", Mode: 0o644, Size: 10 << 30, ModTime: modTime}})
				h.truncate = true
				return h.bytes(t)
			},
			want: `entry "big.bin": declares 10737418240 bytes; the limit is 1073741824 bytes per file`,
		},
		{
			name: "gzip-bomb-trailer",
			build: func(t testing.TB) []byte {
				h := newHostile()
				h.tarTrailer = make([]byte, 64<<20)
				return h.bytes(t)
			},
			want: "refusing a possible compression bomb",
		},
		{
			name: "gzip-bomb-long-name",
			build: func(t testing.TB) []byte {
				h := newHostile()
				// A GNU long-name header the tar reader reads before any
				// check: 1 MiB of decompressed name.
				h.archiveOnly(regEntry(strings.Repeat("a", 1<<20-1), "", 0o644))
				h.format = tar.FormatGNU
				return h.bytes(t)
			},
			want: "the archive expands beyond what its index declares",
		},
		{
			name: "larger-than-declared",
			build: func(t testing.TB) []byte {
				h := newHostile()
				f, e := regEntry("app/data.bin", strings.Repeat("x", 4096), 0o644)
				f.Size, f.SHA256 = 10, sha(strings.Repeat("x", 10))
				return h.add(f, e).bytes(t)
			},
			want: `entry "app/data.bin": the archive gives 4096 bytes, the index 10`,
		},
		{
			name: "tampered-file",
			build: func(t testing.TB) []byte {
				h := newHostile()
				f, _ := regEntry("app/tool.py", "print('good')\n", 0o644)
				_, e := regEntry("app/tool.py", "print('evil')\n", 0o644)
				return h.add(f, e).bytes(t)
			},
			want: `entry "app/tool.py": content does not match the index`,
		},
		{
			name: "tampered-index",
			build: func(t testing.TB) []byte {
				h := newHostile()
				h.add(regEntry("app/tool.py", "print('evil')\n", 0o644))
				idx := h.index()
				good := computeDigest(append([]File(nil), idx.Files...))
				for i := range idx.Files {
					if idx.Files[i].Path == "app/tool.py" {
						idx.Files[i].SHA256 = sha("print('good')\n")
					}
				}
				idx.Digest = computeDigest(idx.Files)
				raw, _ := marshalIndex(idx)
				// Swap the digest of the untampered index back in.
				h.rawIndex = bytes.Replace(raw, []byte(idx.Digest), []byte(good), 1)
				return h.bytes(t)
			},
			want: "index digest mismatch",
		},
		{
			name: "missing-index",
			build: func(t testing.TB) []byte {
				h := newHostile()
				h.noIndex = true
				return h.bytes(t)
			},
			want: `missing index: the first entry is "cortex.yaml", not .cortex/index.json`,
		},
		{
			name: "missing-manifest",
			build: func(t testing.TB) []byte {
				h := newHostile()
				h.files, h.entries = h.files[1:], h.entries[1:]
				return h.bytes(t)
			},
			want: "no cortex.yaml in the bundle",
		},
		{
			name: "entry-not-in-index",
			build: func(t testing.TB) []byte {
				return newHostile().archiveOnly(regEntry("app/extra.py", "import os\n", 0o644)).bytes(t)
			},
			want: `entry "app/extra.py": is not in the index`,
		},
		{
			name: "index-entry-missing",
			build: func(t testing.TB) []byte {
				return newHostile().indexOnly(regEntry("app/util.py", "x", 0o644)).bytes(t)
			},
			want: `entry "app/util.py": is in the index but missing from the archive`,
		},
		{
			name: "duplicate-entry",
			build: func(t testing.TB) []byte {
				h := newHostile()
				return h.archiveOnly(regEntry("app/main.py", "print('hi')\n", 0o644)).bytes(t)
			},
			want: `entry "app/main.py": appears twice in the archive`,
		},
		{
			name: "duplicate-in-index",
			build: func(t testing.TB) []byte {
				return newHostile().indexOnly(regEntry("app/main.py", "print('hi')\n", 0o644)).bytes(t)
			},
			want: `entry "app/main.py": listed twice in the index`,
		},
		{
			name: "out-of-order",
			build: func(t testing.TB) []byte {
				h := newHostile()
				h.add(regEntry("app/b.py", "b", 0o644))
				h.entries[1], h.entries[3] = h.entries[3], h.entries[1]
				h.keepOrder = true
				return h.bytes(t)
			},
			want: `entry "app/b.py": is out of order (expected "app")`,
		},
		{
			name: "non-utf8-name",
			build: func(t testing.TB) []byte {
				h := newHostile().archiveOnly(regEntry("app/\xff\xfe.py", "x", 0o644))
				h.format = tar.FormatGNU
				return h.bytes(t)
			},
			want: `entry "app/\xff\xfe.py": name is not valid UTF-8`,
		},
		{
			name:  "nul-in-index-name",
			build: func(t testing.TB) []byte { return newHostile().indexOnly(regEntry("app/a\x00b", "x", 0o644)).bytes(t) },
			want:  `entry "app/a\x00b": name contains a NUL byte`,
		},
		{
			name: "non-canonical-index",
			build: func(t testing.TB) []byte {
				h := newHostile()
				raw, _ := marshalIndex(h.index())
				// A duplicate key: JSON parsers disagree on which wins.
				h.rawIndex = bytes.Replace(raw, []byte(`{"version":1,`), []byte(`{"version":1,"version":1,`), 1)
				return h.bytes(t)
			},
			want: "is not in canonical form",
		},
		{
			name: "truncated",
			build: func(t testing.TB) []byte {
				h := newHostile()
				h.truncate = true
				return h.bytes(t)
			},
			want: `entry "app/main.py": the archive is truncated`,
		},
		{
			name: "trailing-data",
			build: func(t testing.TB) []byte {
				h := newHostile()
				h.gzTrailer = []byte("#!/bin/sh\nrm -rf /\n")
				return h.bytes(t)
			},
			want: "data after the compressed archive",
		},
		{
			// A layer whose name is not the digest of its content could
			// put content under another layer's name in a host's store.
			name: "layer-forged-digest",
			build: func(t testing.TB) []byte {
				l := LayersDir + "/" + strings.Repeat("a", 64)
				return newHostile().add(dirEntry(".cortex")).add(dirEntry(LayersDir)).add(dirEntry(l)).
					add(regEntry(l+"/pkg.py", "x = 1\n", 0o644)).bytes(t)
			},
			want: "layer content gives digest",
		},
		{
			// A layer lives apart from its bundle on the host: its links
			// must stay inside it.
			name: "layer-link-out-of-layer",
			build: func(t testing.TB) []byte {
				files := []File{{Path: "x", Mode: modeSymlink, Link: "../../../app"}}
				l := LayersDir + "/" + strings.TrimPrefix(computeDigest(files), "sha256:")
				return newHostile().add(dirEntry(".cortex")).add(dirEntry(LayersDir)).add(dirEntry(l)).
					add(symEntry(l+"/x", "../../../app")).bytes(t)
			},
			want: "leaves the layer",
		},
		{
			name: "reserved-path",
			build: func(t testing.TB) []byte {
				return newHostile().add(dirEntry(".cortex")).add(regEntry(".cortex/hooks.sh", "pwned", 0o755)).bytes(t)
			},
			want: "reserved for the bundle's own metadata",
		},
		{
			name:  "not-gzip",
			build: func(t testing.TB) []byte { return []byte("PK\x03\x04 this is a zip file, not a bundle") },
			want:  "not a gzip-compressed cortex bundle",
		},
	}
}

// TestHostile opens and extracts each hostile archive, both as generated
// and as committed under testdata/hostile, and checks it is refused with
// the right InvalidArgument error, that nothing changed outside dest and
// that dest does not remain.
func TestHostile(t *testing.T) {
	for _, tc := range hostileCases() {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.build(t)
			fixture := filepath.Join("testdata", "hostile", tc.name+".cortex")
			if *update {
				if err := os.MkdirAll(filepath.Dir(fixture), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(fixture, data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			committed, err := os.ReadFile(fixture)
			if err != nil {
				t.Fatalf("fixture missing (run go test -run TestHostile -update): %v", err)
			}
			// The fixture runs with dest created beforehand (empty), the
			// generated archive without.
			t.Run("generated", func(t *testing.T) { checkRefused(t, data, tc.lim, tc.want, false) })
			t.Run("fixture", func(t *testing.T) { checkRefused(t, committed, tc.lim, tc.want, true) })
		})
	}
}

// checkRefused opens and extracts data and checks the refusal. With
// precreate, dest exists (empty) beforehand; if Extract ran, it must be
// gone afterwards, and if Open refused the bundle, it must be untouched.
func checkRefused(t *testing.T, data []byte, lim Limits, want string, precreate bool) {
	t.Helper()
	a := newArea(t)
	if precreate {
		if err := os.Mkdir(a.dest, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	before := a.snapshot(t)
	p := writeBundle(t, data)
	b, err := Open(p)
	extracted := err == nil
	if err == nil {
		err = b.Extract(context.Background(), a.dest, lim, nil)
		if cerr := b.Close(); cerr != nil {
			t.Errorf("Close: %v", cerr)
		}
	}
	switch {
	case err == nil:
		t.Fatalf("hostile bundle accepted; want an error containing %q", want)
	case !strings.Contains(err.Error(), want):
		t.Errorf("error = %q\nwant it to contain %q", err, want)
	case !errdefs.IsInvalidArgument(err):
		t.Errorf("error category = %q, want invalid argument (%v)", errdefs.CategoryOf(err), err)
	case !strings.HasPrefix(err.Error(), "bundle "+p+": "):
		t.Errorf("error %q does not name the bundle %s", err, p)
	}
	if diff := cmp.Diff(before, a.snapshot(t)); diff != "" {
		t.Errorf("something changed outside dest (-before +after):\n%s", diff)
	}
	if precreate && !extracted {
		if got := listTree(t, a.dest); len(got) != 0 {
			t.Errorf("Open wrote into dest: %v", got)
		}
	} else if _, err := os.Lstat(a.dest); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("dest remains after a refused bundle (Lstat: %v)", err)
	}
	if _, err := os.Lstat(absTarget); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s was created", absTarget)
	}
}
