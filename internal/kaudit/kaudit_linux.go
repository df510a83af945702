//go:build linux && (amd64 || arm64)

package kaudit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/cortexrt/cortex/internal/errdefs"
	"golang.org/x/sys/unix"
)

// Audit netlink message types and constants (linux/audit.h).
const (
	auditGet       = 1000
	auditSet       = 1001
	auditListRules = 1013
	auditAddRule   = 1011
	auditDelRule   = 1012
	auditSyscall   = 1300
	auditPath      = 1302
	auditCwd       = 1307
	auditEOE       = 1320

	auditStatusEnabled = 1
	auditFilterExit    = 0x04
	auditAlways        = 2
	auditEqual         = 0x40000000
	auditFieldUID      = 1
	auditFieldArch     = 11
	auditFieldSuccess  = 104
	auditFieldKey      = 210
	auditNLGrpReadlog  = 1
	auditBitmaskSize   = 64
	auditMaxFields     = 64
)

// Auditor is a daemon's connection to the kernel's audit subsystem. It is
// idle (holds no socket, no rule) until the first Watch.
type Auditor struct {
	key string
	log *slog.Logger

	// mu guards the lifecycle (sockets, rules, the reader); wmu the
	// watches the reader looks up, so the reader never waits on mu.
	mu        sync.Mutex
	ctl, mc   int  // netlink sockets; -1 when idle
	enabledBy bool // Watch turned auditing on
	stop      chan struct{}
	done      chan struct{}
	wmu       sync.RWMutex
	watches   map[int]*watch
	lost      atomic.Int64
}

type watch struct {
	uid    int
	pidns  uint64
	report func(Denial)
	n      int // Watch calls for this uid
}

// New returns an idle auditor whose rules carry key (unique per daemon,
// so daemons side by side never remove each other's rules).
func New(key string, log *slog.Logger) *Auditor {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Auditor{key: key, log: log, ctl: -1, mc: -1, watches: map[int]*watch{}}
}

// Watch reports, through report, the refused file system calls of the
// processes running as uid in the pid namespace with inode pidns, until
// the returned Closer is closed. report runs on the auditor's goroutine
// and must be quick.
func (a *Auditor) Watch(uid int, pidns uint64, report func(Denial)) (io.Closer, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ctl < 0 {
		if err := a.start(); err != nil {
			return nil, err
		}
	}
	a.wmu.Lock()
	if w := a.watches[uid]; w != nil {
		w.pidns, w.report = pidns, report
		w.n++
		a.wmu.Unlock()
		return closer(func() { a.unwatch(uid) }), nil
	}
	idle := len(a.watches) == 0
	a.wmu.Unlock()
	if err := a.request(auditAddRule, a.rule(uid)); err != nil && !errors.Is(err, unix.EEXIST) {
		if idle {
			a.shutdown()
		}
		return nil, errdefs.Wrap(errdefs.Unavailable, fmt.Errorf("audit rule for uid %d: %w", uid, err))
	}
	a.wmu.Lock()
	a.watches[uid] = &watch{uid: uid, pidns: pidns, report: report, n: 1}
	a.wmu.Unlock()
	return closer(func() { a.unwatch(uid) }), nil
}

type closer func()

func (c closer) Close() error { c(); return nil }

func (a *Auditor) unwatch(uid int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.wmu.Lock()
	w := a.watches[uid]
	if w == nil {
		a.wmu.Unlock()
		return
	}
	if w.n--; w.n > 0 {
		a.wmu.Unlock()
		return
	}
	delete(a.watches, uid)
	idle := len(a.watches) == 0
	a.wmu.Unlock()
	if err := a.request(auditDelRule, a.rule(uid)); err != nil {
		a.log.Warn("remove audit rule", "uid", uid, "err", err)
	}
	if idle {
		a.shutdown()
	}
}

// Close removes every rule and restores the audit state. The auditor may
// be used again.
func (a *Auditor) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.wmu.Lock()
	uids := make([]int, 0, len(a.watches))
	for uid := range a.watches {
		uids = append(uids, uid)
		delete(a.watches, uid)
	}
	a.wmu.Unlock()
	if a.ctl >= 0 {
		for _, uid := range uids {
			_ = a.request(auditDelRule, a.rule(uid))
		}
	}
	a.shutdown()
	return nil
}

// start opens the sockets, turns auditing on when it is off, and starts
// reading. a.mu is held.
func (a *Auditor) start() error {
	ctl, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_AUDIT)
	if err != nil {
		return errdefs.Wrap(errdefs.Unsupported, fmt.Errorf("audit netlink socket: %w", err))
	}
	if err := unix.Bind(ctl, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(ctl)
		return errdefs.Wrap(errdefs.Unsupported, fmt.Errorf("audit netlink socket: %w", err))
	}
	_ = unix.SetsockoptTimeval(ctl, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5})
	mc, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_AUDIT)
	if err != nil {
		unix.Close(ctl)
		return errdefs.Wrap(errdefs.Unsupported, fmt.Errorf("audit netlink socket: %w", err))
	}
	if err := unix.Bind(mc, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err == nil {
		err = unix.SetsockoptInt(mc, unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, auditNLGrpReadlog)
	}
	if err != nil {
		unix.Close(ctl)
		unix.Close(mc)
		return errdefs.Wrap(errdefs.Unavailable, fmt.Errorf("audit read-only multicast group (needs CAP_AUDIT_READ): %w", err))
	}
	// A learning agent may fail many calls at once (an interpreter
	// probing its paths): room for them.
	if unix.SetsockoptInt(mc, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20) != nil {
		_ = unix.SetsockoptInt(mc, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
	}
	_ = unix.SetsockoptTimeval(mc, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100000})
	a.ctl, a.mc = ctl, mc
	enabled, err := a.enabled()
	if err == nil && enabled == 0 {
		if err = a.setEnabled(1); err == nil {
			a.enabledBy = true
		}
	}
	if err != nil {
		unix.Close(ctl)
		unix.Close(mc)
		a.ctl, a.mc = -1, -1
		return errdefs.Wrap(errdefs.Unavailable, fmt.Errorf("kernel audit status (needs CAP_AUDIT_CONTROL): %w", err))
	}
	a.stop, a.done = make(chan struct{}), make(chan struct{})
	go a.read(a.mc, a.stop, a.done)
	return nil
}

// shutdown stops reading, turns auditing off again if start turned it
// on, and closes the sockets. a.mu is held.
func (a *Auditor) shutdown() {
	if a.ctl < 0 {
		return
	}
	close(a.stop)
	<-a.done
	if a.enabledBy {
		// Off again, unless someone else's rules (another daemon
		// learning, an auditd) still want records.
		if rules, err := a.listRules(); err != nil || len(rules) > 0 {
			a.log.Info("kernel auditing left on: other audit rules remain", "rules", len(rules), "err", err)
		} else if err := a.setEnabled(0); err != nil {
			a.log.Warn("turn kernel auditing off again", "err", err)
		}
		a.enabledBy = false
	}
	unix.Close(a.ctl)
	unix.Close(a.mc)
	a.ctl, a.mc = -1, -1
	if n := a.lost.Swap(0); n > 0 {
		a.log.Info("audit records of processes gone before they were read, not reported", "count", n)
	}
}

// request sends one audit request and waits for its acknowledgement.
func (a *Auditor) request(typ uint16, payload []byte) error {
	_, err := a.exchange(typ, payload, unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	return err
}

// exchange sends a message and returns the first reply that is not an
// acknowledgement (nil when there is none).
func (a *Auditor) exchange(typ uint16, payload []byte, flags uint16) ([]byte, error) {
	b := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(payload))
	*(*unix.NlMsghdr)(unsafe.Pointer(&b[0])) = unix.NlMsghdr{Len: uint32(unix.NLMSG_HDRLEN + len(payload)), Type: typ, Flags: flags, Seq: 1}
	b = append(b, payload...)
	if err := unix.Sendto(a.ctl, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, err
	}
	buf := make([]byte, 16<<10)
	var data []byte
	for {
		n, _, err := unix.Recvfrom(a.ctl, buf, 0)
		if err != nil {
			return data, err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return data, err
		}
		for _, m := range msgs {
			if m.Header.Type == unix.NLMSG_ERROR {
				if len(m.Data) >= 4 {
					if e := int32(binary.NativeEndian.Uint32(m.Data[:4])); e != 0 {
						return data, syscall.Errno(-e)
					}
				}
				if flags&unix.NLM_F_ACK != 0 {
					return data, nil
				}
				continue
			}
			data = append([]byte(nil), m.Data...)
			if flags&unix.NLM_F_ACK == 0 {
				return data, nil
			}
		}
	}
}

// enabled reads the kernel's audit_status.enabled (0 off, 1 on, 2 locked).
func (a *Auditor) enabled() (uint32, error) {
	data, err := a.exchange(auditGet, nil, unix.NLM_F_REQUEST)
	if err != nil {
		return 0, err
	}
	if len(data) < 8 {
		return 0, errors.New("short audit status")
	}
	return binary.NativeEndian.Uint32(data[4:8]), nil
}

func (a *Auditor) setEnabled(v uint32) error {
	st := make([]byte, 40) // struct audit_status, up to backlog_wait_time
	binary.NativeEndian.PutUint32(st[0:], auditStatusEnabled)
	binary.NativeEndian.PutUint32(st[4:], v)
	return a.request(auditSet, st)
}

// rule is the audit_rule_data of uid's rule: on exit from the audited
// calls, this architecture, uid, failures only, this auditor's key.
func (a *Auditor) rule(uid int) []byte {
	const head = 3 * 4
	size := head + 4*auditBitmaskSize + 3*4*auditMaxFields + 4
	b := make([]byte, size, size+len(a.key))
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], auditFilterExit)
	ne.PutUint32(b[4:], auditAlways)
	mask := b[head : head+4*auditBitmaskSize]
	for nr := range syscalls {
		w := nr / 32
		ne.PutUint32(mask[w*4:], ne.Uint32(mask[w*4:])|1<<(nr%32))
	}
	off := head + 4*auditBitmaskSize
	fields, values, ops := b[off:off+4*auditMaxFields], b[off+4*auditMaxFields:off+8*auditMaxFields], b[off+8*auditMaxFields:off+12*auditMaxFields]
	n := 0
	add := func(field, value uint32) {
		ne.PutUint32(fields[n*4:], field)
		ne.PutUint32(values[n*4:], value)
		ne.PutUint32(ops[n*4:], auditEqual)
		n++
	}
	add(auditFieldArch, auditArch)
	add(auditFieldUID, uint32(uid))
	add(auditFieldSuccess, 0) // 0: the call failed
	add(auditFieldKey, uint32(len(a.key)))
	ne.PutUint32(b[8:], uint32(n))
	ne.PutUint32(b[off+12*auditMaxFields:], uint32(len(a.key)))
	return append(b, a.key...)
}

// read assembles the records of each audited call from the multicast
// group and reports the refusals of watched uids, until stop.
func (a *Auditor) read(fd int, stop, done chan struct{}) {
	defer close(done)
	buf := make([]byte, 1<<16)
	pending := map[uint64]*event{}
	born := map[uint64]time.Time{}
	finish := func(serial uint64) {
		e := pending[serial]
		delete(pending, serial)
		delete(born, serial)
		if d, ok := e.denial(syscalls); ok {
			ppid, _ := strconv.Atoi(e.syscall.fields["ppid"])
			a.deliver(d, ppid)
		}
	}
	for {
		select {
		case <-stop:
			return
		default:
		}
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err == nil {
			for _, m := range splitMessages(buf[:n]) {
				r, ok := parseRecord(m.typ, string(trimNUL(m.data)))
				if !ok {
					continue
				}
				e := pending[r.serial]
				if e == nil {
					if m.typ == auditEOE {
						continue
					}
					e = &event{}
					pending[r.serial] = e
					born[r.serial] = time.Now()
				}
				switch m.typ {
				case auditSyscall:
					rr := r
					e.syscall = &rr
				case auditCwd:
					e.cwd = r.fields["cwd"]
				case auditPath:
					e.paths = append(e.paths, r)
				case auditEOE:
					finish(r.serial)
				}
			}
		}
		// Records without an end-of-event mark are complete soon after.
		for s, t := range born {
			if time.Since(t) > 200*time.Millisecond {
				finish(s)
			}
		}
	}
}

type message struct {
	typ  uint16
	data []byte
}

// splitMessages splits a netlink datagram into messages. Unlike
// syscall.ParseNetlinkMessage it takes a last message whose length is not
// padded to 4 bytes, as the kernel sends audit records.
func splitMessages(b []byte) []message {
	var out []message
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		typ := binary.NativeEndian.Uint16(b[4:6])
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			break
		}
		out = append(out, message{typ: typ, data: b[unix.NLMSG_HDRLEN:l]})
		next := (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1)
		if next >= len(b) {
			break
		}
		b = b[next:]
	}
	return out
}

func trimNUL(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}

// deliver reports d to the watch of its uid, if the process lives in the
// watched pid namespace; a process gone by now (a short-lived child) is
// placed by its parent.
func (a *Auditor) deliver(d Denial, ppid int) {
	a.wmu.RLock()
	w := a.watches[d.UID]
	var want uint64
	var report func(Denial)
	if w != nil {
		want, report = w.pidns, w.report
	}
	a.wmu.RUnlock()
	if w == nil {
		return
	}
	ns, err := pidNS(d.PID)
	if err != nil && ppid > 1 {
		ns, err = pidNS(ppid)
	}
	if err != nil {
		a.lost.Add(1)
		return
	}
	if ns != want {
		return
	}
	report(d)
}

// PidNS returns the inode of the pid namespace of process pid: a watch's
// pidns for a sandbox whose init (pid 1 of its namespace) is pid.
func PidNS(pid int) (uint64, error) { return pidNS(pid) }

func pidNS(pid int) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+strconv.Itoa(pid)+"/ns/pid", &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// Probe reports whether this host lets a daemon read audit records.
func Probe() error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_AUDIT)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	return unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, auditNLGrpReadlog)
}

// Cleanup removes the rules an earlier run of this daemon left (it was
// killed while agents learned): the kernel keeps audit rules until they
// are deleted. Auditing itself is left as it is: whether that run turned
// it on is not known. A host without the audit socket has nothing to
// clean.
func (a *Auditor) Cleanup() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ctl >= 0 {
		return nil // watching: the rules are ours
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_AUDIT)
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil
	}
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5})
	a.ctl = fd
	defer func() { a.ctl = -1 }()
	rules, err := a.listRules()
	if err != nil {
		return err
	}
	var ours [][]byte
	for _, r := range rules {
		if ruleStrings(r) == a.key {
			ours = append(ours, r)
		}
	}
	for _, r := range ours {
		if err := a.request(auditDelRule, r); err != nil {
			return fmt.Errorf("remove a leftover audit rule: %w", err)
		}
	}
	if len(ours) > 0 {
		a.log.Info("removed audit rules an earlier run left", "count", len(ours))
	}
	return nil
}

// listRules returns the kernel's audit rules (audit_rule_data each).
func (a *Auditor) listRules() ([][]byte, error) {
	b := make([]byte, unix.NLMSG_HDRLEN)
	*(*unix.NlMsghdr)(unsafe.Pointer(&b[0])) = unix.NlMsghdr{Len: unix.NLMSG_HDRLEN, Type: auditListRules, Flags: unix.NLM_F_REQUEST | unix.NLM_F_DUMP, Seq: 2}
	if err := unix.Sendto(a.ctl, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("list audit rules: %w", err)
	}
	var rules [][]byte
	buf := make([]byte, 64<<10)
	for {
		n, _, err := unix.Recvfrom(a.ctl, buf, 0)
		if err != nil {
			return nil, fmt.Errorf("list audit rules: %w", err)
		}
		for _, m := range splitMessages(buf[:n]) {
			switch m.typ {
			case unix.NLMSG_DONE, unix.NLMSG_ERROR:
				return rules, nil
			case auditListRules:
				rules = append(rules, append([]byte(nil), m.data...))
			}
		}
	}
}

// ruleStrings returns the string buffer of an audit_rule_data: for this
// package's rules, whose one string field is the key, the key.
func ruleStrings(d []byte) string {
	off := 3*4 + 4*auditBitmaskSize + 12*auditMaxFields
	if len(d) < off+4 {
		return ""
	}
	n := int(binary.NativeEndian.Uint32(d[off:]))
	if off+4+n > len(d) {
		return ""
	}
	return string(d[off+4 : off+4+n])
}
