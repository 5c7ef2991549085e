//go:build !unix

package replay

import "time"

// cpuTime is unknown on this platform; records per CPU-second is then not reported.
func cpuTime() time.Duration { return 0 }
