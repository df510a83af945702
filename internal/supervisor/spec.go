package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/logkey"
	"github.com/cortexrt/cortex/internal/manifest"
	"github.com/cortexrt/cortex/internal/runtimes"
	"github.com/cortexrt/cortex/internal/sandbox"
	"github.com/cortexrt/cortex/internal/store"
)

// Where things live inside a confined sandbox.
const (
	AppDir       = "/app"
	SandboxShare = "/opt/cortex"
	SandboxUser  = "agent"
	// PythonPackages is where a Python agent's packages are (on
	// PYTHONPATH, after the SDK); a Node agent's are /node_modules, which
	// Node's resolution reaches from any file under /app, for require and
	// import alike.
	PythonPackages = SandboxShare + "/packages"
	NodePackages   = "/node_modules"
)

// systemBinds are the host paths every confined sandbox sees read-only:
// what an interpreter needs and nothing more. Symlinks (merged /usr) are
// recreated as symlinks.
var systemBinds = []string{
	"/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32",
	"/etc/ssl", "/etc/ca-certificates", "/etc/ld.so.cache", "/etc/localtime",
	"/etc/alternatives", "/etc/mime.types", "/etc/protocols", "/etc/services",
}

// SpecInput is everything BuildSpec needs to know about one run.
type SpecInput struct {
	Project store.Project
	Agent   manifest.ResolvedAgent
	Run     int
	UID     int
	// RunDir is the agent's runtime directory (exit file, mount point).
	RunDir string
}

// buildSpec turns an agent into a sandbox spec for run.
func (s *Supervisor) buildSpec(a *agent, run int) (sandbox.Spec, error) {
	return s.specFor(a, run)
}

// BuildSpec is the sandbox spec of one run of an agent under opts: what
// the daemon starts (exported for benchmarks and tests that start
// sandboxes without a daemon). The spec may hold open files (the grants'
// detached mounts): call its CloseFiles once sandbox.Start has returned.
func BuildSpec(opts Options, in SpecInput) (sandbox.Spec, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Supervisor{opts: opts, log: log}
	a := &agent{s: s, project: in.Project.Name, name: in.Agent.Name, spec: in.Agent, proj: in.Project, uid: in.UID, runDir: in.RunDir}
	return s.specFor(a, in.Run)
}

func (s *Supervisor) specFor(a *agent, run int) (spec sandbox.Spec, err error) {
	ra := a.spec
	ip, err := s.opts.Runtimes.Lookup(ra.Runtime)
	if err != nil {
		return sandbox.Spec{}, err
	}
	// The project's directory must be the one it was created from, before
	// anything under it is used (even by an agent that has no grants).
	var source *sandbox.Dir
	if a.proj.SourceDir != "" {
		if source, err = s.verifySource(a); err != nil {
			return sandbox.Spec{}, err
		}
		defer source.Close()
	}
	hostShims := filepath.Join(s.opts.ShareDir, runtimes.ShimDir)
	hostSDK := filepath.Join(s.opts.ShareDir, "sdk")
	spec = sandbox.Spec{
		ID:       a.project + "/" + a.name,
		Hostname: a.name,
		ExitFile: filepath.Join(a.runDir, "exit.json"),
		NoFile:   4096,
	}
	env := []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"LANG=C.UTF-8",
		"PYTHONUNBUFFERED=1",
		"PYTHONDONTWRITEBYTECODE=1",
		"CORTEX_PROJECT=" + a.project,
		"CORTEX_AGENT=" + a.name,
		"CORTEX_RUN=" + strconv.Itoa(run),
	}
	hostLayer := ""
	if pk := ra.Packages; pk != nil {
		if hostLayer, err = s.layerDir(pk); err != nil {
			return sandbox.Spec{}, err
		}
	}
	if !s.opts.Sandbox.Confine {
		// Degraded: the host's filesystem, the agent as root.
		spec.Argv = runtimes.Argv(ip, hostShims, ra.Entrypoint)
		spec.Dir = a.proj.BundleDir
		pyPath, nodePath := filepath.Join(hostSDK, "python"), filepath.Join(hostSDK, "node")
		if hostLayer != "" && ra.Packages.Kind == manifest.DepsNode {
			nodePath += ":" + hostLayer
		} else if hostLayer != "" {
			pyPath += ":" + hostLayer
		}
		env = append(env, "HOME=/tmp", "PYTHONPATH="+pyPath, "NODE_PATH="+nodePath)
		spec.Env = append(env, userEnv(ra)...)
		return spec, nil
	}

	spec.UID, spec.GID = a.uid, a.uid
	spec.Dir = AppDir
	spec.Argv = runtimes.Argv(ip, SandboxShare+"/shims", ra.Entrypoint)
	pyPath := SandboxShare + "/sdk/python"
	if hostLayer != "" && ra.Packages.Kind == manifest.DepsPython {
		pyPath += ":" + PythonPackages
	}
	env = append(env, "HOME=/tmp", "USER="+SandboxUser, "TMPDIR=/tmp",
		"PYTHONPATH="+pyPath,
		"NODE_PATH="+SandboxShare+"/sdk/node")
	spec.Env = append(env, userEnv(ra)...)

	rootDir := filepath.Join(a.runDir, "root")
	if err := os.MkdirAll(rootDir, 0o700); err != nil {
		return spec, err
	}
	rfs := &sandbox.Rootfs{Dir: rootDir, TmpSize: s.opts.Sandbox.TmpSize}
	spec.Rootfs = rfs
	defer func() {
		if err != nil {
			spec.CloseFiles()
		}
	}()
	for _, p := range systemBinds {
		rfs.Binds = append(rfs.Binds, sandbox.Bind{Source: p, Target: p, Optional: true})
	}
	if !strings.HasPrefix(ip.Path, "/usr/") {
		rfs.Binds = append(rfs.Binds, sandbox.Bind{Source: ip.Prefix, Target: ip.Prefix})
	}
	rfs.Binds = append(rfs.Binds,
		sandbox.Bind{Source: hostShims, Target: SandboxShare + "/shims"},
		sandbox.Bind{Source: hostSDK, Target: SandboxShare + "/sdk", Optional: true},
		sandbox.Bind{Source: a.proj.BundleDir, Target: AppDir},
	)
	if hostLayer != "" {
		target := PythonPackages
		if ra.Packages.Kind == manifest.DepsNode {
			target = NodePackages
		}
		rfs.Binds = append(rfs.Binds, sandbox.Bind{Source: hostLayer, Target: target})
	}
	// Grants nest under the read-only /app: their mount points must exist
	// in the bundle directory (which the daemon owns) before /app goes in.
	for _, p := range append(append([]string(nil), ra.Capabilities.FilesystemRead...), ra.Capabilities.FilesystemWrite...) {
		if err := mountPoint(a.proj.BundleDir, p); err != nil {
			return spec, err
		}
	}
	g := grants{s: s, a: a, source: source}
	defer g.close()
	for _, p := range ra.Capabilities.FilesystemRead {
		b, err := g.read(p)
		if err != nil {
			return spec, err
		}
		rfs.Binds = append(rfs.Binds, b)
	}
	for _, p := range ra.Capabilities.FilesystemWrite {
		b, err := g.write(p)
		if err != nil {
			return spec, err
		}
		rfs.Binds = append(rfs.Binds, b)
	}
	rfs.Files = []sandbox.File{
		{Path: "/etc/passwd", Data: []byte(fmt.Sprintf("root:x:0:0:root:/root:/usr/sbin/nologin\n%s:x:%d:%d:cortex agent:/tmp:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n", SandboxUser, a.uid, a.uid))},
		{Path: "/etc/group", Data: []byte(fmt.Sprintf("root:x:0:\n%s:x:%d:\nnogroup:x:65534:\n", SandboxUser, a.uid))},
		{Path: "/etc/hostname", Data: []byte(a.name + "\n")},
		{Path: "/etc/hosts", Data: []byte("127.0.0.1\tlocalhost " + a.name + "\n::1\tlocalhost ip6-localhost ip6-loopback\n")},
		{Path: "/etc/nsswitch.conf", Data: []byte("passwd: files\ngroup: files\nhosts: files dns\n")},
		// No network.access: no resolver. The egress wiring replaces it.
		{Path: "/etc/resolv.conf", Data: []byte("# no DNS: this agent has no network.access\n")},
	}
	spec.Confine = &sandbox.Confine{Seccomp: s.opts.Sandbox.Seccomp, SeccompPrograms: s.opts.Sandbox.SeccompPrograms, Landlock: s.opts.Sandbox.Landlock}
	return spec, nil
}

// layerDir is the host directory of an agent's packages, which must be
// in the layer store.
func (s *Supervisor) layerDir(pk *manifest.Packages) (string, error) {
	if len(pk.Layer) != 64 || strings.Trim(pk.Layer, "0123456789abcdef") != "" || s.opts.LayersDir == "" {
		return "", errdefs.New(errdefs.InvalidArgument, "packages layer %q is not a layer digest", pk.Layer)
	}
	dir := filepath.Join(s.opts.LayersDir, pk.Layer)
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
		return "", &sandbox.StartError{Step: "packages", Err: errdefs.WithHint(errdefs.New(errdefs.FailedPrecondition,
			"the agent's packages (layer %s) are not in %s", pk.Layer[:12], s.opts.LayersDir), "run the project again (cortex run) to restore them")}
	}
	return dir, nil
}

// refuse is a start the daemon will not make for a reason that does not
// heal by waiting (the project directory changed, a grant leads out of
// it): it is logged at Warn as the decision it is, and the agent is not
// restarted.
func (s *Supervisor) refuse(a *agent, step, path string, err error) error {
	s.log.Warn("start refused", logkey.Project, a.project, logkey.Agent, a.name, "uid", a.proj.OwnerUID, "path", path, logkey.Step, step, logkey.Err, err)
	return &sandbox.StartError{Step: step, Err: errdefs.Wrap(errdefs.PermissionDenied, err)}
}

// verifySource opens the project's source directory without following a
// symlink anywhere on its path and checks it is the directory recorded
// when the project was created. A project an older daemon created has no
// identity yet: its directory is accepted, and recorded, only if it is
// owned by the project's owner (the check creation made then).
func (s *Supervisor) verifySource(a *agent) (*sandbox.Dir, error) {
	path := a.proj.SourceDir
	const step = "project-dir"
	rerun := "; if you moved or replaced it yourself, run the project again from its directory (cortex run) to use it as it is now"
	if a.proj.SourceID.Ino == 0 {
		d, err := sandbox.OpenDirNoFollow(path)
		if err != nil {
			return nil, s.refuse(a, step, path, fmt.Errorf("project directory %w%s", err, rerun))
		}
		if d.ID.UID != a.proj.OwnerUID {
			d.Close()
			return nil, s.refuse(a, step, path, fmt.Errorf("project directory %s is owned by uid %d, not by the project's owner (uid %d)%s", path, d.ID.UID, a.proj.OwnerUID, rerun))
		}
		id := store.DirIdentity(d.ID)
		if s.opts.Store != nil {
			if err := s.opts.Store.SetProjectSource(context.Background(), a.project, id); err != nil {
				d.Close()
				return nil, err
			}
		}
		a.proj.SourceID = id
		s.log.Warn("project directory identity recorded at start (the project was created by an older cortexd)", logkey.Project, a.project, logkey.Agent, a.name, "uid", a.proj.OwnerUID, "path", path, "identity", d.ID.String())
		return d, nil
	}
	d, err := sandbox.VerifyDir(path, sandbox.DirIdentity(a.proj.SourceID))
	if err != nil {
		var changed *sandbox.DirChangedError
		if errors.As(err, &changed) {
			return nil, s.refuse(a, step, path, fmt.Errorf("project directory changed since the project was created: %w%s", err, rerun))
		}
		return nil, &sandbox.StartError{Step: step, Err: fmt.Errorf("project directory: %w", err)}
	}
	s.log.Debug("project directory verified", logkey.Project, a.project, logkey.Agent, a.name, "uid", a.proj.OwnerUID, "path", path)
	return d, nil
}

// grants opens the host directories behind an agent's filesystem grants:
// beneath the project's verified source directory when it was run from
// one, else beneath the bundle (reads) or the project's data directory
// (writes). Each is bound from a detached mount of exactly the directory
// opened, never by path.
type grants struct {
	s      *Supervisor
	a      *agent
	source *sandbox.Dir // verified; nil for a project run from a bundle file
	bundle *sandbox.Dir
	data   *sandbox.Dir
}

func (g *grants) close() {
	g.bundle.Close()
	g.data.Close()
}

func checkGrant(rel string) (string, error) {
	rel = filepath.Clean(rel)
	if filepath.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", errdefs.New(errdefs.InvalidArgument, "filesystem grant %q escapes the project directory", rel)
	}
	return rel, nil
}

func (g *grants) read(p string) (sandbox.Bind, error) {
	rel, err := checkGrant(p)
	if err != nil {
		return sandbox.Bind{}, err
	}
	base := g.source
	if base == nil {
		if g.bundle == nil {
			if g.bundle, err = sandbox.OpenDir(g.a.proj.BundleDir); err != nil {
				return sandbox.Bind{}, err
			}
		}
		base = g.bundle
	}
	d, err := base.OpenBeneath(rel)
	if err != nil {
		return sandbox.Bind{}, g.grantErr("filesystem.read", rel, base, err)
	}
	defer d.Close()
	tree, err := sandbox.CloneTree(d, true)
	if err != nil {
		return sandbox.Bind{}, err
	}
	return sandbox.Bind{Source: d.Path, Target: filepath.Join(AppDir, rel), Tree: tree}, nil
}

// Modes of the write-grant directories the daemon makes: in the user's
// project directory as a user would make them; in the daemon's data
// directory, where nobody but the owner may look.
const (
	sourceDirMode    = 0o755
	dataMidDirMode   = 0o711
	dataGrantDirMode = 0o700
)

func (g *grants) write(p string) (sandbox.Bind, error) {
	rel, err := checkGrant(p)
	if err != nil {
		return sandbox.Bind{}, err
	}
	base, mid, leaf := g.source, os.FileMode(sourceDirMode), os.FileMode(sourceDirMode)
	if base == nil {
		if g.data == nil {
			if g.data, err = g.s.dataDir(g.a.project); err != nil {
				return sandbox.Bind{}, err
			}
		}
		base, mid, leaf = g.data, dataMidDirMode, dataGrantDirMode
	}
	own := g.a.proj
	d, created, err := base.MkdirBeneath(rel, mid, leaf, own.OwnerUID, own.OwnerGID)
	if err != nil {
		return sandbox.Bind{}, g.grantErr("filesystem.write", rel, base, err)
	}
	defer d.Close()
	if created {
		g.s.log.Info("write grant created", logkey.Project, g.a.project, logkey.Agent, g.a.name, "uid", own.OwnerUID, "path", d.Path)
	}
	tree, err := sandbox.CloneTree(d, false)
	if err != nil {
		return sandbox.Bind{}, err
	}
	return sandbox.Bind{Source: d.Path, Target: filepath.Join(AppDir, rel), Writable: true, Tree: tree,
		IDMap: &sandbox.IDMap{HostUID: own.OwnerUID, HostGID: own.OwnerGID, AgentUID: g.a.uid, AgentGID: g.a.uid}}, nil
}

func (g *grants) grantErr(kind, rel string, base *sandbox.Dir, err error) error {
	if errors.Is(err, sandbox.ErrOutside) {
		return g.s.refuse(g.a, "grant", filepath.Join(base.Path, rel), fmt.Errorf("filesystem grant %q %w", rel, err))
	}
	if errors.Is(err, os.ErrNotExist) {
		return errdefs.New(errdefs.InvalidArgument, "%s %q: %v", kind, rel, err)
	}
	return fmt.Errorf("%s %q: %w", kind, rel, err)
}

// dataDir opens (making it when missing) the directory under which the
// write grants of a project run from a bundle file live:
// <DataDir>/<project>/data, root's, traversable only, so each owner
// reaches their own grant directories and nobody lists or reads others'.
func (s *Supervisor) dataDir(project string) (*sandbox.Dir, error) {
	root, err := sandbox.OpenDir(s.opts.DataDir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	d, _, err := root.MkdirBeneath(filepath.Join(project, "data"), dataMidDirMode, dataMidDirMode, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("project data directory: %w", err)
	}
	return d, nil
}

// mountPoint makes sure dir/rel is a directory inside dir (not a symlink
// or a file), creating it when missing.
func mountPoint(dir, rel string) error {
	rel = filepath.Clean(rel)
	p := dir
	for _, part := range strings.Split(rel, "/") {
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		switch {
		case os.IsNotExist(err):
			if err := os.Mkdir(p, 0o755); err != nil {
				return err
			}
			// The agent walks through it to the grant: 0755 whatever
			// the daemon's umask.
			if err := os.Chmod(p, 0o755); err != nil {
				return err
			}
		case err != nil:
			return err
		case !fi.IsDir():
			return errdefs.New(errdefs.InvalidArgument, "filesystem grant %q: %s in the bundle is not a directory", rel, p)
		}
	}
	return nil
}

func userEnv(ra manifest.ResolvedAgent) []string {
	out := make([]string, 0, len(ra.Env))
	for _, e := range ra.Env {
		out = append(out, e.Name+"="+e.Value)
	}
	return out
}
