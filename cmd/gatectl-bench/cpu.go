package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuTime is CPU time spent in user space and in the kernel.
type cpuTime struct{ user, sys time.Duration }

func (c cpuTime) total() time.Duration { return c.user + c.sys }

func (c cpuTime) sub(d cpuTime) cpuTime { return cpuTime{c.user - d.user, c.sys - d.sys} }

// cpuClock reads the CPU time a proxy process has used so far.
type cpuClock func() (cpuTime, error)

// selfCPU is this process's CPU time: the gateway runs in it, and during a
// pgbench round it does nothing else.
func selfCPU() (cpuTime, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return cpuTime{}, fmt.Errorf("getrusage: %w", err)
	}
	return cpuTime{time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())}, nil
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat; it
// is 100 on every Linux architecture Go supports.
const clockTicks = 100

// procStat is what the benchmark reads from one /proc/PID/stat: the parent's
// PID, and CPU time the process used itself and that of its children it
// has reaped.
type procStat struct {
	ppid        int
	own, reaped cpuTime
}

// parseProcStat reads ppid, utime, stime, cutime and cstime from the text
// of /proc/PID/stat. The command name (field 2) may hold spaces and
// parentheses, so fields are counted from its closing parenthesis.
func parseProcStat(stat string) (procStat, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("unexpected /proc stat format")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state), f[1] the ppid; utime, stime, cutime and
	// cstime are fields 14 to 17.
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("unexpected /proc stat format: %d fields", len(f)+2)
	}
	var n [5]int64
	for j, k := range []int{1, 11, 12, 13, 14} {
		v, err := strconv.ParseInt(f[k], 10, 64)
		if err != nil {
			return procStat{}, fmt.Errorf("unexpected /proc stat format: %w", err)
		}
		n[j] = v
	}
	tick := func(v int64) time.Duration { return time.Duration(v) * time.Second / clockTicks }
	return procStat{ppid: int(n[0]), own: cpuTime{tick(n[1]), tick(n[2])}, reaped: cpuTime{tick(n[3]), tick(n[4])}}, nil
}

// readProcStat reads and parses a /proc/PID/stat file.
func readProcStat(path string) (procStat, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(string(b))
}

func statPath(pid int) string { return "/proc/" + strconv.Itoa(pid) + "/stat" }

// procCPU is another process's CPU time from /proc/PID/stat.
func procCPU(pid int) cpuClock {
	return func() (cpuTime, error) {
		st, err := readProcStat(statPath(pid))
		return st.own, err
	}
}

// serverCPU is the CPU time of a PostgreSQL server so far: the postmaster's
// own, that of its children still running (backends and helpers), and that
// of the children it has reaped. The difference of two readings is the
// server's CPU time in between, whether its backends lasted the whole
// interval (pgbouncer's pool) or began and ended in it.
func serverCPU(postmaster int) cpuClock {
	return func() (cpuTime, error) {
		// A child reaped while the children are listed would count in
		// neither part; backends end just as pgbench does, so the reading
		// is taken again until the reaped time holds still around it.
		for try := 0; ; try++ {
			pm, err := readProcStat(statPath(postmaster))
			if err != nil {
				return cpuTime{}, err
			}
			total := cpuTime{pm.own.user + pm.reaped.user, pm.own.sys + pm.reaped.sys}
			stats, _ := filepath.Glob("/proc/[0-9]*/stat")
			for _, p := range stats {
				// An error is a process that ended and was reaped since
				// the listing: the postmaster's reaped time has it.
				st, err := readProcStat(p)
				if err != nil || st.ppid != postmaster {
					continue
				}
				total.user += st.own.user
				total.sys += st.own.sys
			}
			again, err := readProcStat(statPath(postmaster))
			if err != nil {
				return cpuTime{}, err
			}
			if again.reaped == pm.reaped {
				return total, nil
			}
			if try == 20 {
				return cpuTime{}, errors.New("PostgreSQL's processes kept ending while its CPU time was read")
			}
		}
	}
}

// cpuIdle reads how long the machine's CPUs have been idle, and their total
// time, from the first line of /proc/stat (in USER_HZ ticks: only the ratio
// of two differences is used).
func cpuIdle() (idle, total int64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	// cpu user nice system idle iowait irq softirq steal …
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("unexpected /proc/stat format")
	}
	for i, s := range f[1:9] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("unexpected /proc/stat format: %w", err)
		}
		total += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	return idle, total, nil
}

// systemReading is the CPU time of the benchmark's PostgreSQL and the
// machine's idle and total time at one moment.
type systemReading struct {
	server      cpuTime
	idle, total int64
}

// readSystem reads the benchmark's PostgreSQL and the machine's CPUs; it
// fails where /proc does not tell (not Linux).
func (b *bench) readSystem() (systemReading, error) {
	if b.server == nil {
		return systemReading{}, errors.New("the PostgreSQL server's CPU time is unknown")
	}
	srv, err := b.server()
	if err != nil {
		return systemReading{}, err
	}
	idle, total, err := cpuIdle()
	return systemReading{server: srv, idle: idle, total: total}, err
}

// since is what happened between r0 and r over txns transactions of a
// pgbench run that ended as ps says.
func (r systemReading) since(r0 systemReading, ps *os.ProcessState, txns int64) *othersPerTxn {
	o := &othersPerTxn{
		server: r.server.sub(r0.server).total() / time.Duration(txns),
		client: (ps.UserTime() + ps.SystemTime()) / time.Duration(txns),
	}
	if d := r.total - r0.total; d > 0 {
		o.idle = float64(r.idle-r0.idle) / float64(d)
	}
	return o
}

// postmasterPID reads the postmaster's PID from the first line of
// postmaster.pid in the data directory.
func postmasterPID(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strconv.Atoi(strings.TrimSpace(line))
}
