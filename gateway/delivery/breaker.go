package delivery

import (
	"sync"
	"time"
)

// BreakerState is the state of a partner's circuit breaker.
type BreakerState string

// Breaker states.
const (
	// BreakerClosed: deliveries to the partner flow.
	BreakerClosed BreakerState = "closed"
	// BreakerOpen: the partner failed too often in a row; its deliveries
	// wait, without counting an attempt, until the cool-down ends.
	BreakerOpen BreakerState = "open"
	// BreakerHalfOpen: the cool-down ended; one probe delivery is let
	// through, and its outcome closes or re-opens the breaker.
	BreakerHalfOpen BreakerState = "half-open"
)

// breaker is a consecutive-failure circuit breaker for one partner. A
// failure is the partner being unreachable or answering 5xx/429 (after the
// quick retries of one attempt); any other answer shows the partner is up
// and counts as a success, even if it is not an acknowledgement.
type breaker struct {
	threshold int
	cooldown  time.Duration

	mu        sync.Mutex
	failures  int
	openUntil time.Time
	probing   bool
}

func newBreaker(threshold int, cooldown time.Duration) *breaker {
	return &breaker{threshold: threshold, cooldown: cooldown}
}

// allow reports whether a delivery may be attempted at now. When it may
// not, retryAt is when to try again. A true answer in the half-open state
// makes the caller the probe: it must report success or failure.
func (b *breaker) allow(now time.Time, busy time.Duration) (ok bool, retryAt time.Time) {
	if b.threshold <= 0 {
		return true, time.Time{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failures < b.threshold {
		return true, time.Time{}
	}
	if now.Before(b.openUntil) {
		return false, b.openUntil
	}
	if b.probing {
		return false, now.Add(busy)
	}
	b.probing = true
	return true, time.Time{}
}

func (b *breaker) success() {
	b.mu.Lock()
	b.failures, b.probing = 0, false
	b.mu.Unlock()
}

func (b *breaker) failure(now time.Time) {
	b.mu.Lock()
	b.failures++
	b.probing = false
	if b.threshold > 0 && b.failures >= b.threshold {
		b.openUntil = now.Add(b.cooldown)
	}
	b.mu.Unlock()
}

// release ends a probe whose outcome says nothing about the partner (the
// worker was stopped mid-attempt).
func (b *breaker) release() {
	b.mu.Lock()
	b.probing = false
	b.mu.Unlock()
}

func (b *breaker) state(now time.Time) BreakerState {
	if b.threshold <= 0 {
		return BreakerClosed
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.failures < b.threshold:
		return BreakerClosed
	case now.Before(b.openUntil):
		return BreakerOpen
	default:
		return BreakerHalfOpen
	}
}
