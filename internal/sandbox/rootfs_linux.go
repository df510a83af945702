package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Paths of /proc that reveal or change the host, masked as container
// runtimes do: runc's defaults (acpi, asound, kcore, keys, latency_stats,
// timer_list, timer_stats, sched_debug, scsi; its /sys/firmware is moot,
// the sandbox has no /sys), moby's /proc/interrupts, and kallsyms and
// driver (driver state such as /proc/driver/nvidia on a GPU host).
var (
	procMasked = []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/proc/interrupts", "/proc/kallsyms",
		"/proc/driver"}
	procReadOnly = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
	devNodes     = []string{"null", "zero", "full", "random", "urandom", "tty"}
)

// buildRootfs makes a tmpfs root holding only the spec's binds and files,
// a private /proc, /dev and /tmp, and pivots into it.
func buildRootfs(s *initState) error {
	r := s.spec.Rootfs
	root := r.Dir
	if root == "" {
		return errors.New("rootfs dir not set")
	}
	if err := unix.Mount("cortex-root", root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,size=4m"); err != nil {
		return fmt.Errorf("mount root tmpfs on %s: %w", root, err)
	}
	binds := append([]Bind(nil), r.Binds...)
	sort.SliceStable(binds, func(i, j int) bool { return depth(binds[i].Target) < depth(binds[j].Target) })
	for _, b := range binds {
		if err := bindInto(root, b); err != nil {
			return err
		}
	}
	if err := mountProc(root); err != nil {
		return err
	}
	if err := mountDev(root); err != nil {
		return err
	}
	tmp := filepath.Join(root, "tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	size := r.TmpSize
	if size <= 0 {
		size = 64 << 20
	}
	if err := unix.Mount("tmpfs", tmp, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777,size="+strconv.FormatInt(size, 10)); err != nil {
		return fmt.Errorf("mount /tmp: %w", err)
	}
	for _, f := range r.Files {
		p := filepath.Join(root, f.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		if err := os.WriteFile(p, f.Data, mode); err != nil {
			return fmt.Errorf("write %s: %w", f.Path, err)
		}
		_ = os.Chmod(p, mode)
	}
	if err := pivot(root); err != nil {
		return err
	}
	// The root itself holds only mount points and Cortex's files: nobody,
	// not even root inside, writes to it.
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("remount / read-only: %w", err)
	}
	if err := unix.Mount("", "/dev", "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("remount /dev read-only: %w", err)
	}
	dir := s.spec.Dir
	if dir == "" {
		dir = "/"
	}
	return unix.Chdir(dir)
}

func depth(p string) int { return strings.Count(filepath.Clean(p), "/") }

// bindInto makes b.Source visible at root+b.Target. A source that is a
// symlink is recreated as the same symlink (merged-/usr systems link /lib
// to usr/lib).
func bindInto(root string, b Bind) error {
	target := filepath.Join(root, filepath.Clean("/"+b.Target))
	if b.TreeFD > 0 {
		return attachTree(target, b)
	}
	fi, err := os.Lstat(b.Source)
	if err != nil {
		if b.Optional && errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("bind %s: %w", b.Source, err)
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	// Never mount through a symlink planted in what is already bound.
	if tfi, err := os.Lstat(target); err == nil && tfi.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("bind %s: mount point %s is a symlink", b.Source, b.Target)
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		link, err := os.Readlink(b.Source)
		if err != nil {
			return err
		}
		if err := os.Symlink(link, target); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("symlink %s: %w", b.Target, err)
		}
		return nil
	}
	if fi.IsDir() {
		if err := os.MkdirAll(target, 0o755); err != nil {
			return err
		}
	} else if f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
		f.Close()
	} else {
		return err
	}
	if b.IDMap != nil {
		return idmappedBind(b.Source, target, b.IDMap)
	}
	if err := unix.Mount(b.Source, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s on %s: %w", b.Source, b.Target, err)
	}
	attr := uint64(unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV)
	if !b.Writable {
		attr |= unix.MOUNT_ATTR_RDONLY
	}
	return setattr(target, attr, 0)
}

// setattr applies mount attributes recursively (mount_setattr), falling
// back to a remount on kernels without it.
func setattr(target string, set, clr uint64) error {
	err := unix.MountSetattr(-1, target, unix.AT_RECURSIVE|unix.AT_SYMLINK_NOFOLLOW, &unix.MountAttr{Attr_set: set, Attr_clr: clr})
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.ENOSYS) {
		return fmt.Errorf("mount_setattr %s: %w", target, err)
	}
	flags := uintptr(unix.MS_REMOUNT | unix.MS_BIND)
	if set&unix.MOUNT_ATTR_RDONLY != 0 {
		flags |= unix.MS_RDONLY
	}
	if set&unix.MOUNT_ATTR_NOSUID != 0 {
		flags |= unix.MS_NOSUID
	}
	if set&unix.MOUNT_ATTR_NODEV != 0 {
		flags |= unix.MS_NODEV
	}
	return unix.Mount("", target, "", flags, "")
}

// idmappedBind clones source's mount, maps the agent's ids to the host
// owner's through a user namespace, and attaches it at target.
func idmappedBind(source, target string, m *IDMap) error {
	tree, err := unix.OpenTree(unix.AT_FDCWD, source, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("open_tree %s: %w", source, err)
	}
	defer unix.Close(tree)
	return attachDetached(tree, target, Bind{Source: source, Target: target, Writable: true, IDMap: m})
}

// attachTree attaches the detached mount the daemon passed (Bind.Tree)
// at target, which must be a directory and no symlink. The daemon cloned
// it from a directory it opened beneath a checked one, so nothing here
// resolves the source's path.
func attachTree(target string, b Bind) error {
	defer unix.Close(b.TreeFD)
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	fi, err := os.Lstat(target)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.Mkdir(target, 0o755); err != nil {
			return err
		}
	case err != nil:
		return err
	case fi.Mode()&os.ModeSymlink != 0:
		return fmt.Errorf("bind %s: mount point %s is a symlink", b.Source, b.Target)
	case !fi.IsDir():
		return fmt.Errorf("bind %s: mount point %s is not a directory", b.Source, b.Target)
	}
	return attachDetached(b.TreeFD, target, b)
}

// attachDetached sets the bind's attributes on a detached mount (read-only
// unless Writable, nosuid, nodev; idmapped with IDMap), then moves it onto
// target.
func attachDetached(tree int, target string, b Bind) error {
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	flags := unix.AT_EMPTY_PATH
	if !b.Writable {
		attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
	}
	if b.IDMap != nil {
		usernsFD, cleanup, err := idmapUserns(b.IDMap)
		if err != nil {
			return fmt.Errorf("idmap user namespace for %s: %w", b.Source, err)
		}
		defer cleanup()
		attr.Attr_set |= unix.MOUNT_ATTR_IDMAP
		attr.Userns_fd = uint64(usernsFD)
	} else {
		flags |= unix.AT_RECURSIVE
	}
	if err := unix.MountSetattr(tree, "", uint(flags), attr); err != nil {
		if b.IDMap != nil {
			return fmt.Errorf("idmap %s (the filesystem may not support idmapped mounts): %w", b.Source, err)
		}
		return fmt.Errorf("mount_setattr %s: %w", b.Source, err)
	}
	if err := unix.MoveMount(tree, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount %s on %s: %w", b.Source, b.Target, err)
	}
	return nil
}

// idmapUserns returns a user namespace whose maps say: host id (as seen
// "inside") <-> agent id ("outside"). For an idmapped mount that makes a
// file the host owner owns appear owned by the agent, and the agent's
// writes land owned by the host owner.
func idmapUserns(m *IDMap) (int, func(), error) {
	cmd := exec.Command("/proc/self/exe", UsernsHoldArg)
	cmd.Args[0] = "cortex-userns"
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: m.HostUID, HostID: m.AgentUID, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: m.HostGID, HostID: m.AgentGID, Size: 1}},
		Pdeathsig:   unix.SIGKILL,
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return -1, nil, err
	}
	if err := cmd.Start(); err != nil {
		return -1, nil, err
	}
	fd, err := unix.Open("/proc/"+strconv.Itoa(cmd.Process.Pid)+"/ns/user", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	cleanup := func() {
		stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	if err != nil {
		fd = -1
		cleanup()
		return -1, nil, err
	}
	return fd, cleanup, nil
}

// HoldUserns is the main of "cortexd userns-hold": it only keeps its user
// namespace alive until its stdin closes.
func HoldUserns() {
	var b [1]byte
	_, _ = os.Stdin.Read(b[:])
	os.Exit(0)
}

func mountProc(root string) error {
	proc := filepath.Join(root, "proc")
	if err := os.MkdirAll(proc, 0o555); err != nil {
		return err
	}
	if err := unix.Mount("proc", proc, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	for _, p := range procMasked {
		t := filepath.Join(root, p)
		fi, err := os.Stat(t)
		if err != nil {
			continue
		}
		if fi.IsDir() {
			err = unix.Mount("tmpfs", t, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=0")
		} else {
			err = unix.Mount("/dev/null", t, "", unix.MS_BIND, "")
		}
		if err != nil {
			return fmt.Errorf("mask %s: %w", p, err)
		}
	}
	for _, p := range procReadOnly {
		t := filepath.Join(root, p)
		if _, err := os.Stat(t); err != nil {
			continue
		}
		if err := unix.Mount(t, t, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s: %w", p, err)
		}
		if err := setattr(t, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC, 0); err != nil {
			return err
		}
	}
	return nil
}

func mountDev(root string) error {
	dev := filepath.Join(root, "dev")
	if err := os.MkdirAll(dev, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=0755,size=64k"); err != nil {
		return fmt.Errorf("mount /dev: %w", err)
	}
	for _, n := range devNodes {
		t := filepath.Join(dev, n)
		f, err := os.OpenFile(t, os.O_CREATE|os.O_WRONLY, 0o666)
		if err != nil {
			return err
		}
		f.Close()
		if err := unix.Mount("/dev/"+n, t, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind /dev/%s: %w", n, err)
		}
	}
	pts := filepath.Join(dev, "pts")
	if err := os.MkdirAll(pts, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("devpts", pts, "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"); err != nil {
		return fmt.Errorf("mount /dev/pts: %w", err)
	}
	shm := filepath.Join(dev, "shm")
	if err := os.MkdirAll(shm, 0o1777); err != nil {
		return err
	}
	if err := unix.Mount("shm", shm, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=1777,size=64m"); err != nil {
		return fmt.Errorf("mount /dev/shm: %w", err)
	}
	for link, target := range map[string]string{"ptmx": "pts/ptmx", "fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		if err := os.Symlink(target, filepath.Join(dev, link)); err != nil {
			return err
		}
	}
	return nil
}

// pivot makes root the new / and detaches the old one (runc's
// pivot_root(".", ".") trick: no directory for the old root is needed).
func pivot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	// The old root is now mounted over the new one at "/"; detach it.
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	return unix.Chdir("/")
}

// MaskedProcPaths lists the /proc paths a sandbox masks (an empty
// read-only tmpfs over a directory, /dev/null over a file) where the host
// has them, and ReadOnlyProcPaths those it makes read-only.
func MaskedProcPaths() []string   { return append([]string(nil), procMasked...) }
func ReadOnlyProcPaths() []string { return append([]string(nil), procReadOnly...) }
