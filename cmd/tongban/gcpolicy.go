package main

import (
	"fmt"
	"runtime/debug"
	"strconv"
)

// Defaults of the collector for `tongban serve`: a gateway holds little
// live heap (tens of MiB) but allocates ~20 KiB bodies at every stage of
// an exchange, so Go's default GOGC=100 runs a collection every few
// hundred requests. A larger GOGC collects less often; the soft memory
// limit makes the collector work harder again before the process nears
// the 300 MiB RSS budget (docs/performance.md, "Third round"). The limit
// covers Go's memory only: the binary's mapped text (~30 MiB) and SQLite's
// page caches (~25 MiB) come on top, so at 256 MiB five minutes at full
// load ended at 322 MiB of RSS; at 200 MiB they stay below 300 MiB
// (docs/performance.md, "Current figures").
const (
	defaultGCPercent   = 400
	defaultMemoryLimit = 200 << 20
)

// applyGCPolicy sets the gateway's GC percent and soft memory limit unless
// the GOGC or GOMEMLIMIT environment variable is set (the runtime has then
// applied it already, and it wins). getenv is os.Getenv outside tests. It
// returns the settings in force, for the start-up log.
func applyGCPolicy(getenv func(string) string) (gogc, limit string) {
	gogc = getenv("GOGC")
	if gogc == "" {
		debug.SetGCPercent(defaultGCPercent)
		gogc = strconv.Itoa(defaultGCPercent)
	}
	limit = getenv("GOMEMLIMIT")
	if limit == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
		limit = fmt.Sprintf("%dMiB", defaultMemoryLimit>>20)
	}
	return gogc, limit
}
