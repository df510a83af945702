package auth

import (
	"context"
	"net"

	"golang.org/x/sys/unix"
)

// ConnContext is the API server's http.Server.ConnContext: on the unix
// socket it records the caller's SO_PEERCRED credentials. A connection
// without them is refused by the pipeline, never taken for root's.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	var cred *unix.Ucred
	cerr := raw.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if cerr != nil || err != nil || cred == nil {
		return ctx
	}
	return WithPeer(ctx, PeerCred{PID: int(cred.Pid), UID: int(cred.Uid), GID: int(cred.Gid)})
}
