package manifest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

const pathFix = "write a path relative to the project directory, e.g. ./data"

// checkRelPath checks a filesystem.read/write entry lexically and returns
// it cleaned ("./data/" gives "data", "." the project directory itself).
// The error text is "what is wrong; how to fix".
func checkRelPath(s string) (string, error) {
	switch {
	case s == "":
		return "", errors.New("empty path; remove the entry or write a path like ./data")
	case strings.ContainsRune(s, 0):
		return "", fmt.Errorf("%q contains a NUL byte; %s", s, pathFix)
	case strings.HasPrefix(s, "/"):
		return "", fmt.Errorf("%q is an absolute path; %s", s, pathFix)
	case s == "~" || strings.HasPrefix(s, "~/"):
		return "", fmt.Errorf("%q names a home directory, which agents never see; %s", s, pathFix)
	}
	clean := path.Clean(s)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("%q leaves the project directory; %s", s, pathFix)
	}
	return clean, nil
}

// maxLinks bounds symlink hops, as the kernel's ELOOP does.
const maxLinks = 40

// resolveInside follows rel (clean, relative) from root through the
// symlinks that exist, as the kernel would, and reports an error when the
// place it ends up is outside root. Components that do not exist yet end the
// walk: the rest is taken lexically. The error text is "what; fix".
func resolveInside(root, rel string) error {
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return fmt.Errorf("cannot resolve the project directory: %v; check that it exists", err)
	}
	realRoot, err = filepath.Abs(realRoot)
	if err != nil {
		return fmt.Errorf("cannot resolve the project directory: %v; check that it exists", err)
	}
	cur := realRoot
	comps := splitPath(rel)
	hops := 0
	via := "" // the first symlink followed, relative to the project
	walked := []string{}
	for len(comps) > 0 {
		c := comps[0]
		comps = comps[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, c)
		walked = append(walked, c)
		fi, err := os.Lstat(next)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			cur = filepath.Join(append([]string{next}, comps...)...)
			comps = nil
			break
		}
		if err != nil {
			return fmt.Errorf("cannot check %q: %v; make it readable by the daemon", rel, err)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		hops++
		if hops > maxLinks {
			return fmt.Errorf("%q has too many levels of symbolic links; %s", rel, pathFix)
		}
		target, err := os.Readlink(next)
		if err != nil {
			return fmt.Errorf("cannot check %q: %v; make it readable by the daemon", rel, err)
		}
		if via == "" {
			via = strings.Join(walked, "/")
		}
		if filepath.IsAbs(target) {
			cur = "/"
		}
		comps = append(splitPath(target), comps...)
	}
	if !within(realRoot, cur) {
		return fmt.Errorf("%q leads outside the project directory through the symlink %s; point it at a directory inside the project, or remove the link", rel, via)
	}
	return nil
}

func splitPath(p string) []string {
	return strings.Split(filepath.ToSlash(p), "/")
}

func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../") && !filepath.IsAbs(rel)
}
