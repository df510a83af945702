package egress

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/cortexrt/cortex/internal/errdefs"
	"golang.org/x/sys/unix"
)

// Probe reports whether the host supports what ServeNetns needs: network
// namespaces, netlink route changes, nftables nat/redir/reject/log in a
// namespace and NFLOG. It serves a gateway with an empty policy to a
// throwaway namespace (the one place this package creates one) and tears it
// down. For doctor and for refusing to start agents when it fails.
func Probe() error {
	if os.Geteuid() != 0 {
		return errdefs.WithHint(errdefs.New(errdefs.PermissionDenied, "egress gateway needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN)"),
			"run cortexd as root")
	}
	fd, err := newNetns()
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	g, err := New(Config{}, nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := g.ServeNetns(ctx, fd, NetnsOptions{})
	if err != nil {
		return fmt.Errorf("egress probe: %w", err)
	}
	return a.Close()
}

// newNetns creates a network namespace and returns an fd for it, from a
// thread that is then discarded.
func newNetns() (int, error) {
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ch <- result{-1, errdefs.WithHint(errdefs.Wrap(errdefs.Unsupported, fmt.Errorf("create network namespace: %w", err)),
				"the kernel needs CONFIG_NET_NS and cortexd needs CAP_SYS_ADMIN")}
			return
		}
		fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- result{-1, fmt.Errorf("open new network namespace: %w", err)}
			return
		}
		ch <- result{fd, nil}
	}()
	r := <-ch
	return r.fd, r.err
}
