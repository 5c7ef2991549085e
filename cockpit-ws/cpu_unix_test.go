//go:build unix

package cockpit

import (
	"syscall"
	"time"
)

// ProcessCPU is the CPU time this process has used. Benchmarks report CPU per op besides wall
// time because the build machines are shared and wall time there says more about the
// neighbours than about the code.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
