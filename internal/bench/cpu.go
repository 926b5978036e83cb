package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuTimes is CPU time used so far by this process (the engine, its
// handlers and the load generator) and by the PostgreSQL server. Unlike
// wall-clock figures it does not grow when other programs compete for the
// CPUs, so it tells what a step costs on a dedicated machine.
type cpuTimes struct {
	Go, PG time.Duration
	pg     map[int]time.Duration // per backend process
	ok     bool
}

const clockTick = 100 // USER_HZ on Linux

// cpu samples CPU time. PostgreSQL's share is that of the client backends
// (the processes that run the queries), not of autovacuum, the
// checkpointer or the WAL writer.
func (db *database) cpu() cpuTimes {
	t := cpuTimes{pg: map[int]time.Duration{}}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		t.Go = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	pid := postmasterPID(db.srv.DataDir())
	if pid <= 0 {
		return t
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return t
	}
	t.ok = true
	ppid := strconv.Itoa(pid)
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, ok := procStat(n)
		if !ok || len(f) < 15 || f[1] != ppid {
			continue
		}
		cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if !bytes.HasPrefix(cmd, []byte("postgres: postgres tasker_bench ")) {
			continue
		}
		t.pg[n] = ticks(f, 11, 12)
	}
	return t
}

// sub is the CPU used between o and t; backends that exited in between
// are missed (the bench's pools keep theirs open while measuring).
func (t cpuTimes) sub(o cpuTimes) cpuTimes {
	d := cpuTimes{Go: t.Go - o.Go, ok: t.ok && o.ok}
	for pid, v := range t.pg {
		d.PG += v - o.pg[pid]
	}
	return d
}

func postmasterPID(dataDir string) int {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	n, _ := strconv.Atoi(strings.TrimSpace(line))
	return n
}

// procStat returns the fields of /proc/pid/stat after the command name:
// index 0 is the state, 1 the parent pid, 11 and 12 utime and stime.
func procStat(pid int) ([]string, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, false
	}
	return strings.Fields(string(b[i+1:])), true
}

func ticks(f []string, idx ...int) time.Duration {
	var n int64
	for _, i := range idx {
		if i < len(f) {
			v, _ := strconv.ParseInt(f[i], 10, 64)
			n += v
		}
	}
	return time.Duration(n) * time.Second / clockTick
}
