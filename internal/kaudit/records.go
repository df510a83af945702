package kaudit

import (
	"encoding/hex"
	"path"
	"strconv"
	"strings"
)

// Denial is one file system call the kernel refused.
type Denial struct {
	PID     int
	UID     int
	Comm    string
	Syscall string // "openat"
	Errno   string // "ENOENT"
	// Path is absolute and clean, as the process saw it (inside its
	// mount namespace): "/app/data/topics.txt".
	Path string
	// Access is what the call wanted: "read", "write" or "exec".
	Access string
	// Parent: the kernel named only the directory the call would have
	// created or removed an entry in (Path is that directory).
	Parent bool
}

// Accesses a call may want.
const (
	AccessRead  = "read"
	AccessWrite = "write"
	AccessExec  = "exec"
)

// syscallInfo says how to read one audited system call.
type syscallInfo struct {
	name string
	// access is the access it wants; "" for an open, decided by its flags.
	access string
	// flagsArg is the argument holding open(2) flags (-1: none).
	flagsArg int
	// dirfdArg is the argument holding the directory a relative path is
	// taken from (-1: the working directory).
	dirfdArg int
}

// reportedErrnos are the refusals worth reporting: the path is not there
// (in the agent's view), not permitted, or read-only.
var reportedErrnos = map[int]string{2: "ENOENT", 13: "EACCES", 1: "EPERM", 30: "EROFS", 20: "ENOTDIR"}

// Open flags (the same on every Linux architecture Cortex runs on).
const (
	oAccMode = 0x3
	oWronly  = 0x1
	oRdwr    = 0x2
	oCreat   = 0x40
	oTrunc   = 0x200
	atFDCWD  = 0xffffff9c // AT_FDCWD as the audit record prints an argument (32 bits)
)

// record is one audit record: its type and key=value fields.
type record struct {
	typ    uint16
	serial uint64
	fields map[string]string
}

// parseRecord reads an audit record's text: "audit(1700000000.123:456):
// key=value key="quoted value" key=HEXVALUE ...".
func parseRecord(typ uint16, text string) (record, bool) {
	r := record{typ: typ, fields: map[string]string{}}
	rest, ok := strings.CutPrefix(text, "audit(")
	if !ok {
		return r, false
	}
	stamp, rest, ok := strings.Cut(rest, "):")
	if !ok {
		return r, false
	}
	_, serial, ok := strings.Cut(stamp, ":")
	if !ok {
		return r, false
	}
	n, err := strconv.ParseUint(serial, 10, 64)
	if err != nil {
		return r, false
	}
	r.serial = n
	s := strings.TrimSpace(rest)
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			break
		}
		key := s[:eq]
		s = s[eq+1:]
		var val string
		if strings.HasPrefix(s, `"`) {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				val, s = s[1:], ""
			} else {
				val, s = s[1:end+1], s[end+2:]
			}
		} else {
			end := strings.IndexByte(s, ' ')
			if end < 0 {
				val, s = s, ""
			} else {
				val, s = s[:end], s[end:]
			}
			// The kernel quotes an untrusted string it can print as is,
			// and writes it in hex otherwise.
			if hexed[key] && val != "(null)" {
				if b, err := hex.DecodeString(val); err == nil {
					val = string(b)
				}
			}
		}
		r.fields[key] = val
		s = strings.TrimLeft(s, " ")
	}
	return r, true
}

// hexed are the fields holding untrusted strings.
var hexed = map[string]bool{"name": true, "cwd": true, "comm": true, "exe": true, "key": true}

// event is the records of one audited call, by serial.
type event struct {
	syscall *record
	cwd     string
	paths   []record
}

// denial turns a complete event into a Denial; ok is false when the call
// is not one to report.
func (e *event) denial(arch map[int]syscallInfo) (Denial, bool) {
	if e.syscall == nil {
		return Denial{}, false
	}
	f := e.syscall.fields
	nr, err := strconv.Atoi(f["syscall"])
	if err != nil {
		return Denial{}, false
	}
	info, ok := arch[nr]
	if !ok {
		return Denial{}, false
	}
	exit, err := strconv.Atoi(f["exit"])
	if err != nil || exit >= 0 {
		return Denial{}, false
	}
	errno, ok := reportedErrnos[-exit]
	if !ok {
		return Denial{}, false
	}
	d := Denial{Syscall: info.name, Errno: errno, Access: info.access, Comm: f["comm"]}
	d.PID, _ = strconv.Atoi(f["pid"])
	d.UID, _ = strconv.Atoi(f["uid"])
	if d.Access == "" {
		d.Access = AccessRead
		if info.flagsArg >= 0 {
			if fl, err := strconv.ParseUint(f["a"+strconv.Itoa(info.flagsArg)], 16, 64); err == nil {
				if fl&oAccMode == oWronly || fl&oAccMode == oRdwr || fl&(oCreat|oTrunc) != 0 {
					d.Access = AccessWrite
				}
			}
		}
	}
	// The path: the item the call is about, not its parent directory.
	var name string
	parent := false
	for _, p := range e.paths {
		n := p.fields["name"]
		if n == "" || n == "(null)" {
			continue
		}
		isParent := p.fields["nametype"] == "PARENT"
		if name == "" || parent && !isParent {
			name, parent = n, isParent
		}
	}
	if name == "" {
		return Denial{}, false
	}
	if !strings.HasPrefix(name, "/") {
		if info.dirfdArg >= 0 {
			if fd, err := strconv.ParseUint(f["a"+strconv.Itoa(info.dirfdArg)], 16, 64); err != nil || fd != atFDCWD {
				return Denial{}, false // relative to a descriptor: its directory is unknown
			}
		}
		if e.cwd == "" {
			return Denial{}, false
		}
		name = e.cwd + "/" + name
	}
	d.Path, d.Parent = path.Clean(name), parent
	return d, true
}
