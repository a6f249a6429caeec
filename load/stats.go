package load

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// samples collects durations (as float64 milliseconds) for percentiles.
type samples struct {
	mu     sync.Mutex
	all    []float64
	window []float64 // since the last progress line
}

func (s *samples) add(d time.Duration) {
	ms := float64(d) / 1e6
	s.mu.Lock()
	s.all = append(s.all, ms)
	s.window = append(s.window, ms)
	s.mu.Unlock()
}

// takeWindow returns and resets the samples since the last call.
func (s *samples) takeWindow() []float64 {
	s.mu.Lock()
	w := s.window
	s.window = nil
	s.mu.Unlock()
	return w
}

func (s *samples) snapshot() []float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.all)
}

// percentile returns the p-th percentile (0 < p ≤ 100) of xs by the
// nearest-rank method; xs is sorted in place. Zero for no samples.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	if !slices.IsSorted(xs) {
		slices.Sort(xs)
	}
	rank := int(p/100*float64(len(xs))+0.999999999) - 1
	rank = max(0, min(rank, len(xs)-1))
	return xs[rank]
}

// LagTracker measures delivery lag: the time from sending a case to its
// receiver answering its delivery. The load generator tells it what it
// sent (by exchange id, from the receipt); wrapped receivers tell it what
// arrived (by Idempotency-Key, which is the exchange id of a case).
type LagTracker struct {
	mu      sync.Mutex
	sent    map[string]time.Time
	early   map[string]time.Time // delivered before the receipt was read
	lags    samples
	arrived int64
}

// NewLagTracker returns an empty tracker.
func NewLagTracker() *LagTracker {
	return &LagTracker{sent: map[string]time.Time{}, early: map[string]time.Time{}}
}

// Sent records that the case of exchange id was sent at.
func (t *LagTracker) Sent(id string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if got, ok := t.early[id]; ok {
		delete(t.early, id)
		t.lags.add(got.Sub(at))
		return
	}
	t.sent[id] = at
}

// Delivered records that the receiver took in the case of exchange id at.
func (t *LagTracker) Delivered(id string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.arrived++
	if sent, ok := t.sent[id]; ok {
		delete(t.sent, id)
		t.lags.add(at.Sub(sent))
		return
	}
	t.early[id] = at
}

// Pending is the number of cases sent and not delivered yet.
func (t *LagTracker) Pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.sent)
}

// Arrived is the number of case deliveries taken in.
func (t *LagTracker) Arrived() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.arrived
}

// Wrap returns h recording, for each POST …/cases answered 200 (an
// acknowledgement), its Idempotency-Key as delivered when the answer was
// written. Repeats of a key are not counted again.
func (t *LagTracker) Wrap(h http.Handler) http.Handler {
	var mu sync.Mutex
	seen := map[string]bool{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		key := r.Header.Get("Idempotency-Key")
		if sw.status != http.StatusOK || r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/cases") || key == "" {
			return
		}
		now := time.Now()
		mu.Lock()
		dup := seen[key]
		seen[key] = true
		mu.Unlock()
		if !dup {
			t.Delivered(key, now)
		}
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}
