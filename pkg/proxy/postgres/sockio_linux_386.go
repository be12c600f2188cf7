//go:build linux && 386

package postgres

import (
	"syscall"
	"unsafe"
)

// sockRecv and sockSend are read and write on linux/386, which reaches
// recvfrom and sendto only through socketcall (see sockio.go).
func sockRecv(fd uintptr, p []byte) (n int, errno syscall.Errno) {
	r, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(r), errno
}

func sockSend(fd uintptr, p []byte) (n int, errno syscall.Errno) {
	r, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(r), errno
}
