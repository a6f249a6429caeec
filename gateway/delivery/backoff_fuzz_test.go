package delivery

import (
	"testing"
	"time"
)

// FuzzBackoffDelay: whatever the settings and the attempt, a delay is
// never negative nor above Max, and without jitter it never shrinks from
// one attempt to the next.
func FuzzBackoffDelay(f *testing.F) {
	f.Add(int64(time.Second), int64(10*time.Minute), 0.2, 12)
	f.Add(int64(1), int64(1), 0.0, 1)
	f.Add(int64(time.Hour), int64(time.Hour), 1.0, 1000)
	f.Fuzz(func(t *testing.T, initial, max int64, jitter float64, attempt int) {
		if initial <= 0 || max < initial || attempt < 1 || attempt > 1<<20 || jitter != jitter {
			return
		}
		b := Backoff{Initial: time.Duration(initial), Max: time.Duration(max), Jitter: jitter}
		d := b.Delay(attempt)
		if d < 0 || d > b.Max {
			t.Fatalf("Delay(%d) = %s with %+v", attempt, d, b)
		}
		plain := Backoff{Initial: b.Initial, Max: b.Max}
		if plain.Delay(attempt+1) < plain.Delay(attempt) {
			t.Fatalf("delay shrank after attempt %d", attempt)
		}
	})
}
