package bundle

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"sync"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// Bundle is an opened .cortex file whose index and manifest were checked.
// Its methods may be called from several goroutines; Close must come last.
type Bundle struct {
	name     string
	f        *os.File
	size     int64
	idx      *Index
	pos      map[string]int // path -> position in idx.Files
	rawIndex []byte
	manifest []byte

	mu     sync.RWMutex
	closed bool
}

// Open opens the bundle file at path and checks its structure up to the
// manifest: the gzip and tar framing, the index (first entry: canonical
// JSON, format version, every path, mode, size and symlink target, and its
// digest) and cortex.yaml (second entry: matching the index and its
// SHA-256). It does not read the rest of the archive: Verify and Extract
// check every other entry as they stream it. Errors about the file's
// content are InvalidArgument and name path and the entry.
//
// The daemon has uploads on disk, hence a path; the file is held open until
// Close, so replacing path meanwhile changes nothing.
func Open(path string) (*Bundle, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, errdefs.Wrap(categoryOf(err), fmt.Errorf("bundle %s: %w", path, err))
	}
	b, err := open(path, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return b, nil
}

func open(name string, f *os.File) (*Bundle, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", name, err)
	}
	if !st.Mode().IsRegular() {
		return nil, invalidf(name, "not a regular file")
	}
	b := &Bundle{name: name, f: f, size: st.Size()}
	a, err := b.newReader(maxIndexSize + maxManifestSize + 1<<20)
	if err != nil {
		return nil, err
	}
	raw, err := a.readIndex()
	if err != nil {
		return nil, err
	}
	idx, err := unmarshalIndex(name, raw)
	if err != nil {
		return nil, err
	}
	b.idx, b.rawIndex = idx, raw
	b.pos = make(map[string]int, len(idx.Files))
	for i, fl := range idx.Files {
		b.pos[fl.Path] = i
	}
	// The manifest is the second entry.
	m := idx.Files[b.pos[ManifestName]]
	hdr, err := a.next()
	if err == io.EOF {
		return nil, entryErr(name, ManifestName, "is in the index but missing from the archive; the bundle is truncated or was modified, rebuild it")
	}
	if err != nil {
		return nil, err
	}
	if err := b.checkHeader(hdr, &m, nil); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := b.readContent(a, &m, func(r io.Reader) error { _, err := buf.ReadFrom(r); return err }); err != nil {
		return nil, err
	}
	b.manifest = buf.Bytes()
	return b, nil
}

// Index returns a copy of the bundle's index.
func (b *Bundle) Index() *Index { return b.idx.Clone() }

// Manifest returns a copy of the cortex.yaml bytes.
func (b *Bundle) Manifest() []byte { return bytes.Clone(b.manifest) }

// Close releases the file. Verify and Extract fail afterwards.
func (b *Bundle) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	return b.f.Close()
}

// Verify reads the whole archive and checks every entry against the index,
// as Extract does, without writing anything.
func (b *Bundle) Verify(ctx context.Context, lim Limits) error {
	return b.stream(ctx, lim.withDefaults(), nil, discard{})
}

// sink receives the entries of a bundle that checked out so far, in index
// order: a directory before what it holds.
type sink interface {
	mkdir(path string) error
	symlink(path, target string) error
	// file must read r to its end; the content is verified afterwards, and
	// on a mismatch the whole extraction is discarded.
	file(path string, mode fs.FileMode, r io.Reader) error
}

type discard struct{}

func (discard) mkdir(string) error           { return nil }
func (discard) symlink(string, string) error { return nil }
func (discard) file(_ string, _ fs.FileMode, r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}

var _ sink = discard{}

// checkLimits refuses an index beyond lim before anything is read.
func (b *Bundle) checkLimits(lim Limits) error {
	if n := len(b.idx.Files); n > lim.MaxEntries {
		return invalidf(b.name, "has %d entries; the limit is %d", n, lim.MaxEntries)
	}
	var total int64
	for _, f := range b.idx.Files {
		if f.Size > lim.MaxFileSize {
			return entryErr(b.name, f.Path, "declares %d bytes; the limit is %d bytes per file", f.Size, lim.MaxFileSize)
		}
		if f.Size > lim.MaxTotalSize-total {
			return invalidf(b.name, "declares more than %d bytes of files; the limit is %d", lim.MaxTotalSize, lim.MaxTotalSize)
		}
		total += f.Size
	}
	return nil
}

// capacity bounds the decompressed bytes of a bundle true to its index:
// the content padded to tar blocks, a generous allowance per entry for
// headers (PAX ones included), the end of the archive and record padding.
func (b *Bundle) capacity() int64 {
	n := int64(len(b.rawIndex)) + 4096 + 64<<10
	for _, f := range b.idx.Files {
		n += 2048 + 2*int64(len(f.Path)+len(f.Link)) + (f.Size+511)&^511
	}
	return n
}

// stream reads the whole archive, checks each entry against the index and
// hands it to s. The entries must be, in order: the index (byte for byte
// what Open read), cortex.yaml, then the other files in index order.
func (b *Bundle) stream(ctx context.Context, lim Limits, progress func(done, total int64), s sink) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return errdefs.New(errdefs.FailedPrecondition, "bundle %s: closed", b.name)
	}
	if err := b.checkLimits(lim); err != nil {
		return err
	}
	a, err := b.newReader(b.capacity())
	if err != nil {
		return err
	}
	raw, err := a.readIndex()
	if err != nil {
		return err
	}
	if !bytes.Equal(raw, b.rawIndex) {
		return invalidf(b.name, "the index changed since the bundle was opened; the file was modified, open it again")
	}
	files := b.idx.Files
	order := make([]int, 0, len(files))
	order = append(order, b.pos[ManifestName])
	for i, f := range files {
		if f.Path != ManifestName {
			order = append(order, i)
		}
	}
	seen := make([]bool, len(files))
	total := b.idx.TotalSize()
	var done int64
	if progress != nil {
		progress(0, total)
	}
	cr := &contentReader{ctx: ctx}
	if progress != nil {
		cr.progress = func(n int64) { done += n; progress(done, total) }
	}
	for _, i := range order {
		if err := ctx.Err(); err != nil {
			return err
		}
		f := &files[i]
		hdr, err := a.next()
		if err == io.EOF {
			return entryErr(b.name, f.Path, "is in the index but missing from the archive; the bundle is truncated or was modified, rebuild it")
		}
		if err != nil {
			return err
		}
		if err := b.checkHeader(hdr, f, seen); err != nil {
			return err
		}
		seen[i] = true
		switch {
		case f.IsDir():
			err = s.mkdir(f.Path)
		case f.IsSymlink():
			err = s.symlink(f.Path, f.Link)
		default:
			err = b.readContent(a, f, func(r io.Reader) error {
				cr.r = r
				return s.file(f.Path, f.Mode, cr)
			})
		}
		if err != nil {
			return err
		}
	}
	// Nothing may follow the last indexed entry.
	hdr, err := a.next()
	if err == nil {
		return b.checkHeader(hdr, nil, seen)
	}
	if err != io.EOF {
		return err
	}
	return a.checkEnd()
}

// checkHeader checks that hdr is the entry f of the index (nil: no entry
// is expected here). seen marks the entries already read.
func (b *Bundle) checkHeader(hdr *tar.Header, f *File, seen []bool) error {
	name := hdr.Name
	if hdr.Typeflag == tar.TypeDir && len(name) > 1 && name[len(name)-1] == '/' {
		name = name[:len(name)-1]
	}
	if why := checkPath(name); why != "" {
		return entryErr(b.name, name, "%s", why)
	}
	var mode fs.FileMode
	switch hdr.Typeflag {
	case tar.TypeReg:
		mode = fs.FileMode(hdr.Mode & 0o7777)
	case tar.TypeDir:
		mode = fs.ModeDir | fs.FileMode(hdr.Mode&0o7777)
	case tar.TypeSymlink:
		mode = fs.ModeSymlink | fs.FileMode(hdr.Mode&0o7777)
	case tar.TypeLink:
		return entryErr(b.name, name, "is a hard link (to %q); bundles refuse hard links and hold regular files, directories and symlinks only", hdr.Linkname)
	case tar.TypeChar:
		return entryErr(b.name, name, "is a character device; bundles never hold device files")
	case tar.TypeBlock:
		return entryErr(b.name, name, "is a block device; bundles never hold device files")
	case tar.TypeFifo:
		return entryErr(b.name, name, "is a fifo; bundles hold regular files, directories and symlinks only")
	default:
		return entryErr(b.name, name, "has unsupported tar entry type %q; bundles hold regular files, directories and symlinks only", hdr.Typeflag)
	}
	if f == nil || name != f.Path {
		i, ok := b.pos[name]
		switch {
		case !ok:
			return entryErr(b.name, name, "is not in the index; the bundle was modified after it was made, rebuild it")
		case seen != nil && seen[i]:
			return entryErr(b.name, name, "appears twice in the archive; the bundle is corrupt, rebuild it")
		case f == nil:
			return entryErr(b.name, name, "appears after the last entry; the bundle is corrupt, rebuild it")
		}
		return entryErr(b.name, name, "is out of order (expected %q); the bundle is corrupt, rebuild it", f.Path)
	}
	switch {
	case mode != f.Mode:
		return entryErr(b.name, name, "the archive gives mode %v, the index %v; the bundle was modified after it was made, rebuild it", mode, f.Mode)
	case f.IsRegular() && hdr.Size != f.Size:
		return entryErr(b.name, name, "the archive gives %d bytes, the index %d; the bundle was modified after it was made, rebuild it", hdr.Size, f.Size)
	case f.IsSymlink() && hdr.Linkname != f.Link:
		return entryErr(b.name, name, "the archive's link target %q is not the index's %q; the bundle was modified after it was made, rebuild it", hdr.Linkname, f.Link)
	}
	return nil
}

// readContent hands the content of the regular file f, the current entry,
// to consume, then checks its length and SHA-256 against the index.
func (b *Bundle) readContent(a *archiveReader, f *File, consume func(io.Reader) error) error {
	hr := &hashingReader{r: a.tr, h: sha256.New()}
	if err := consume(hr); err != nil {
		if hr.err != nil {
			return a.readErr(hr.err, f.Path)
		}
		return err
	}
	if hr.n != f.Size {
		return entryErr(b.name, f.Path, "archive holds %d bytes, the index %d", hr.n, f.Size)
	}
	if sum := hex.EncodeToString(hr.h.Sum(nil)); sum != f.SHA256 {
		return entryErr(b.name, f.Path, "content does not match the index (sha256 %s, the index says %s); the bundle was modified after it was made, rebuild it", sum, f.SHA256)
	}
	return nil
}

// hashingReader hashes what it reads and keeps the reader's error apart,
// so a truncated archive is told from a failing sink.
type hashingReader struct {
	r   io.Reader
	h   hash.Hash
	n   int64
	err error
}

func (r *hashingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.h.Write(p[:n])
	r.n += int64(n)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

// contentReader checks ctx and reports progress as a sink reads.
type contentReader struct {
	ctx      context.Context
	r        io.Reader
	progress func(int64)
}

func (r *contentReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := r.r.Read(p)
	if n > 0 && r.progress != nil {
		r.progress(int64(n))
	}
	return n, err
}

// archiveReader is the decompressing, counting tar reader of one pass.
type archiveReader struct {
	name string
	br   *bufio.Reader
	zr   *gzip.Reader
	cr   *capReader
	tr   *tar.Reader
}

var errCapacity = errors.New("decompressed size beyond the bound")

// capReader fails once more than left bytes were read.
type capReader struct {
	r    io.Reader
	left int64
	max  int64
}

func (r *capReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, errCapacity
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.r.Read(p)
	r.left -= int64(n)
	return n, err
}

func (b *Bundle) newReader(capacity int64) (*archiveReader, error) {
	a := &archiveReader{name: b.name}
	a.br = bufio.NewReaderSize(io.NewSectionReader(b.f, 0, b.size), 256<<10)
	zr, err := gzip.NewReader(a.br)
	if err != nil {
		if err == io.EOF || errors.Is(err, gzip.ErrHeader) {
			return nil, invalidf(b.name, "not a gzip-compressed cortex bundle; build one with `cortex bundle`")
		}
		return nil, a.readErr(err, "")
	}
	zr.Multistream(false)
	a.zr = zr
	a.cr = &capReader{r: zr, left: capacity, max: capacity}
	a.tr = tar.NewReader(a.cr)
	return a, nil
}

// next returns the next tar header, io.EOF at the end of the archive, or
// an InvalidArgument error.
func (a *archiveReader) next() (*tar.Header, error) {
	hdr, err := a.tr.Next()
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		return nil, a.readErr(err, "")
	}
	return hdr, nil
}

// readIndex reads the first entry, the index JSON.
func (a *archiveReader) readIndex() ([]byte, error) {
	hdr, err := a.next()
	if err == io.EOF {
		return nil, invalidf(a.name, "empty archive, no %s; this is not a cortex bundle, build one with `cortex bundle`", IndexPath)
	}
	if err != nil {
		return nil, err
	}
	if hdr.Name != IndexPath || hdr.Typeflag != tar.TypeReg {
		return nil, invalidf(a.name, "missing index: the first entry is %q, not %s; this is not a cortex bundle, build one with `cortex bundle`", hdr.Name, IndexPath)
	}
	if hdr.Size > maxIndexSize {
		return nil, entryErr(a.name, IndexPath, "is %d bytes; the limit is %d", hdr.Size, maxIndexSize)
	}
	raw, err := io.ReadAll(a.tr)
	if err != nil {
		return nil, a.readErr(err, IndexPath)
	}
	return raw, nil
}

// checkEnd checks what follows the tar end-of-archive marker: at most some
// zero padding, then the end of the one gzip member and of the file.
func (a *archiveReader) checkEnd() error {
	buf := make([]byte, 32<<10)
	var n int64
	for {
		k, err := a.cr.Read(buf)
		for _, c := range buf[:k] {
			if c != 0 {
				return invalidf(a.name, "data after the end of the archive; the bundle is corrupt or was modified, rebuild it")
			}
		}
		n += int64(k)
		if n > 64<<10 {
			return invalidf(a.name, "more than 64 KiB of padding after the end of the archive; refusing a possible compression bomb")
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return a.readErr(err, "")
		}
	}
	if _, err := a.br.ReadByte(); err != io.EOF {
		return invalidf(a.name, "data after the compressed archive; the bundle is corrupt or was modified, rebuild it")
	}
	return nil
}

// readErr turns an error from reading the archive into an InvalidArgument
// error saying what is wrong with the file.
func (a *archiveReader) readErr(err error, entry string) error {
	where := ""
	if entry != "" {
		where = fmt.Sprintf("entry %q: ", entry)
	}
	switch {
	case errors.Is(err, errCapacity):
		return invalidf(a.name, "%sthe archive expands beyond what its index declares (%d bytes); refusing a possible compression bomb", where, a.cr.max)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalidf(a.name, "%sthe archive is truncated; copy the bundle again", where)
	}
	return invalidf(a.name, "%sthe archive is corrupt (%v); copy or build the bundle again", where, err)
}
