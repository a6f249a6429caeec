package sim

import (
	"errors"
	"testing"
	"time"

	"github.com/tongban/tongban/adapters"
)

func TestNumbering(t *testing.T) {
	day1 := time.Date(2026, 11, 27, 23, 59, 0, 0, cst)
	day2 := day1.Add(2 * time.Minute)
	tests := []struct {
		division        string
		first, max, utc string
	}{
		{adapters.DivisionNanhai, "440605202611270001", "440605202611279999", "440605202611280001"},
		{adapters.DivisionLiwan, "LW2026112700001", "LW2026112799999", "LW2026112800001"},
	}
	for _, tt := range tests {
		n, err := newNumbering(tt.division)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := n.assign(day1); got != tt.first {
			t.Errorf("%s first %s, want %s", tt.division, got, tt.first)
		}
		if got := n.format(day1, n.max()); got != tt.max {
			t.Errorf("%s last %s, want %s", tt.division, got, tt.max)
		}
		n.next = n.max()
		if _, err := n.assign(day1); err != nil {
			t.Fatalf("%s: the last number refused: %v", tt.division, err)
		}
		if _, err := n.assign(day1); !errors.Is(err, ErrNumbersExhausted) {
			t.Errorf("%s: past the last number: %v", tt.division, err)
		}
		// A new day (in UTC+8) starts again at 1.
		if got, _ := n.assign(day2); got != tt.utc {
			t.Errorf("%s: next day %s, want %s", tt.division, got, tt.utc)
		}
		// The day is the day in UTC+8, whatever zone the clock reports.
		if got := n.format(time.Date(2026, 11, 27, 16, 30, 0, 0, time.UTC), 1); got != tt.utc {
			t.Errorf("%s: 16:30 UTC numbered %s", tt.division, got)
		}
	}
	if _, err := newNumbering("440000"); err == nil {
		t.Error("unknown division numbered")
	}
}
