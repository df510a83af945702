// Package update keeps Cortex versions side by side under the root's
// usr/lib/cortex: each verified pair of binaries in versions/<id>/ (cortex
// and cortexd), the one in use named by the symlink current -> versions/<id>,
// and the history of updates and rollbacks in var/lib/cortex/ops/updates.json.
// It verifies a release directory against its SHA256SUMS (sha256sum's
// format) and unpacks a release tarball; it does not stop or start
// daemons (cortex-ops update does, internal/cli/update.go).
//
// It is linked by the CLI: no SQLite, no kernel probes.
package update

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// The files of a release.
const (
	CLIName    = "cortex"
	DaemonName = "cortexd"
	SumsName   = "SHA256SUMS"
)

// Binaries are the files a release must have.
var Binaries = []string{CLIName, DaemonName}

// Sums maps a file name to its SHA-256 (lower-case hex).
type Sums map[string]string

var sumLine = regexp.MustCompile(`^([0-9a-fA-F]{64}) [ *](.+)$`)

// ParseSums reads sha256sum's output format ("<hex>  name", or
// "<hex> *name" for binary mode). Problems name source:line.
func ParseSums(r io.Reader, source string) (Sums, error) {
	sums := Sums{}
	sc := bufio.NewScanner(r)
	n := 0
	var errs []error
	for sc.Scan() {
		n++
		l := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			continue
		}
		m := sumLine.FindStringSubmatch(l)
		if m == nil {
			errs = append(errs, fmt.Errorf("%s:%d: not a sha256sum line; want \"<64 hex digits>  <file>\"", source, n))
			continue
		}
		name := strings.TrimPrefix(m[2], "./")
		if _, dup := sums[name]; dup {
			errs = append(errs, fmt.Errorf("%s:%d: %s is listed twice", source, n, name))
			continue
		}
		sums[name] = strings.ToLower(m[1])
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(errs) > 0 {
		return nil, errdefs.Wrap(errdefs.InvalidArgument, errors.Join(errs...))
	}
	return sums, nil
}

// FileSHA256 hashes a file.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Verify checks that dir holds cortex, cortexd and SHA256SUMS, that the
// sums list both binaries, and that each binary matches its sum.
func Verify(dir string) (Sums, error) {
	sumsPath := filepath.Join(dir, SumsName)
	f, err := os.Open(sumsPath)
	if err != nil {
		return nil, errdefs.WithHint(errdefs.Wrap(errdefs.InvalidArgument, fmt.Errorf("release %s: %w", dir, err)),
			"a release directory holds cortex, cortexd and SHA256SUMS (made with: sha256sum cortex cortexd > SHA256SUMS)")
	}
	defer f.Close()
	sums, err := ParseSums(f, sumsPath)
	if err != nil {
		return nil, err
	}
	for _, b := range Binaries {
		want, ok := sums[b]
		if !ok {
			return nil, errdefs.New(errdefs.InvalidArgument, "%s: no sum for %s", sumsPath, b)
		}
		p := filepath.Join(dir, b)
		fi, err := os.Lstat(p)
		if err != nil {
			return nil, errdefs.Wrap(errdefs.InvalidArgument, fmt.Errorf("release: %w", err))
		}
		if !fi.Mode().IsRegular() {
			return nil, errdefs.New(errdefs.InvalidArgument, "release: %s is not a regular file", p)
		}
		got, err := FileSHA256(p)
		if err != nil {
			return nil, err
		}
		if got != want {
			return nil, errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "release: %s has SHA-256 %s, but %s says %s", p, got, sumsPath, want),
				"the file is damaged or not the one released; fetch it again")
		}
	}
	return sums, nil
}

// maxBinary caps a binary unpacked from a tarball.
const maxBinary = 1 << 30

// Unpack extracts cortex, cortexd and SHA256SUMS (at the top level or in
// one directory) from a .tar or .tar.gz into dst; everything else in the
// archive is ignored. Only regular files are taken.
func Unpack(tarball, dst string) error {
	f, err := os.Open(tarball)
	if err != nil {
		return errdefs.Wrap(errdefs.InvalidArgument, err)
	}
	defer f.Close()
	var r io.Reader = bufio.NewReader(f)
	br := r.(*bufio.Reader)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return errdefs.Wrap(errdefs.InvalidArgument, fmt.Errorf("%s: %w", tarball, err))
		}
		defer gz.Close()
		r = gz
	}
	tr := tar.NewReader(r)
	want := map[string]bool{CLIName: true, DaemonName: true, SumsName: true}
	got := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return errdefs.Wrap(errdefs.InvalidArgument, fmt.Errorf("%s: %w", tarball, err))
		}
		name := filepath.Base(h.Name)
		if !want[name] || h.Typeflag != tar.TypeReg || strings.Count(strings.Trim(filepath.ToSlash(filepath.Clean(h.Name)), "/"), "/") > 1 {
			continue
		}
		if got[name] {
			return errdefs.New(errdefs.InvalidArgument, "%s holds %s twice", tarball, name)
		}
		if h.Size > maxBinary {
			return errdefs.New(errdefs.InvalidArgument, "%s: %s is larger than 1 GiB", tarball, name)
		}
		out, err := os.OpenFile(filepath.Join(dst, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, io.LimitReader(tr, maxBinary)); err != nil {
			out.Close()
			return err
		}
		if err := out.Close(); err != nil {
			return err
		}
		got[name] = true
	}
	for n := range want {
		if !got[n] {
			return errdefs.New(errdefs.InvalidArgument, "%s has no %s", tarball, n)
		}
	}
	return nil
}

// Version is one installed pair of binaries.
type Version struct {
	ID string `json:"id"`
	// Version is what `cortexd --version` printed ("0.2.0").
	Version    string    `json:"version,omitempty"`
	CortexSHA  string    `json:"cortex_sha256"`
	CortexdSHA string    `json:"cortexd_sha256"`
	Installed  time.Time `json:"installed"`
}

// VersionID names a pair of binaries by their content.
func VersionID(cortexSHA, cortexdSHA string) string {
	h := sha256.Sum256([]byte(CLIName + " " + cortexSHA + "\n" + DaemonName + " " + cortexdSHA + "\n"))
	return hex.EncodeToString(h[:])[:12]
}

// Layout is where versions live under a root.
type Layout struct {
	// ShareDir is usr/lib/cortex.
	ShareDir string
}

func (l Layout) versions() string { return filepath.Join(l.ShareDir, "versions") }

// Dir is the directory of version id.
func (l Layout) Dir(id string) string { return filepath.Join(l.versions(), id) }

// Binary is the path of name (cortex or cortexd) of version id.
func (l Layout) Binary(id, name string) string { return filepath.Join(l.Dir(id), name) }

// CurrentLink is usr/lib/cortex/current.
func (l Layout) CurrentLink() string { return filepath.Join(l.ShareDir, "current") }

const metaName = "version.json"

// Install copies the binaries of a verified release directory into
// versions/<id> (through a temporary directory renamed into place) and
// returns the version; installing a version that is there already
// checks it and returns it.
func (l Layout) Install(srcDir string, sums Sums, version string) (Version, error) {
	return l.install(map[string]string{CLIName: filepath.Join(srcDir, CLIName), DaemonName: filepath.Join(srcDir, DaemonName)}, sums, version)
}

// Snapshot records binaries that are running now (not from a release) as
// a version, so that an update can come back to them.
func (l Layout) Snapshot(cliPath, daemonPath, version string) (Version, error) {
	sums := Sums{}
	for name, p := range map[string]string{CLIName: cliPath, DaemonName: daemonPath} {
		h, err := FileSHA256(p)
		if err != nil {
			return Version{}, err
		}
		sums[name] = h
	}
	return l.install(map[string]string{CLIName: cliPath, DaemonName: daemonPath}, sums, version)
}

func (l Layout) install(files map[string]string, sums Sums, version string) (Version, error) {
	v := Version{ID: VersionID(sums[CLIName], sums[DaemonName]), Version: version, CortexSHA: sums[CLIName], CortexdSHA: sums[DaemonName], Installed: time.Now().UTC()}
	if err := os.MkdirAll(l.versions(), 0o755); err != nil {
		return v, err
	}
	dir := l.Dir(v.ID)
	if old, err := l.Get(v.ID); err == nil {
		for name, want := range map[string]string{CLIName: v.CortexSHA, DaemonName: v.CortexdSHA} {
			if got, err := FileSHA256(l.Binary(v.ID, name)); err != nil || got != want {
				return v, errdefs.New(errdefs.FailedPrecondition, "%s is damaged (%s does not match); remove it and update again", dir, name)
			}
		}
		return old, nil
	}
	tmp, err := os.MkdirTemp(l.versions(), ".install-")
	if err != nil {
		return v, err
	}
	defer os.RemoveAll(tmp)
	for name, src := range files {
		if err := copyExec(src, filepath.Join(tmp, name)); err != nil {
			return v, fmt.Errorf("install %s: %w", name, err)
		}
		if got, err := FileSHA256(filepath.Join(tmp, name)); err != nil || got != sums[name] {
			return v, errdefs.New(errdefs.FailedPrecondition, "install %s: the copy does not match its sum (the source changed while it was copied?)", name)
		}
	}
	meta, _ := json.MarshalIndent(v, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, metaName), meta, 0o644); err != nil {
		return v, err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return v, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return v, err
	}
	return v, nil
}

func copyExec(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, 0o755)
}

// Get reads an installed version.
func (l Layout) Get(id string) (Version, error) {
	var v Version
	data, err := os.ReadFile(filepath.Join(l.Dir(id), metaName))
	if errors.Is(err, fs.ErrNotExist) {
		return v, errdefs.New(errdefs.NotFound, "version %s is not installed under %s", id, l.versions())
	}
	if err != nil {
		return v, err
	}
	return v, json.Unmarshal(data, &v)
}

// List returns the installed versions, oldest first.
func (l Layout) List() ([]Version, error) {
	ents, err := os.ReadDir(l.versions())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Version
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if v, err := l.Get(e.Name()); err == nil {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Installed.Before(out[j].Installed) })
	return out, nil
}

// Current is the id current points to ("" when there is no link).
func (l Layout) Current() (string, error) {
	t, err := os.Readlink(l.CurrentLink())
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return filepath.Base(t), nil
}

// SetCurrent points current at version id, atomically (a new link
// renamed over the old).
func (l Layout) SetCurrent(id string) error {
	if _, err := l.Get(id); err != nil {
		return err
	}
	tmp := l.CurrentLink() + ".new"
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Join("versions", id), tmp); err != nil {
		return err
	}
	return os.Rename(tmp, l.CurrentLink())
}

// Owning returns the installed version whose directory holds path (a
// running binary), or "".
func (l Layout) Owning(path string) string {
	rel, err := filepath.Rel(l.versions(), path)
	if err != nil || strings.HasPrefix(rel, "..") {
		return ""
	}
	id := strings.Split(rel, string(filepath.Separator))[0]
	if _, err := l.Get(id); err != nil {
		return ""
	}
	return id
}
