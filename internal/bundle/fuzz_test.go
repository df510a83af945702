package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cortexrt/cortex/internal/errdefs"
)

var fuzzLimits = Limits{MaxEntries: 2000, MaxFileSize: 1 << 20, MaxTotalSize: 4 << 20}

// FuzzOpen feeds arbitrary bytes to Open and Extract: they must never
// panic, never write outside dest, refuse with InvalidArgument and leave no
// dest behind, or extract exactly what the index lists. Input that is not
// gzip is compressed first, so the fuzzer can mutate the tar and the index
// directly.
func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	writeTree(f, dir, projectNodes)
	valid, _ := createBytes(f, CreateOptions{Dir: dir})
	f.Add(valid)
	f.Add(gunzip(f, valid))
	fixtures, _ := filepath.Glob(filepath.Join("testdata", "hostile", "*.cortex"))
	for _, p := range fixtures {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		if len(b) < 64<<10 {
			f.Add(b)
		}
	}
	tmp := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		if !bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
			var buf bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
			zw.Write(data)
			zw.Close()
			data = buf.Bytes()
		}
		// Open only reads (it has no destination), so most inputs, which
		// it refuses, need no sentinel area.
		bf, err := os.CreateTemp(tmp, "*.cortex")
		if err != nil {
			t.Fatal(err)
		}
		defer os.Remove(bf.Name())
		if _, err := bf.Write(data); err != nil {
			t.Fatal(err)
		}
		bf.Close()
		b, err := Open(bf.Name())
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("Open error %q has category %q, want invalid argument", err, errdefs.CategoryOf(err))
			}
			return
		}
		defer b.Close()
		idx := b.Index()
		_ = b.Manifest()
		a := newArea(t)
		before := a.snapshot(t)
		err = b.Extract(context.Background(), a.dest, fuzzLimits, nil)
		if err == nil {
			checkExtracted(t, a.dest, idx)
		} else {
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("Extract error %q has category %q, want invalid argument", err, errdefs.CategoryOf(err))
			}
			if _, serr := os.Lstat(a.dest); !errors.Is(serr, fs.ErrNotExist) {
				t.Errorf("dest remains after %v", err)
			}
		}
		if diff := cmp.Diff(before, a.snapshot(t)); diff != "" {
			t.Fatalf("wrote outside dest (-before +after):\n%s", diff)
		}
	})
}

// checkExtracted checks that dest holds exactly the entries of idx.
func checkExtracted(t *testing.T, dest string, idx *Index) {
	t.Helper()
	want := map[string]string{}
	for _, f := range idx.Files {
		switch {
		case f.IsDir():
			want[f.Path] = "dir 0755"
		case f.IsSymlink():
			want[f.Path] = "symlink -> " + f.Link
		default:
			want[f.Path] = "file " + f.Mode.Perm().String() + " " + f.SHA256
		}
	}
	got := map[string]string{}
	for p, desc := range listTree(t, dest) {
		if len(desc) > 4 && desc[:4] == "file" {
			f, _ := idx.Lookup(p)
			b, _ := os.ReadFile(filepath.Join(dest, filepath.FromSlash(p)))
			info, _ := os.Lstat(filepath.Join(dest, filepath.FromSlash(p)))
			if f.SHA256 == sha(string(b)) {
				desc = "file " + info.Mode().Perm().String() + " " + f.SHA256
			}
		}
		got[p] = desc
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("extracted tree does not match the index (-index +disk):\n%s", diff)
	}
}

func gunzip(t testing.TB, data []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestTarFormatsAccepted checks that a bundle written by another tar writer
// in another header format (PAX throughout, or GNU) still opens when it is
// true to its index: the format is the entries, not the header encoding.
func TestTarFormatsAccepted(t *testing.T) {
	for _, format := range []tar.Format{tar.FormatPAX, tar.FormatGNU} {
		t.Run(format.String(), func(t *testing.T) {
			h := newHostile()
			h.add(regEntry("app/"+string(bytes.Repeat([]byte("long"), 40))+".py", "x", 0o644))
			h.format = format
			b, err := Open(writeBundle(t, h.bytes(t)))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if err := b.Verify(context.Background(), Limits{}); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}
