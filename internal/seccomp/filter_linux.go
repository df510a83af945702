//go:build linux && cgo

package seccomp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// Filter is a profile compiled by libseccomp for the native architecture.
// It owns C memory: call Release when done (after Load, or instead of it).
// A Filter is safe for use by one goroutine at a time.
type Filter struct {
	ctx *libseccomp.ScmpFilter
}

// Build compiles the profile for the native architecture. It fails with an
// errdefs.InvalidArgument error for an invalid profile or a system call name
// libseccomp does not know, and errdefs.Unsupported on an architecture the
// profile's numbers were not written for.
func (p Profile) Build() (*Filter, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if err := checkLibrary(); err != nil {
		return nil, err
	}
	arch, err := libseccomp.GetNativeArch()
	if err != nil {
		return nil, fmt.Errorf("native architecture: %w", err)
	}
	if arch != libseccomp.ArchAMD64 && arch != libseccomp.ArchARM64 {
		return nil, errdefs.New(errdefs.Unsupported, "seccomp profile: architecture %s is not supported (amd64 and arm64 are)", arch)
	}
	ctx, err := libseccomp.NewFilter(scmpAction(p.DefaultAction))
	if err != nil {
		return nil, fmt.Errorf("create seccomp filter: %w", err)
	}
	f := &Filter{ctx: ctx}
	if err := f.addAll(p); err != nil {
		f.Release()
		return nil, err
	}
	return f, nil
}

func (f *Filter) addAll(p Profile) error {
	if err := f.ctx.SetBadArchAction(scmpAction(p.BadArchAction)); err != nil {
		return fmt.Errorf("set bad-arch action: %w", err)
	}
	// libseccomp sets no_new_privs itself while loading (its default, made
	// explicit): a backstop for a caller that forgot, and the reason Load
	// works without CAP_SYS_ADMIN.
	if err := f.ctx.SetNoNewPrivsBit(true); err != nil {
		return fmt.Errorf("set no_new_privs attribute: %w", err)
	}
	// A binary search over system call numbers instead of a linear scan, so
	// no call pays for its place in the list (the kernel's action cache
	// skips the filter only for calls whose outcome ignores arguments).
	if err := f.ctx.SetOptimize(2); err != nil {
		return fmt.Errorf("set optimize level: %w", err)
	}
	for _, r := range p.Rules {
		sc, err := resolve(r)
		if err != nil {
			return err
		}
		act := scmpAction(r.Action)
		if len(r.Any) == 0 {
			if err := f.ctx.AddRule(sc, act); err != nil {
				return fmt.Errorf("add rule %s: %w", r.Syscall, err)
			}
			continue
		}
		for _, m := range r.Any {
			conds := make([]libseccomp.ScmpCondition, 0, len(m))
			for _, c := range m {
				cond, err := scmpCondition(c)
				if err != nil {
					return fmt.Errorf("rule %s: %w", r.Syscall, err)
				}
				conds = append(conds, cond)
			}
			if err := f.ctx.AddRuleConditional(sc, act, conds); err != nil {
				return fmt.Errorf("add rule %s when %v: %w", r.Syscall, m, err)
			}
		}
	}
	return nil
}

// resolve finds a rule's system call number. A name libseccomp knows only for
// other architectures resolves to a negative pseudo number, which libseccomp
// accepts and leaves out of the native filter.
func resolve(r Rule) (libseccomp.ScmpSyscall, error) {
	sc, err := libseccomp.GetSyscallFromName(r.Syscall)
	if err == nil {
		return sc, nil
	}
	if r.Nr != 0 {
		return libseccomp.ScmpSyscall(r.Nr), nil
	}
	return 0, errdefs.New(errdefs.InvalidArgument, "seccomp rule: system call %q unknown to libseccomp %s", r.Syscall, libraryVersion())
}

func scmpAction(a Action) libseccomp.ScmpAction {
	if a == ActAllow {
		return libseccomp.ActAllow
	}
	return libseccomp.ActErrno.SetReturnCode(int16(a.Errno()))
}

func scmpCondition(c Cond) (libseccomp.ScmpCondition, error) {
	switch c.Op {
	case OpEqual:
		return libseccomp.MakeCondition(c.Arg, libseccomp.CompareEqual, c.Value)
	case OpNotEqual:
		return libseccomp.MakeCondition(c.Arg, libseccomp.CompareNotEqual, c.Value)
	case OpGreater:
		return libseccomp.MakeCondition(c.Arg, libseccomp.CompareGreater, c.Value)
	case OpMaskedEqual:
		return libseccomp.MakeCondition(c.Arg, libseccomp.CompareMaskedEqual, c.Mask, c.Value)
	}
	return libseccomp.ScmpCondition{}, fmt.Errorf("unknown operator %s", c.Op)
}

// BPF returns the compiled program exactly as Load would hand it to the
// kernel, one instruction per struct sock_filter.
func (f *Filter) BPF() ([]bpf.RawInstruction, error) {
	if f == nil || f.ctx == nil || !f.ctx.IsValid() {
		return nil, errors.New("export seccomp filter: filter released")
	}
	// libseccomp 2.5 can export only to a file descriptor.
	fd, err := unix.MemfdCreate("cortex-seccomp-bpf", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("export seccomp filter: memfd: %w", err)
	}
	file := os.NewFile(uintptr(fd), "cortex-seccomp-bpf")
	defer file.Close()
	if err := f.ctx.ExportBPF(file); err != nil {
		return nil, fmt.Errorf("export seccomp filter: %w", err)
	}
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("export seccomp filter: %w", err)
	}
	raw, err := io.ReadAll(file)
	if err != nil {
		return nil, fmt.Errorf("export seccomp filter: %w", err)
	}
	return decodeSockFilters(raw)
}

// decodeSockFilters splits an array of struct sock_filter {u16 code; u8 jt;
// u8 jf; u32 k} in native byte order.
func decodeSockFilters(raw []byte) ([]bpf.RawInstruction, error) {
	if len(raw) == 0 || len(raw)%8 != 0 {
		return nil, fmt.Errorf("export seccomp filter: %d bytes is not a whole number of instructions", len(raw))
	}
	ins := make([]bpf.RawInstruction, 0, len(raw)/8)
	for b := raw; len(b) > 0; b = b[8:] {
		ins = append(ins, bpf.RawInstruction{
			Op: binary.NativeEndian.Uint16(b[0:2]),
			Jt: b[2],
			Jf: b[3],
			K:  binary.NativeEndian.Uint32(b[4:8]),
		})
	}
	return ins, nil
}

// Load installs the filter in the calling process, in every thread at once
// (SECCOMP_FILTER_FLAG_TSYNC: the kernel filters all threads or none), and
// then, where /proc is readable, checks that every thread reports seccomp
// filter mode; it fails rather than leave a thread unfiltered. It
// sets no_new_privs if the caller has not (and TSYNC carries it to every
// thread). It cannot be undone: call it right before exec. The Filter may be
// released afterwards.
func (f *Filter) Load() error {
	if f == nil || f.ctx == nil || !f.ctx.IsValid() {
		return errors.New("load seccomp filter: filter released")
	}
	if err := f.ctx.Load(); err != nil {
		return fmt.Errorf("load seccomp filter: %w", err)
	}
	if err := checkAllThreadsFiltered(); err != nil {
		return fmt.Errorf("load seccomp filter: %w", err)
	}
	return nil
}

// checkAllThreadsFiltered reads the Seccomp field of every thread's status.
func checkAllThreadsFiltered() error {
	tasks, err := os.ReadDir("/proc/self/task")
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
		return nil // no /proc to look in; TSYNC (see checkLibrary) already made it all or nothing
	}
	if err != nil {
		return fmt.Errorf("list threads: %w", err)
	}
	for _, t := range tasks {
		status, err := os.ReadFile(filepath.Join("/proc/self/task", t.Name(), "status"))
		if errors.Is(err, os.ErrNotExist) {
			continue // the thread exited
		}
		if err != nil {
			return fmt.Errorf("thread %s: %w", t.Name(), err)
		}
		mode, ok := statusField(status, "Seccomp")
		if !ok {
			return fmt.Errorf("thread %s: no Seccomp field in status", t.Name())
		}
		if mode != "2" {
			return fmt.Errorf("thread %s: seccomp mode %s after load, want 2 (filter)", t.Name(), mode)
		}
	}
	return nil
}

func statusField(status []byte, name string) (string, bool) {
	for _, line := range bytes.Split(status, []byte("\n")) {
		k, v, ok := strings.Cut(string(line), ":")
		if ok && k == name {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// Release frees the filter's C memory. It is safe to call more than once.
func (f *Filter) Release() {
	if f == nil || f.ctx == nil {
		return
	}
	f.ctx.Release()
}

func libraryVersion() string {
	major, minor, micro := libseccomp.GetLibraryVersion()
	return fmt.Sprintf("%d.%d.%d", major, minor, micro)
}

// checkLibrary needs libseccomp 2.5 or later (the oldest tested here) and
// API level 2 or more, at which libseccomp and the kernel support TSYNC:
// below it, libseccomp-golang would quietly load the filter into the calling
// thread only.
func checkLibrary() error {
	major, minor, _ := libseccomp.GetLibraryVersion()
	if major < 2 || major == 2 && minor < 5 {
		return errdefs.WithHint(
			errdefs.New(errdefs.Unsupported, "libseccomp %s is too old: 2.5 or later needed", libraryVersion()),
			"install a newer libseccomp (apt-get install libseccomp2)")
	}
	api, err := libseccomp.GetAPI()
	if err != nil {
		return errdefs.Wrap(errdefs.Unsupported, fmt.Errorf("libseccomp API level: %w", err))
	}
	if api < 2 {
		return errdefs.New(errdefs.Unsupported, "libseccomp API level %d: filtering every thread at once (TSYNC) needs level 2", api)
	}
	return nil
}
