package delivery

import (
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Initial: time.Second, Max: 10 * time.Minute}
	tests := []struct {
		attempt int
		want    time.Duration
	}{
		{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {10, 512 * time.Second},
		{11, 10 * time.Minute}, {12, 10 * time.Minute}, {1000, 10 * time.Minute},
	}
	for _, tt := range tests {
		if got := b.Delay(tt.attempt); got != tt.want {
			t.Errorf("Delay(%d) = %s, want %s", tt.attempt, got, tt.want)
		}
	}
}

func TestBackoffJitter(t *testing.T) {
	for _, r := range []float64{0, 0.5, 0.999} {
		b := Backoff{Initial: time.Second, Max: 10 * time.Minute, Jitter: 0.2, rand: func() float64 { return r }}
		got := b.Delay(3)
		want := 4*time.Second - time.Duration(float64(4*time.Second)*0.2*r)
		if got != want {
			t.Errorf("r=%v: Delay(3) = %s, want %s", r, got, want)
		}
	}
	// With the real source, every delay stays within [d·(1−j), d].
	b := Backoff{Initial: time.Second, Max: 10 * time.Minute, Jitter: 0.2}
	for range 1000 {
		if d := b.Delay(12); d > 10*time.Minute || d < 8*time.Minute {
			t.Fatalf("Delay(12) = %s outside [8m, 10m]", d)
		}
	}
}

func TestBreaker(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	b := newBreaker(2, time.Minute)
	if ok, _ := b.allow(t0, time.Second); !ok || b.state(t0) != BreakerClosed {
		t.Fatal("a new breaker is not closed")
	}
	b.failure(t0)
	if ok, _ := b.allow(t0, time.Second); !ok {
		t.Fatal("one failure opened the breaker")
	}
	b.failure(t0)
	ok, at := b.allow(t0.Add(time.Second), time.Second)
	if ok || !at.Equal(t0.Add(time.Minute)) || b.state(t0) != BreakerOpen {
		t.Fatalf("after two failures: allow %v until %s, state %s", ok, at, b.state(t0))
	}
	// Half-open: one probe at a time.
	t1 := t0.Add(time.Minute)
	if b.state(t1) != BreakerHalfOpen {
		t.Fatalf("state %s after the cool-down", b.state(t1))
	}
	if ok, _ := b.allow(t1, time.Second); !ok {
		t.Fatal("no probe after the cool-down")
	}
	if ok, at := b.allow(t1, time.Second); ok || !at.Equal(t1.Add(time.Second)) {
		t.Fatalf("a second probe was let through (or retry at %s)", at)
	}
	b.failure(t1)
	if ok, _ := b.allow(t1.Add(time.Second), time.Second); ok {
		t.Fatal("a failed probe did not re-open the breaker")
	}
	t2 := t1.Add(time.Minute)
	if ok, _ := b.allow(t2, time.Second); !ok {
		t.Fatal("no probe after the second cool-down")
	}
	b.success()
	if ok, _ := b.allow(t2, time.Second); !ok || b.state(t2) != BreakerClosed {
		t.Fatal("a successful probe did not close the breaker")
	}
	// Disabled.
	d := newBreaker(-1, time.Minute)
	for range 10 {
		d.failure(t0)
	}
	if ok, _ := d.allow(t0, time.Second); !ok {
		t.Fatal("a disabled breaker opened")
	}
}
