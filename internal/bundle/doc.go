// Package bundle owns the .cortex bundle format: packing a project directory
// into one reproducible archive (Create), and opening, verifying and
// unpacking such an archive safely (Open, Bundle.Verify, Bundle.Extract).
//
// Open takes a file path (the daemon saves an upload to disk first) and
// checks the index and cortex.yaml only, cheaply, so `cortex inspect` and
// the daemon can read the manifest and digest before deciding anything.
// Verify and Extract then stream the whole archive, checking every entry.
// Every refusal is an errdefs.InvalidArgument error that names the bundle,
// the entry and what is wrong, with the fix where there is one:
//
//	bundle my.cortex: entry "../../etc/cron.d/x": path escapes the bundle; bundles hold relative paths only
//
// # Format, version 1
//
// A bundle is a tar archive compressed with gzip (standard library, a single
// gzip member whose header has no name, a zero mtime and OS 255 "unknown").
// Its entries are, in this order:
//
//  1. ".cortex/index.json": the content index (see Index), canonical JSON;
//  2. "cortex.yaml": the project manifest, whatever the user's file was named;
//  3. every other file of the index, in index order.
//
// The index lists every entry of the bundle (cortex.yaml included, the index
// itself excluded) sorted by path, byte-wise, so a directory always comes
// before what it holds. Each entry is a directory (mode 0755), a regular file
// (0644, or 0755 when any execute bit was set) with its size and SHA-256, or
// a symlink (0777) with its target. Tar headers carry a fixed mtime
// (2000-01-01T00:00:00Z), uid and gid 0 and empty user and group names, so
// packing the same tree twice gives the same bytes whatever the mtimes,
// owners or directory read order (with the same cortex build: gzip output is
// pinned by the Go version); the Index.Digest, which is computed over the
// index alone (see Index.Digest), does not even depend on the compressor.
//
// # Layers
//
// A project's vendored dependencies (internal/deps installs them) travel
// as layers: directory trees under ".cortex/layers/<digest>/", where
// <digest> is the lowercase hex SHA-256 of the layer's canonical form
// (computed like Index.Digest over the layer's entries, with paths
// relative to the layer). ".cortex/deps.json" says which agent uses which
// layer; its format is internal/deps'. These are the only paths a bundle
// may hold under .cortex/. Open checks that every layer's name is the
// digest of what it holds and that its symlinks stay inside it, so a
// layer can be stored apart from its bundle, once per host
// (ExtractOptions.Layers), and no bundle can put content under another
// layer's name. A cortex from before layers refuses such bundles (the
// path is reserved).
//
// # Safety
//
// Opening a bundle must never write outside its target directory. Extract
// refuses absolute paths, ".." components, names that are not clean UTF-8,
// hard links, device and fifo entries, symlinks whose target leaves the tree
// (resolved through the other symlinks of the bundle), entries under a
// symlink, entries missing from the index or not in it, duplicates, content
// that does not match its SHA-256, an index whose digest does not match, and
// anything beyond the Limits (decompressed bytes are counted, so a gzip bomb
// stops at the limit). Parent directories are opened with
// openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) below a directory
// descriptor and files created with O_CREAT | O_EXCL | O_NOFOLLOW, so even a
// symlink that got past every check could not redirect a write. Extraction happens in a temporary directory beside the
// destination, renamed into place only once everything verified.
//
// This package must not know about the manifest's schema (it stores
// cortex.yaml as bytes; internal/manifest parses it), the daemon's host
// layout (callers pass the destination), or how bundles travel (the API
// saves an upload to a file and calls Open).
package bundle
