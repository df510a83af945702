package seccomp

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestConstantsMatchLinux(t *testing.T) {
	tests := []struct {
		name      string
		got, want uint64
	}{
		{"CLONE_NEWTIME", cloneNewTime, unix.CLONE_NEWTIME},
		{"CLONE_NEWNS", cloneNewNS, unix.CLONE_NEWNS},
		{"CLONE_NEWCGROUP", cloneNewCgroup, unix.CLONE_NEWCGROUP},
		{"CLONE_NEWUTS", cloneNewUTS, unix.CLONE_NEWUTS},
		{"CLONE_NEWIPC", cloneNewIPC, unix.CLONE_NEWIPC},
		{"CLONE_NEWUSER", cloneNewUser, unix.CLONE_NEWUSER},
		{"CLONE_NEWPID", cloneNewPID, unix.CLONE_NEWPID},
		{"CLONE_NEWNET", cloneNewNet, unix.CLONE_NEWNET},
		{"AF_UNIX", afUnix, unix.AF_UNIX},
		{"AF_INET", afInet, unix.AF_INET},
		{"AF_AX25", afAX25, unix.AF_AX25},
		{"AF_IPX", afIPX, unix.AF_IPX},
		{"AF_APPLETALK", afAppletalk, unix.AF_APPLETALK},
		{"AF_NETROM", afNetROM, unix.AF_NETROM},
		{"AF_BRIDGE", afBridge, unix.AF_BRIDGE},
		{"AF_ATMPVC", afATMPVC, unix.AF_ATMPVC},
		{"AF_X25", afX25, unix.AF_X25},
		{"AF_INET6", afInet6, unix.AF_INET6},
		{"AF_ROSE", afROSE, unix.AF_ROSE},
		{"AF_DECnet", afDECnet, unix.AF_DECnet},
		{"AF_NETBEUI", afNetBEUI, unix.AF_NETBEUI},
		{"AF_SECURITY", afSecurity, unix.AF_SECURITY},
		{"AF_KEY", afKey, unix.AF_KEY},
		{"AF_NETLINK", afNetlink, unix.AF_NETLINK},
		{"SOCK_RAW", sockRaw, unix.SOCK_RAW},
		{"SOCK_PACKET", sockPacket, unix.SOCK_PACKET},
		{"NETLINK_ROUTE", netlinkRoute, unix.NETLINK_ROUTE},
		{"TIOCSTI", tiocsti, unix.TIOCSTI},
		{"TIOCLINUX", tioclinux, unix.TIOCLINUX},
		{"EPERM", errnoEPERM, uint64(unix.EPERM)},
		{"ENOSYS", errnoENOSYS, uint64(unix.ENOSYS)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("%s = %#x here, %#x in x/sys/unix", tc.name, tc.got, tc.want)
			}
		})
	}
}
