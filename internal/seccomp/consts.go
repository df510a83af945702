package seccomp

// Linux ABI values the profile refers to. They are spelled out here rather than
// taken from golang.org/x/sys/unix so the profile is plain data on every
// platform (docs and `cortex inspect` list it anywhere); a Linux test checks
// each against unix. They are the same on amd64 and arm64.
const (
	cloneNewTime   = 0x00000080
	cloneNewNS     = 0x00020000
	cloneNewCgroup = 0x02000000
	cloneNewUTS    = 0x04000000
	cloneNewIPC    = 0x08000000
	cloneNewUser   = 0x10000000
	cloneNewPID    = 0x20000000
	cloneNewNet    = 0x40000000

	afUnix      = 1
	afInet      = 2
	afAX25      = 3
	afIPX       = 4
	afAppletalk = 5
	afNetROM    = 6
	afBridge    = 7
	afATMPVC    = 8
	afX25       = 9
	afInet6     = 10
	afROSE      = 11
	afDECnet    = 12
	afNetBEUI   = 13
	afSecurity  = 14
	afKey       = 15
	afNetlink   = 16

	sockRaw      = 3
	sockPacket   = 10
	sockTypeMask = 0xf

	netlinkRoute = 0

	tiocsti   = 0x5412
	tioclinux = 0x541c

	perLinux    = 0x0000000
	perLinux32  = 0x0000008
	perUname26  = 0x0020000
	perQuery    = 0xffffffff
	x32SysBit   = 0x40000000
	lower32Mask = 0xffffffff
)

// Errno values the actions return.
const (
	errnoEPERM  = 1
	errnoENOSYS = 38
)
