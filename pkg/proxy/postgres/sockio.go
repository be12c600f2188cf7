//go:build !(linux && 386)

package postgres

import (
	"syscall"
	"unsafe"
)

// sockRecv and sockSend are one recvfrom and one sendto on a socket, with
// no flags and no address. They move the same bytes as read and write, but
// skip the file layer that a socket does not need (the position lock, the
// permission and notification hooks), as pgbouncer does; a perf profile
// of the event loop showed that layer's cost gone. The caller checks errno
// before n; p must not be empty.
func sockRecv(fd uintptr, p []byte) (n int, errno syscall.Errno) {
	r, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), 0, 0, 0)
	return int(r), errno
}

func sockSend(fd uintptr, p []byte) (n int, errno syscall.Errno) {
	r, _, errno := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), 0, 0, 0)
	return int(r), errno
}
