package sandbox

import (
	"os"
	"time"

	"golang.org/x/net/bpf"
)

// Spec is everything the init needs to build one agent's sandbox. It is
// sent to the init as JSON over the control socket.
type Spec struct {
	ID       string   `json:"id"` // project/agent, for messages
	Hostname string   `json:"hostname"`
	Argv     []string `json:"argv"`
	Env      []string `json:"env"`
	Dir      string   `json:"dir"` // the agent's working directory (inside the new root when Rootfs is set)
	// UID and GID the agent runs as; 0 keeps root (only without Confine).
	UID int `json:"uid"`
	GID int `json:"gid"`
	// ExitFile receives the agent's exit status as JSON when it ends. It
	// is opened by the init before any other step.
	ExitFile string `json:"exit_file"`
	// Rootfs, when set, replaces the host's filesystem with a fresh root.
	Rootfs *Rootfs `json:"rootfs,omitempty"`
	// Confine applies the identity and syscall walls: no_new_privs, all
	// capabilities dropped, seccomp filter, Landlock when Rootfs is set.
	Confine *Confine `json:"confine,omitempty"`
	// Rlimits applied to the agent (RLIMIT_NOFILE etc.).
	NoFile uint64 `json:"nofile,omitempty"`
	// Keep is how many files Start passed for the init to hold (the read
	// ends of the output FIFOs). Set by Start.
	Keep int `json:"keep"`
	// DrainTimeout bounds how long the init, once the agent has ended,
	// waits for the daemon to read what is still buffered in the output
	// pipes (it may be down or restarting). Zero means 10 minutes.
	DrainTimeout time.Duration `json:"drain_timeout,omitempty"`
}

// Rootfs describes the agent's filesystem: a tmpfs root holding only the
// listed binds and files.
type Rootfs struct {
	// Dir is an empty host directory the init mounts the new root's tmpfs
	// on (only inside the sandbox's mount namespace).
	Dir string `json:"dir"`
	// Binds are host paths made visible at Target (read-only unless
	// Writable). Sources that do not exist are skipped when Optional.
	Binds []Bind `json:"binds"`
	// Files are small files written into the new root (etc/passwd, ...).
	Files []File `json:"files"`
	// TmpSize caps /tmp in bytes.
	TmpSize int64 `json:"tmp_size"`
}

// Bind is one bind mount into the new root.
type Bind struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	Writable bool   `json:"writable,omitempty"`
	Optional bool   `json:"optional,omitempty"`
	// IDMap, for writable binds, maps the agent's ids to the owner's on
	// the host (an idmapped mount): what the agent writes is owned by the
	// user who ran the swarm.
	IDMap *IDMap `json:"idmap,omitempty"`
	// Tree, when set, is a detached mount (CloneTree) of a directory the
	// daemon opened and checked; the init attaches it at Target and
	// never looks Source up by path (Source is then only for messages).
	// Start passes it to the init; the caller closes it (Spec.CloseFiles)
	// once Start has returned.
	Tree *os.File `json:"-"`
	// TreeFD is Tree's descriptor number in the init (set by Start).
	TreeFD int `json:"tree_fd,omitempty"`
}

// CloseFiles closes the detached mounts the spec holds (Bind.Tree).
func (s *Spec) CloseFiles() {
	if s.Rootfs == nil {
		return
	}
	for i := range s.Rootfs.Binds {
		if t := s.Rootfs.Binds[i].Tree; t != nil {
			t.Close()
			s.Rootfs.Binds[i].Tree = nil
		}
	}
}

// IDMap is a one-id mapping for an idmapped bind.
type IDMap struct {
	HostUID, HostGID   int
	AgentUID, AgentGID int
}

// File is one file written into the new root.
type File struct {
	Path string      `json:"path"`
	Data []byte      `json:"data"`
	Mode os.FileMode `json:"mode"`
}

// Confine selects the identity and syscall walls.
type Confine struct {
	Seccomp bool `json:"seccomp"`
	// SeccompPrograms are the filters compiled once by the daemon (the
	// agent profile, then SetIDProfile); the init loads them as they are,
	// stacked. Empty: the init compiles both itself.
	SeccompPrograms [][]bpf.RawInstruction `json:"seccomp_programs,omitempty"`
	Landlock        bool                   `json:"landlock"` // mirrors the Rootfs binds as Landlock rules
}

// ExitStatus is how the agent ended, as the init recorded it.
type ExitStatus struct {
	Code   int    `json:"code"`             // exit code, or 128+signal
	Signal string `json:"signal,omitempty"` // e.g. "killed" when ended by a signal
	// Source says who observed the status: "init" (the exit file) or
	// "wait" (the init itself ended, e.g. killed with the whole sandbox).
	Source string `json:"source"`
}

// Signaled reports whether the agent was ended by a signal.
func (s ExitStatus) Signaled() bool { return s.Signal != "" }
