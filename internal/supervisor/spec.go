package supervisor

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cortexrt/cortex/internal/errdefs"
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
	return BuildSpec(s.opts, SpecInput{Project: a.proj, Agent: a.spec, Run: run, UID: a.uid, RunDir: a.runDir})
}

// BuildSpec is the sandbox spec of one run of an agent under opts: what
// the daemon starts (exported for benchmarks and tests that start
// sandboxes without a daemon).
func BuildSpec(opts Options, in SpecInput) (sandbox.Spec, error) {
	s := &Supervisor{opts: opts}
	a := &agent{project: in.Project.Name, name: in.Agent.Name, spec: in.Agent, proj: in.Project, uid: in.UID, runDir: in.RunDir}
	run := in.Run
	ra := a.spec
	ip, err := s.opts.Runtimes.Lookup(ra.Runtime)
	if err != nil {
		return sandbox.Spec{}, err
	}
	hostShims := filepath.Join(s.opts.ShareDir, runtimes.ShimDir)
	hostSDK := filepath.Join(s.opts.ShareDir, "sdk")
	spec := sandbox.Spec{
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
	if !s.opts.Sandbox.Confine {
		// Degraded: the host's filesystem, the agent as root.
		spec.Argv = runtimes.Argv(ip, hostShims, ra.Entrypoint)
		spec.Dir = a.proj.BundleDir
		env = append(env, "HOME=/tmp",
			"PYTHONPATH="+filepath.Join(hostSDK, "python"),
			"NODE_PATH="+filepath.Join(hostSDK, "node"))
		spec.Env = append(env, userEnv(ra)...)
		return spec, nil
	}

	spec.UID, spec.GID = a.uid, a.uid
	spec.Dir = AppDir
	spec.Argv = runtimes.Argv(ip, SandboxShare+"/shims", ra.Entrypoint)
	env = append(env, "HOME=/tmp", "USER="+SandboxUser, "TMPDIR=/tmp",
		"PYTHONPATH="+SandboxShare+"/sdk/python",
		"NODE_PATH="+SandboxShare+"/sdk/node")
	spec.Env = append(env, userEnv(ra)...)

	rootDir := filepath.Join(a.runDir, "root")
	if err := os.MkdirAll(rootDir, 0o755); err != nil {
		return spec, err
	}
	rfs := &sandbox.Rootfs{Dir: rootDir, TmpSize: s.opts.Sandbox.TmpSize}
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
	// Grants nest under the read-only /app: their mount points must exist
	// in the bundle directory (which the daemon owns) before /app goes in.
	for _, p := range append(append([]string(nil), ra.Capabilities.FilesystemRead...), ra.Capabilities.FilesystemWrite...) {
		if err := mountPoint(a.proj.BundleDir, p); err != nil {
			return spec, err
		}
	}
	for _, p := range ra.Capabilities.FilesystemRead {
		src, err := s.grantSource(a, p, false)
		if err != nil {
			return spec, err
		}
		rfs.Binds = append(rfs.Binds, sandbox.Bind{Source: src, Target: filepath.Join(AppDir, filepath.Clean(p))})
	}
	for _, p := range ra.Capabilities.FilesystemWrite {
		src, err := s.grantSource(a, p, true)
		if err != nil {
			return spec, err
		}
		rfs.Binds = append(rfs.Binds, sandbox.Bind{Source: src, Target: filepath.Join(AppDir, filepath.Clean(p)), Writable: true,
			IDMap: &sandbox.IDMap{HostUID: a.proj.OwnerUID, HostGID: a.proj.OwnerGID, AgentUID: a.uid, AgentGID: a.uid}})
	}
	rfs.Files = []sandbox.File{
		{Path: "/etc/passwd", Data: []byte(fmt.Sprintf("root:x:0:0:root:/root:/usr/sbin/nologin\n%s:x:%d:%d:cortex agent:/tmp:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n", SandboxUser, a.uid, a.uid))},
		{Path: "/etc/group", Data: []byte(fmt.Sprintf("root:x:0:\n%s:x:%d:\nnogroup:x:65534:\n", SandboxUser, a.uid))},
		{Path: "/etc/hostname", Data: []byte(a.name + "\n")},
		{Path: "/etc/hosts", Data: []byte("127.0.0.1\tlocalhost " + a.name + "\n::1\tlocalhost ip6-localhost ip6-loopback\n")},
		{Path: "/etc/nsswitch.conf", Data: []byte("passwd: files\ngroup: files\nhosts: files dns\n")},
		// No network.access: no resolver. The egress attacher replaces it.
		{Path: "/etc/resolv.conf", Data: []byte("# no DNS: this agent has no network.access\n")},
	}
	spec.Rootfs = rfs
	spec.Confine = &sandbox.Confine{Seccomp: s.opts.Sandbox.Seccomp, SeccompPrograms: s.opts.Sandbox.SeccompPrograms, Landlock: s.opts.Sandbox.Landlock}
	return spec, nil
}

// grantSource is the host directory behind a filesystem grant: the
// project's source directory when it was run from one, else the bundle
// (reads) or the project's data directory (writes). Write directories
// are created, owned by the user who ran the swarm.
func (s *Supervisor) grantSource(a *agent, rel string, write bool) (string, error) {
	rel = filepath.Clean(rel)
	if filepath.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", errdefs.New(errdefs.InvalidArgument, "filesystem grant %q escapes the project directory", rel)
	}
	base := a.proj.SourceDir
	if base == "" {
		if write {
			base = filepath.Join(s.opts.DataDir, a.project, "data")
		} else {
			base = a.proj.BundleDir
		}
	}
	if write {
		if err := os.MkdirAll(base, 0o755); err != nil {
			return "", err
		}
	}
	realBase, err := filepath.EvalSymlinks(base)
	if err != nil {
		return "", errdefs.New(errdefs.InvalidArgument, "filesystem grant %q: project directory: %v", rel, err)
	}
	// Walk the grant one component at a time: a symlink may lead
	// elsewhere inside the project but never out of it, and a missing
	// directory is created where the walk is, never through a link. (An
	// agent with a write grant can plant links in it between runs; a
	// nested grant under it would otherwise be created, chowned and bound
	// wherever they point.)
	p := realBase
	parts := strings.Split(rel, "/")
	for i, part := range parts {
		if part == "." {
			continue
		}
		next := filepath.Join(p, part)
		fi, err := os.Lstat(next)
		switch {
		case err == nil && fi.Mode()&os.ModeSymlink != 0:
			real, err := filepath.EvalSymlinks(next)
			if err != nil {
				return "", errdefs.New(errdefs.InvalidArgument, "filesystem grant %q: %s is a symlink to nowhere: %v", rel, next, err)
			}
			if real != realBase && !strings.HasPrefix(real, realBase+"/") {
				return "", errdefs.New(errdefs.InvalidArgument, "filesystem grant %q resolves outside the project directory (%s)", rel, real)
			}
			next = real
		case err == nil:
		case os.IsNotExist(err) && write:
			if err := os.Mkdir(next, 0o755); err != nil {
				return "", err
			}
			if i == len(parts)-1 {
				_ = os.Lchown(next, a.proj.OwnerUID, a.proj.OwnerGID)
			}
		case os.IsNotExist(err):
			return "", errdefs.New(errdefs.InvalidArgument, "filesystem.read %q: %v", rel, err)
		default:
			return "", err
		}
		p = next
	}
	return p, nil
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
