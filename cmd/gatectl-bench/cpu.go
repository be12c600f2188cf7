package main

import (
	"fmt"
	"os"
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

// procCPU is another process's CPU time from /proc/PID/stat.
func procCPU(pid int) cpuClock {
	return func() (cpuTime, error) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return cpuTime{}, err
		}
		return parseProcStatCPU(string(b))
	}
}

// parseProcStatCPU returns utime and stime from the text of /proc/PID/stat.
// The command name (field 2) may hold spaces and parentheses, so fields are
// counted from its closing parenthesis.
func parseProcStatCPU(stat string) (cpuTime, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return cpuTime{}, fmt.Errorf("unexpected /proc stat format")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return cpuTime{}, fmt.Errorf("unexpected /proc stat format: %d fields", len(f)+2)
	}
	var ticks [2]int64
	for j, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return cpuTime{}, fmt.Errorf("unexpected /proc stat format: %w", err)
		}
		ticks[j] = n
	}
	return cpuTime{time.Duration(ticks[0]) * time.Second / clockTicks, time.Duration(ticks[1]) * time.Second / clockTicks}, nil
}
