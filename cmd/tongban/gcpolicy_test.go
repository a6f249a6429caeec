package main

import (
	"math"
	"runtime/debug"
	"testing"
)

// TestGCPolicy: the defaults apply only where GOGC / GOMEMLIMIT are unset.
func TestGCPolicy(t *testing.T) {
	oldPercent := debug.SetGCPercent(100)
	oldLimit := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() {
		debug.SetGCPercent(oldPercent)
		debug.SetMemoryLimit(oldLimit)
	})
	cases := []struct {
		name             string
		env              map[string]string
		wantGOGC, wantML string
		percent          int
		limit            int64
	}{
		{"unset", nil, "400", "200MiB", defaultGCPercent, defaultMemoryLimit},
		{"GOGC set", map[string]string{"GOGC": "150"}, "150", "200MiB", 100, defaultMemoryLimit},
		{"GOMEMLIMIT set", map[string]string{"GOMEMLIMIT": "1GiB"}, "400", "1GiB", defaultGCPercent, math.MaxInt64},
		{"both set", map[string]string{"GOGC": "off", "GOMEMLIMIT": "off"}, "off", "off", 100, math.MaxInt64},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			debug.SetGCPercent(100)
			debug.SetMemoryLimit(math.MaxInt64)
			gogc, limit := applyGCPolicy(func(k string) string { return c.env[k] })
			if gogc != c.wantGOGC || limit != c.wantML {
				t.Errorf("reported %s %s, want %s %s", gogc, limit, c.wantGOGC, c.wantML)
			}
			if got := debug.SetGCPercent(100); got != c.percent {
				t.Errorf("GC percent %d, want %d", got, c.percent)
			}
			if got := debug.SetMemoryLimit(-1); got != c.limit {
				t.Errorf("memory limit %d, want %d", got, c.limit)
			}
		})
	}
}
