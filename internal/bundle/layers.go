package bundle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// Paths of the bundle's own content under .cortex/ (see the package
// comment): the vendored dependency layers and the file describing them.
const (
	// LayersDir holds one directory per layer, named by the layer's
	// digest (64 hex digits, see Layer.Digest).
	LayersDir = reservedDir + "/layers"
	// MetaPath is the file that says which agent uses which layer; its
	// format belongs to internal/deps (this package stores bytes).
	MetaPath = reservedDir + "/deps.json"
)

// Layer is a directory tree packed into a bundle under
// .cortex/layers/<digest>/: an agent's installed dependencies. A layer's
// digest depends only on its tree (paths, contents, executable bits,
// symlink targets), so the same packages installed twice give the same
// layer, and a host stores a layer once however many bundles hold it.
type Layer struct {
	// Dir is the directory the layer was scanned from.
	Dir string
	// Digest is the lowercase hex SHA-256 of the layer's canonical form
	// (the index digest's, over the layer's entries with paths relative
	// to the layer), without a "sha256:" prefix: it names the layer's
	// directory.
	Digest string
	// Files are the layer's entries, relative to Dir, sorted.
	Files []File

	infos map[string]fs.FileInfo
}

// Size is the sum of the sizes of the layer's regular files.
func (l *Layer) Size() int64 {
	var n int64
	for _, f := range l.Files {
		n += f.Size
	}
	return n
}

// layerSkip reports whether a scan leaves name out of a layer: Python
// bytecode, which interpreters write and which would make layers differ
// from one install to the next.
func layerSkip(name string, dir bool) bool {
	if dir {
		return name == "__pycache__"
	}
	return strings.HasSuffix(name, ".pyc")
}

// ScanLayer reads the tree at dir as a layer: every directory, regular
// file (hashed) and symlink, in sorted order, leaving out __pycache__
// directories and .pyc files. A symlink must be relative and stay inside
// the layer; sockets, devices and fifos are refused. Errors name the path.
func ScanLayer(ctx context.Context, dir string) (*Layer, error) {
	l := &Layer{Dir: dir, infos: map[string]fs.FileInfo{}}
	var walk func(host, rel string) error
	walk = func(host, rel string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		ents, err := os.ReadDir(host)
		if err != nil {
			return fmt.Errorf("layer %s: %w", dir, err)
		}
		for _, e := range ents {
			name := e.Name()
			p := name
			if rel != "" {
				p = rel + "/" + name
			}
			typ := e.Type()
			if layerSkip(name, typ.IsDir()) {
				continue
			}
			if why := checkPath(p); why != "" {
				return errdefs.New(errdefs.InvalidArgument, "layer %s: path %q: %s", dir, p, why)
			}
			full := filepath.Join(host, name)
			switch {
			case typ.IsDir():
				l.Files = append(l.Files, File{Path: p, Mode: modeDir})
				if err := walk(full, p); err != nil {
					return err
				}
			case typ&fs.ModeSymlink != 0:
				target, err := os.Readlink(full)
				if err != nil {
					return fmt.Errorf("layer %s: %w", dir, err)
				}
				l.Files = append(l.Files, File{Path: p, Mode: modeSymlink, Link: target})
			case typ.IsRegular():
				info, err := e.Info()
				if err != nil {
					return fmt.Errorf("layer %s: %w", dir, err)
				}
				mode := modeFile
				if info.Mode().Perm()&0o111 != 0 {
					mode = modeExec
				}
				l.infos[p] = info
				l.Files = append(l.Files, File{Path: p, Mode: mode, Size: info.Size()})
			default:
				return errdefs.New(errdefs.InvalidArgument, "layer %s: path %q is a %s; layers hold regular files, directories and symlinks only", dir, p, typeName(typ))
			}
		}
		return nil
	}
	if err := walk(dir, ""); err != nil {
		return nil, err
	}
	sort.Slice(l.Files, func(i, j int) bool { return l.Files[i].Path < l.Files[j].Path })
	byPath := make(map[string]*File, len(l.Files))
	for i := range l.Files {
		byPath[l.Files[i].Path] = &l.Files[i]
	}
	buf := make([]byte, 256<<10)
	for i := range l.Files {
		f := &l.Files[i]
		switch {
		case f.IsSymlink():
			if why := checkLink(byPath, f.Path, f.Link); why != "" {
				return nil, errdefs.New(errdefs.InvalidArgument, "layer %s: path %q: %s", dir, f.Path, strings.ReplaceAll(why, "bundle", "layer"))
			}
		case f.IsRegular():
			sum, err := hashFile(ctx, filepath.Join(dir, filepath.FromSlash(f.Path)), l.infos[f.Path], f.Size, buf)
			if err != nil {
				return nil, fmt.Errorf("layer %s: %s: %w", dir, f.Path, err)
			}
			f.SHA256 = sum
		}
	}
	l.Digest = strings.TrimPrefix(computeDigest(l.Files), "sha256:")
	return l, nil
}

func hashFile(ctx context.Context, path string, info fs.FileInfo, size int64, buf []byte) (string, error) {
	r, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer r.Close()
	st, err := r.Stat()
	if err != nil {
		return "", err
	}
	if !os.SameFile(st, info) || st.Size() != size {
		return "", fmt.Errorf("changed while it was read")
	}
	h := sha256.New()
	n, err := copyCtx(ctx, h, io.LimitReader(r, size), buf, nil)
	if err != nil {
		return "", err
	}
	if n != size {
		return "", fmt.Errorf("changed while it was read")
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// reservedPath reports whether p, a path under .cortex/, is one of the
// bundle's own entries: .cortex, the meta file, the layers directory, a
// layer directory (named by 64 lowercase hex digits) or anything in one.
func reservedPath(p string) bool {
	switch p {
	case reservedDir, MetaPath, LayersDir:
		return true
	}
	_, _, ok := layerOf(p)
	return ok
}

// layerOf splits a path under .cortex/layers/<digest> into the digest and
// the path inside the layer ("" for the layer directory itself).
func layerOf(p string) (digest, rel string, ok bool) {
	rest, found := strings.CutPrefix(p, LayersDir+"/")
	if !found {
		return "", "", false
	}
	digest, rel, _ = strings.Cut(rest, "/")
	if !isHexSHA256(digest) {
		return "", "", false
	}
	return digest, rel, true
}

// LayerDigests lists the digests of the layers a bundle holds, sorted.
func (x *Index) LayerDigests() []string {
	var out []string
	for _, f := range x.Files {
		if d, rel, ok := layerOf(f.Path); ok && rel == "" {
			out = append(out, d)
		}
	}
	return out
}

// validateLayers checks every layer directory of an index: it is a
// directory whose name is the digest of what it holds, and its symlinks
// stay inside it. The meta file must be a regular file.
func validateLayers(name string, x *Index) error {
	type layer struct {
		files  []File
		byPath map[string]*File
	}
	layers := map[string]*layer{}
	for _, f := range x.Files {
		switch f.Path {
		case reservedDir, LayersDir:
			if !f.IsDir() {
				return entryErr(name, f.Path, "must be a directory")
			}
			continue
		case MetaPath:
			if !f.IsRegular() {
				return entryErr(name, f.Path, "must be a regular file")
			}
			continue
		}
		d, rel, ok := layerOf(f.Path)
		if !ok {
			continue
		}
		if rel == "" {
			if !f.IsDir() {
				return entryErr(name, f.Path, "a layer must be a directory")
			}
			layers[d] = &layer{byPath: map[string]*File{}}
			continue
		}
		l := layers[d]
		if l == nil {
			continue // its parent is missing: validateIndex reports it
		}
		rf := f
		rf.Path = rel
		l.files = append(l.files, rf)
	}
	for d, l := range layers {
		for i := range l.files {
			l.byPath[l.files[i].Path] = &l.files[i]
		}
		for _, f := range l.files {
			if !f.IsSymlink() {
				continue
			}
			if why := checkLink(l.byPath, f.Path, f.Link); why != "" {
				return entryErr(name, LayersDir+"/"+d+"/"+f.Path, "%s", strings.ReplaceAll(why, "bundle", "layer"))
			}
		}
		if got := strings.TrimPrefix(computeDigest(l.files), "sha256:"); got != d {
			return entryErr(name, LayersDir+"/"+d, "layer content gives digest %s, not its name; the bundle was modified after it was made, rebuild it", got)
		}
	}
	return nil
}

// ExtractOptions tune ExtractWith.
type ExtractOptions struct {
	// Limits bound the bundle (zero fields: DefaultLimits).
	Limits Limits
	// Progress, when set, is called with the content bytes extracted so
	// far and the total.
	Progress func(done, total int64)
	// Layers, when set, is the host's layer store, an existing directory:
	// each layer of the bundle goes to Layers/<digest> instead of under
	// dest, built beside it and renamed into place once complete, and a
	// layer already there is not written again (its entries are still
	// read and verified). Layer directories get mode 0755 like dest.
	Layers string
}

// layeredSink sends a bundle's layers to the layer store and everything
// else to the project tree.
type layeredSink struct {
	name   string
	proj   *tree
	store  string
	layers map[string]*layerOut
	order  []string
}

// layerOut is one layer being extracted (tree nil: already stored).
type layerOut struct {
	tmp  string
	tree *tree
}

var _ sink = (*layeredSink)(nil)

// route says where p goes: the project (l nil, rel p), a layer, or
// nowhere (skip: the layers directory itself).
func (s *layeredSink) route(p string) (l *layerOut, rel string, skip bool, err error) {
	if p == LayersDir {
		return nil, "", true, nil
	}
	d, rel, ok := layerOf(p)
	if !ok {
		return nil, p, false, nil
	}
	if rel == "" {
		if _, dup := s.layers[d]; dup {
			return nil, "", false, entryErr(s.name, p, "listed twice")
		}
		out := &layerOut{}
		s.layers[d] = out
		s.order = append(s.order, d)
		if _, err := os.Lstat(filepath.Join(s.store, d)); err == nil {
			return nil, "", true, nil // stored already
		}
		tmp, err := os.MkdirTemp(s.store, "."+d+".extract-")
		if err != nil {
			return nil, "", false, fmt.Errorf("bundle %s: extract layer %s: %w", s.name, d, err)
		}
		out.tmp = tmp
		if out.tree, err = openTree(s.name, tmp); err != nil {
			return nil, "", false, err
		}
		return nil, "", true, nil
	}
	out := s.layers[d]
	if out == nil {
		return nil, "", false, entryErr(s.name, p, "comes before its layer directory")
	}
	if out.tree == nil {
		return out, rel, true, nil
	}
	return out, rel, false, nil
}

func (s *layeredSink) mkdir(p string) error {
	l, rel, skip, err := s.route(p)
	switch {
	case err != nil || skip:
		return err
	case l != nil:
		return l.tree.mkdir(rel)
	}
	return s.proj.mkdir(rel)
}

func (s *layeredSink) symlink(p, target string) error {
	l, rel, skip, err := s.route(p)
	switch {
	case err != nil || skip:
		return err
	case l != nil:
		return l.tree.symlink(rel, target)
	}
	return s.proj.symlink(rel, target)
}

func (s *layeredSink) file(p string, mode fs.FileMode, r io.Reader) error {
	l, rel, skip, err := s.route(p)
	switch {
	case err != nil:
		return err
	case skip:
		_, err := io.Copy(io.Discard, r)
		return err
	case l != nil:
		return l.tree.file(rel, mode, r)
	}
	return s.proj.file(rel, mode, r)
}

// finish completes every new layer and renames it into the store. A
// layer someone else stored meanwhile is kept, ours removed.
func (s *layeredSink) finish() error {
	for _, d := range s.order {
		l := s.layers[d]
		if l.tree == nil {
			continue
		}
		err := l.tree.finish()
		l.tree.close()
		l.tree = nil
		if err == nil {
			err = renameDir(l.tmp, filepath.Join(s.store, d))
			if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
				err = os.RemoveAll(l.tmp)
			}
		}
		if err != nil {
			return fmt.Errorf("bundle %s: store layer %s: %w", s.name, d, err)
		}
		l.tmp = ""
	}
	return nil
}

// abort removes the layers not renamed into place.
func (s *layeredSink) abort() {
	for _, l := range s.layers {
		if l.tree != nil {
			l.tree.close()
		}
		if l.tmp != "" {
			os.RemoveAll(l.tmp)
		}
	}
}

// errFound stops a stream once ReadFile has what it came for.
var errFound = errors.New("found")

// captureSink keeps the content of one regular file.
type captureSink struct {
	discard
	path string
	max  int64
	data []byte
}

func (s *captureSink) file(p string, mode fs.FileMode, r io.Reader) error {
	if p != s.path {
		_, err := io.Copy(io.Discard, r)
		return err
	}
	b, err := io.ReadAll(io.LimitReader(r, s.max+1))
	if err != nil {
		return err
	}
	if int64(len(b)) > s.max {
		return errdefs.New(errdefs.InvalidArgument, "entry %q is larger than %d bytes", p, s.max)
	}
	// The rest of the entry is verified before the stream goes on.
	s.data = b
	return nil
}

// ReadFile returns the content of the regular file at path, verified
// against the index, reading the archive only up to it. A file not in the
// bundle is errdefs.NotFound; one larger than max is refused.
func (b *Bundle) ReadFile(ctx context.Context, path string, max int64) ([]byte, error) {
	f, ok := b.idx.Lookup(path)
	if !ok || !f.IsRegular() {
		return nil, errdefs.New(errdefs.NotFound, "bundle %s: no file %q", b.name, path)
	}
	if path == ManifestName {
		return b.Manifest(), nil
	}
	s := &captureSink{path: path, max: max}
	err := b.stream(ctx, DefaultLimits(), nil, &stopAfter{captureSink: s})
	if err != nil && !errors.Is(err, errFound) {
		return nil, err
	}
	return s.data, nil
}

// stopAfter ends the stream at the entry after the captured one (so the
// captured file's hash was checked).
type stopAfter struct{ *captureSink }

func (s *stopAfter) next() error {
	if s.data != nil {
		return errFound
	}
	return nil
}

func (s *stopAfter) mkdir(p string) error { return s.next() }

func (s *stopAfter) symlink(p, t string) error { return s.next() }

func (s *stopAfter) file(p string, mode fs.FileMode, r io.Reader) error {
	if err := s.next(); err != nil {
		return err
	}
	return s.captureSink.file(p, mode, r)
}
