package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// FormatVersion is the only bundle format version this build reads and writes.
const FormatVersion = 1

const (
	// IndexPath is the archive entry holding the index; always the first.
	IndexPath = ".cortex/index.json"
	// ManifestName is where the manifest lives in a bundle; always the
	// second entry.
	ManifestName = "cortex.yaml"

	// reservedDir is the bundle's own metadata namespace; no project path
	// may live under it.
	reservedDir = ".cortex"

	// maxIndexSize bounds the index JSON Open reads into memory. 100,000
	// entries take about 15 MiB.
	maxIndexSize = 64 << 20
	// maxManifestSize bounds cortex.yaml.
	maxManifestSize = 4 << 20
	// maxPathLen and maxNameLen are Linux's PATH_MAX and NAME_MAX.
	maxPathLen = 4096
	maxNameLen = 255
	// maxLinkSteps bounds the path components walked when resolving one
	// symlink through the others (ELOOP-like).
	maxLinkSteps = 1024
)

// modTime is the mtime of every tar entry.
var modTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// The only modes a bundle entry can have.
const (
	modeFile    fs.FileMode = 0o644
	modeExec    fs.FileMode = 0o755
	modeDir                 = fs.ModeDir | 0o755
	modeSymlink             = fs.ModeSymlink | 0o777
)

// Index is a bundle's content index: every entry, sorted by path. It is the
// first entry of the archive (IndexPath), as canonical JSON.
type Index struct {
	// Version is the format version, FormatVersion.
	Version int
	// Digest is "sha256:<hex>" over the canonical form of the index: the
	// line "cortex-bundle-index/1\n" followed, for each file in order, by
	// path, mode ("file:0644", "file:0755", "dir:0755", "symlink:0777"),
	// decimal size, hex SHA-256 and link target, each terminated by a NUL
	// byte (which no path or target may contain). Two bundles with the same
	// digest hold the same tree.
	Digest string
	// Files lists every entry, cortex.yaml included, sorted by path.
	Files []File
}

// File is one entry of a bundle.
type File struct {
	// Path is slash-separated, relative, clean, valid UTF-8.
	Path string
	// Mode is 0644 or 0755 for a regular file, fs.ModeDir|0755 for a
	// directory, fs.ModeSymlink|0777 for a symlink.
	Mode fs.FileMode
	// Size is the length of a regular file; 0 otherwise.
	Size int64
	// SHA256 is the lowercase hex SHA-256 of a regular file; "" otherwise.
	SHA256 string
	// Link is a symlink's target, relative and inside the bundle; ""
	// otherwise.
	Link string
}

// IsDir reports whether f is a directory.
func (f File) IsDir() bool { return f.Mode.IsDir() }

// IsSymlink reports whether f is a symlink.
func (f File) IsSymlink() bool { return f.Mode&fs.ModeSymlink != 0 }

// IsRegular reports whether f is a regular file.
func (f File) IsRegular() bool { return f.Mode.IsRegular() }

// Limits bound what Extract and Verify accept. A zero field takes its value
// from DefaultLimits.
type Limits struct {
	// MaxEntries bounds the number of entries (files, dirs, symlinks).
	MaxEntries int
	// MaxFileSize bounds one regular file, in bytes.
	MaxFileSize int64
	// MaxTotalSize bounds the sum of all regular files, in bytes.
	MaxTotalSize int64
}

// DefaultLimits returns the limits the daemon applies: 100,000 entries
// (a large node_modules holds a few tens of thousands), 1 GiB per file
// (a vendored model or wheel may be big; more belongs in a volume, not the
// code bundle) and 4 GiB in all (what /var/lib/cortex can hold a few of).
func DefaultLimits() Limits {
	return Limits{MaxEntries: 100_000, MaxFileSize: 1 << 30, MaxTotalSize: 4 << 30}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxEntries <= 0 {
		l.MaxEntries = d.MaxEntries
	}
	if l.MaxFileSize <= 0 {
		l.MaxFileSize = d.MaxFileSize
	}
	if l.MaxTotalSize <= 0 {
		l.MaxTotalSize = d.MaxTotalSize
	}
	return l
}

// Clone returns a deep copy of x.
func (x *Index) Clone() *Index {
	c := *x
	c.Files = append([]File(nil), x.Files...)
	return &c
}

// Lookup returns the entry at path.
func (x *Index) Lookup(path string) (File, bool) {
	lo, hi := 0, len(x.Files)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if x.Files[m].Path < path {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(x.Files) && x.Files[lo].Path == path {
		return x.Files[lo], true
	}
	return File{}, false
}

// TotalSize is the sum of the sizes of the regular files.
func (x *Index) TotalSize() int64 {
	var n int64
	for _, f := range x.Files {
		n += f.Size
	}
	return n
}

// modeString is a mode's form in the index JSON and the digest.
func modeString(m fs.FileMode) (typ, perm string) {
	switch {
	case m.IsDir():
		typ = "dir"
	case m&fs.ModeSymlink != 0:
		typ = "symlink"
	case m.IsRegular():
		typ = "file"
	default:
		typ = "unknown"
	}
	return typ, fmt.Sprintf("%04o", uint32(m.Perm()))
}

func parseMode(typ, perm string) (fs.FileMode, bool) {
	switch {
	case typ == "file" && perm == "0644":
		return modeFile, true
	case typ == "file" && perm == "0755":
		return modeExec, true
	case typ == "dir" && perm == "0755":
		return modeDir, true
	case typ == "symlink" && perm == "0777":
		return modeSymlink, true
	}
	return 0, false
}

// computeDigest returns the index digest of files (see Index.Digest).
func computeDigest(files []File) string {
	h := sha256.New()
	h.Write([]byte("cortex-bundle-index/1\n"))
	var buf []byte
	for _, f := range files {
		typ, perm := modeString(f.Mode)
		buf = buf[:0]
		buf = append(buf, f.Path...)
		buf = append(buf, 0)
		buf = append(buf, typ...)
		buf = append(buf, ':')
		buf = append(buf, perm...)
		buf = append(buf, 0)
		buf = strconv.AppendInt(buf, f.Size, 10)
		buf = append(buf, 0)
		buf = append(buf, f.SHA256...)
		buf = append(buf, 0)
		buf = append(buf, f.Link...)
		buf = append(buf, 0)
		h.Write(buf)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

type wireIndex struct {
	Version int        `json:"version"`
	Digest  string     `json:"digest"`
	Files   []wireFile `json:"files"`
}

type wireFile struct {
	Path   string `json:"path"`
	Type   string `json:"type"`
	Mode   string `json:"mode"`
	Size   int64  `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	Link   string `json:"link,omitempty"`
}

// marshalIndex returns the canonical JSON of x: what Create writes and the
// only form Open accepts.
func marshalIndex(x *Index) ([]byte, error) {
	w := wireIndex{Version: x.Version, Digest: x.Digest, Files: make([]wireFile, len(x.Files))}
	for i, f := range x.Files {
		typ, perm := modeString(f.Mode)
		w.Files[i] = wireFile{Path: f.Path, Type: typ, Mode: perm, Size: f.Size, SHA256: f.SHA256, Link: f.Link}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(w); err != nil {
		return nil, fmt.Errorf("encode index: %w", err)
	}
	return buf.Bytes(), nil
}

// unmarshalIndex decodes and fully validates index JSON. name is the bundle
// named in errors.
func unmarshalIndex(name string, raw []byte) (*Index, error) {
	var w wireIndex
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return nil, invalidf(name, "%s is not valid index JSON: %v; the bundle is corrupt, rebuild it with `cortex bundle`", IndexPath, err)
	}
	if dec.More() {
		return nil, invalidf(name, "%s has data after the index; the bundle is corrupt, rebuild it with `cortex bundle`", IndexPath)
	}
	if w.Version != FormatVersion {
		return nil, invalidf(name, "bundle format version %d is not supported (this cortex reads version %d); rebuild the bundle with this cortex or upgrade cortex", w.Version, FormatVersion)
	}
	x := &Index{Version: w.Version, Digest: w.Digest, Files: make([]File, len(w.Files))}
	for i, wf := range w.Files {
		mode, ok := parseMode(wf.Type, wf.Mode)
		if !ok {
			return nil, entryErr(name, wf.Path, "index gives type %q mode %q; bundles hold files (0644, 0755), dirs (0755) and symlinks (0777) only", wf.Type, wf.Mode)
		}
		x.Files[i] = File{Path: wf.Path, Mode: mode, Size: wf.Size, SHA256: wf.SHA256, Link: wf.Link}
	}
	if err := validateIndex(name, x); err != nil {
		return nil, err
	}
	canon, err := marshalIndex(x)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(canon, raw) {
		return nil, invalidf(name, "%s is not in canonical form; the bundle was not made by `cortex bundle` or was edited, rebuild it", IndexPath)
	}
	if got := computeDigest(x.Files); got != x.Digest {
		return nil, invalidf(name, "index digest mismatch: the index says %s but its content gives %s; the index was modified after the bundle was made, rebuild it", x.Digest, got)
	}
	return x, nil
}

// validateIndex checks everything about an index that does not need the
// archive: paths, order, modes, sizes, hashes, parents, symlink targets and
// the presence of cortex.yaml.
func validateIndex(name string, x *Index) error {
	if !strings.HasPrefix(x.Digest, "sha256:") || !isHexSHA256(x.Digest[len("sha256:"):]) {
		return invalidf(name, "index digest %q is not sha256:<64 hex digits>; the bundle is corrupt, rebuild it", x.Digest)
	}
	byPath := make(map[string]*File, len(x.Files))
	for i := range x.Files {
		f := &x.Files[i]
		if why := checkPath(f.Path); why != "" {
			return entryErr(name, f.Path, "%s", why)
		}
		if _, dup := byPath[f.Path]; dup {
			return entryErr(name, f.Path, "listed twice in the index; the bundle is corrupt, rebuild it")
		}
		if i > 0 && x.Files[i-1].Path > f.Path {
			return entryErr(name, f.Path, "index is not sorted (comes after %q); the bundle is corrupt, rebuild it", x.Files[i-1].Path)
		}
		byPath[f.Path] = f
		switch {
		case f.IsRegular():
			if f.Size < 0 {
				return entryErr(name, f.Path, "negative size %d in the index", f.Size)
			}
			if !isHexSHA256(f.SHA256) {
				return entryErr(name, f.Path, "index sha256 %q is not 64 lowercase hex digits", f.SHA256)
			}
			if f.Link != "" {
				return entryErr(name, f.Path, "a regular file with a link target in the index")
			}
		case f.IsDir(), f.IsSymlink():
			if f.Size != 0 || f.SHA256 != "" {
				return entryErr(name, f.Path, "a directory or symlink with a size or sha256 in the index")
			}
			if f.IsDir() && f.Link != "" {
				return entryErr(name, f.Path, "a directory with a link target in the index")
			}
		default:
			return entryErr(name, f.Path, "unsupported mode %v in the index", f.Mode)
		}
	}
	// Symlinks before parents, so a link out is reported as such rather
	// than as the parent of what was to be written through it.
	for i := range x.Files {
		f := &x.Files[i]
		if !f.IsSymlink() {
			continue
		}
		if why := checkLink(byPath, f.Path, f.Link); why != "" {
			return entryErr(name, f.Path, "%s", why)
		}
	}
	for i := range x.Files {
		f := &x.Files[i]
		dir, _ := splitPath(f.Path)
		if dir == "" {
			continue
		}
		p, ok := byPath[dir]
		switch {
		case !ok:
			return entryErr(name, f.Path, "its directory %q is not in the index; the bundle is corrupt, rebuild it", dir)
		case p.IsSymlink():
			return entryErr(name, f.Path, "its parent %q is a symlink; bundles never hold entries below a symlink", dir)
		case !p.IsDir():
			return entryErr(name, f.Path, "its parent %q is not a directory", dir)
		}
	}
	if err := validateLayers(name, x); err != nil {
		return err
	}
	m, ok := byPath[ManifestName]
	if !ok {
		return invalidf(name, "no %s in the bundle; every bundle holds its manifest, rebuild it with `cortex bundle`", ManifestName)
	}
	if !m.IsRegular() {
		return entryErr(name, ManifestName, "not a regular file")
	}
	if m.Size > maxManifestSize {
		return entryErr(name, ManifestName, "is %d bytes; the limit is %d", m.Size, maxManifestSize)
	}
	return nil
}

// checkPath returns why p is not an acceptable entry path, or "".
func checkPath(p string) string {
	switch {
	case p == "":
		return "empty path; the bundle is corrupt"
	case !utf8.ValidString(p):
		return "name is not valid UTF-8; rename the file or add it to .cortexignore"
	case strings.IndexByte(p, 0) >= 0:
		return "name contains a NUL byte; the bundle is corrupt"
	case p[0] == '/':
		return "path is absolute; bundles hold relative paths only"
	case len(p) > maxPathLen:
		return fmt.Sprintf("path is %d bytes long; the limit is %d", len(p), maxPathLen)
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return "name contains a control character; rename the file or add it to .cortexignore"
		}
	}
	for c := range strings.SplitSeq(p, "/") {
		switch {
		case c == "..":
			return "path escapes the bundle; bundles hold relative paths only"
		case c == "" || c == ".":
			return "path is not clean (empty or \".\" component); bundles hold clean relative paths only"
		case len(c) > maxNameLen:
			return fmt.Sprintf("a name is %d bytes long; the limit is %d", len(c), maxNameLen)
		}
	}
	if (p == reservedDir || strings.HasPrefix(p, reservedDir+"/")) && !reservedPath(p) {
		return "path is under .cortex/, which is reserved for the bundle's own metadata"
	}
	return ""
}

// checkLink returns why the symlink at linkPath with target may not be in a
// bundle, or "". The target is resolved component by component from the
// link's directory, following the other symlinks of the bundle as the
// kernel would, and must never step above the bundle's root.
func checkLink(byPath map[string]*File, linkPath, target string) string {
	switch {
	case target == "":
		return "symlink with an empty target"
	case !utf8.ValidString(target):
		return "symlink target is not valid UTF-8"
	case strings.IndexByte(target, 0) >= 0:
		return "symlink target contains a NUL byte"
	case len(target) > maxPathLen:
		return fmt.Sprintf("symlink target is %d bytes long; the limit is %d", len(target), maxPathLen)
	case target[0] == '/':
		return fmt.Sprintf("symlink points to the absolute path %q; bundles keep only relative symlinks that stay inside the bundle", target)
	}
	cur, _ := splitPath(linkPath)
	queue := strings.Split(target, "/")
	steps := 0
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		if steps++; steps > maxLinkSteps {
			return fmt.Sprintf("symlink target %q takes too many steps to resolve (a loop?)", target)
		}
		switch c {
		case "", ".":
			continue
		case "..":
			if cur == "" {
				return fmt.Sprintf("symlink target %q leaves the bundle; bundles keep only symlinks that stay inside the bundle", target)
			}
			cur, _ = splitPath(cur)
			continue
		}
		next := c
		if cur != "" {
			next = cur + "/" + c
		}
		if f, ok := byPath[next]; ok && f.IsSymlink() {
			if f.Link == "" || f.Link[0] == '/' {
				return fmt.Sprintf("symlink target %q resolves through %q, which points outside the bundle", target, next)
			}
			queue = append(strings.Split(f.Link, "/"), queue...)
			continue
		}
		cur = next
	}
	return ""
}

// splitPath splits a slash path into its directory ("" at the root) and
// final name.
func splitPath(p string) (dir, base string) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", p
	}
	return p[:i], p[i+1:]
}

func isHexSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// invalidf returns an InvalidArgument error about bundle name.
func invalidf(name, format string, args ...any) error {
	return errdefs.New(errdefs.InvalidArgument, "bundle %s: %s", name, fmt.Sprintf(format, args...))
}

// entryErr returns an InvalidArgument error about one entry of bundle name.
func entryErr(name, entry, format string, args ...any) error {
	return errdefs.New(errdefs.InvalidArgument, "bundle %s: entry %q: %s", name, entry, fmt.Sprintf(format, args...))
}
