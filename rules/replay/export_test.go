package replay

import "time"

// cpuNow lets the benchmark measure CPU time the same way the replay does.
func CPUNow() time.Duration { return cpuTime() }
