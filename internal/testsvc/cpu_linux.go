package testsvc

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is the kernel's USER_HZ, the unit of /proc/PID/stat's CPU
// times: 100 on every Linux architecture Go supports.
const clockTicks = 100

// CPU is the user and system CPU time node i's running process has used
// so far; ok is false when it is not running or its stat cannot be read.
func (c *Cluster) CPU(i int) (d time.Duration, ok bool) {
	nd := c.Nodes[i]
	if nd.cmd == nil || nd.cmd.Process == nil {
		return 0, false
	}
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(nd.cmd.Process.Pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name, field 2, may hold spaces: count from after it.
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, true
}
