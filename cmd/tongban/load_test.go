package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestLoadJSON: `tongban load --local --json` ends stdout with exactly one
// JSON object with the keys, floor and ratio filled.
func TestLoadJSON(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := dispatch(context.Background(), []string{"load", "--local", "--in-process", "--keep", t.TempDir(), "--count", "30",
		"--connections", "4", "--case-size", "4096", "--floor-time", "200ms", "--json"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	last := lines[len(lines)-1]
	var m map[string]any
	if err := json.Unmarshal([]byte(last), &m); err != nil {
		t.Fatalf("last line %q: %v", last, err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"accepted", "delivery_lag_ms", "duration_s", "errors", "floor_per_s", "latency_ms", "ratio_to_floor", "sent", "throughput_per_s"}
	if !reflect.DeepEqual(keys, want) {
		t.Fatalf("keys %v, want %v", keys, want)
	}
	if m["sent"].(float64) != 30 || m["accepted"].(float64) < 1 || m["floor_per_s"].(float64) <= 0 || m["ratio_to_floor"].(float64) <= 0 {
		t.Fatalf("report %s", last)
	}
	lat := m["latency_ms"].(map[string]any)
	for _, k := range []string{"p50", "p90", "p99", "max"} {
		if _, ok := lat[k]; !ok {
			t.Errorf("latency_ms has no %s", k)
		}
	}
	lag := m["delivery_lag_ms"].(map[string]any)
	if len(lag) != 2 || lag["p50"].(float64) <= 0 {
		t.Errorf("delivery_lag_ms %v", lag)
	}
	// The floor is measured before and after the load; the report's is
	// their mean, and the ratio is taken against it.
	var before, after, mean float64
	i := strings.Index(stderr.String(), "floor before ")
	if i < 0 {
		t.Fatalf("no floor before and after on stderr:\n%s", stderr.String())
	}
	if _, err := fmt.Sscanf(stderr.String()[i:], "floor before %f/s, after %f/s: mean %f/s", &before, &after, &mean); err != nil {
		t.Fatalf("floor line: %v\n%s", err, stderr.String()[i:])
	}
	floor := m["floor_per_s"].(float64)
	if math.Abs(floor-(before+after)/2) > 1 || math.Abs(floor-mean) > 1 {
		t.Errorf("floor_per_s %.1f; before %.0f, after %.0f, mean %.0f", floor, before, after, mean)
	}
	if r := m["throughput_per_s"].(float64) / floor; math.Abs(r-m["ratio_to_floor"].(float64)) > 1e-9 {
		t.Errorf("ratio_to_floor %v, throughput/floor %v", m["ratio_to_floor"], r)
	}
}

func TestLoadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"load", "--count", "1"},
		{"load", "--local", "--target", "https://x", "--count", "1"},
		{"load", "--local"},
		{"load", "--local", "--count", "1", "--mix", "allowed=0"},
		{"bench"},
	} {
		var out, errb bytes.Buffer
		if code := dispatch(context.Background(), args, &out, &errb); code == 0 {
			t.Errorf("%v: exit 0", args)
		}
	}
}
