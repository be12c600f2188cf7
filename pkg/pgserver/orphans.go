package pgserver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ownerFile, in a server's directory, holds the PID of the process that
// started it. A process killed before it could call Stop (a test binary hit
// by its timeout, kill -9) leaves its server running; the next Start finds
// it through this file and stops it.
const ownerFile = "owner.pid"

func (s *Server) writeOwner() error {
	return os.WriteFile(filepath.Join(s.Dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644)
}

// reapOrphans stops and removes the servers under base whose owner process
// is gone. It is best effort: a server it cannot stop is left alone.
func reapOrphans(base, bin string) {
	dirs, _ := filepath.Glob(filepath.Join(base, "gatectl-pg-*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue // starting right now, or not ours
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || alive(pid) {
			continue
		}
		orphan := &Server{Dir: dir, bin: bin, Port: -1}
		if owner, err := serverOwner(); err == nil {
			orphan.owner = owner
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err = orphan.run(ctx, "pg_ctl", "-D", filepath.Join(dir, "data"), "-m", "immediate", "-w", "stop")
		cancel()
		// pg_ctl fails when the server is already down; remove the
		// directory either way unless a server still holds it.
		if err == nil || !fileExists(filepath.Join(dir, "data", "postmaster.pid")) {
			os.RemoveAll(dir)
		}
	}
}

// alive reports whether a process with this PID exists.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
