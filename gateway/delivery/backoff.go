package delivery

import (
	"math/rand/v2"
	"time"
)

// Backoff computes the durable wait between delivery attempts: Initial
// after the first failed attempt, doubling after each further one, never
// more than Max, shortened by a random part of at most Jitter (a fraction
// in [0, 1]) so that deliveries that failed together do not retry together.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
	Jitter  float64
	// rand returns a number in [0, 1); nil means math/rand/v2.
	rand func() float64
}

// Delay is the wait after the attempt-th failed attempt (attempt ≥ 1).
func (b Backoff) Delay(attempt int) time.Duration {
	d := b.Initial
	for i := 1; i < attempt && d < b.Max; i++ {
		d *= 2
	}
	if d > b.Max {
		d = b.Max
	}
	j := b.Jitter
	if j <= 0 || d <= 0 {
		return d
	}
	if j > 1 {
		j = 1
	}
	r := b.rand
	if r == nil {
		r = rand.Float64
	}
	return d - time.Duration(float64(d)*j*r())
}
