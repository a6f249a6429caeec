package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/tongban/tongban/load"
)

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "floor" {
		fmt.Fprintln(stderr, "usage: tongban bench floor [--duration D] [--case-size BYTES] [--workers N] [--json]")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return 0
		}
		return 2
	}
	fs := newFlags("bench floor", "bench floor [flags]", stderr)
	duration := fs.Duration("duration", 3*time.Second, "how long to measure on all workers")
	caseSize := fs.Int("case-size", 20<<10, "size of a case body in bytes")
	workers := fs.Int("workers", 0, "goroutines (default: one per core)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if code, ok := parse(fs, args[1:]); !ok {
		return code
	}
	f, err := load.MeasureFloor(ctx, load.FloorOptions{Duration: *duration, CaseSize: *caseSize, Workers: *workers})
	if err != nil {
		return fail(stderr, "%v", err)
	}
	if !*asJSON {
		fmt.Fprintln(stdout, f)
		fmt.Fprintf(stdout, "per exchange: 3 SM2 verifies, 1 decision, 3 SM2 signs, SM3 of the case, the translated record, the acknowledgement and the receipt\n")
		return 0
	}
	b, err := json.Marshal(map[string]any{
		"floor_per_s": f.PerSecond, "workers": f.Workers, "exchanges": f.Exchanges, "elapsed_s": f.Elapsed.Seconds(),
		"sm2_verify_us": micros(f.Verify), "sm2_sign_us": micros(f.Sign), "decision_us": micros(f.Decide), "sm3_case_us": micros(f.SM3Case),
		"case_size": *caseSize,
	})
	if err != nil {
		return fail(stderr, "%v", err)
	}
	fmt.Fprintln(stdout, string(b))
	return 0
}

func micros(d time.Duration) float64 { return float64(d) / 1e3 }
