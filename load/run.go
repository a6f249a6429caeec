// Package load measures tongban end to end: a load generator that drives a
// gateway with signed, realistic cases of both districts and reports
// throughput, latency percentiles, errors by problem code and delivery lag,
// and the floor — the cryptography and policy one exchange cannot avoid,
// measured on the same machine in the same run — against which the
// throughput is judged (docs/performance.md).
package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ErrOptions: the run's options are inconsistent.
var ErrOptions = errors.New("load: invalid options")

// Options configures a [Run].
type Options struct {
	Generator *Generator
	// Client sends the requests (its transport trusts the gateway's TLS
	// certificate and allows Connections idle connections per host).
	Client *http.Client
	// Rate, when positive, sends that many requests per second on a fixed
	// schedule (latency counts from the scheduled time, so a stalled
	// gateway is not hidden by a stalled client); otherwise Connections
	// workers send as fast as answers come back.
	Rate float64
	// Connections is the number of concurrent requests (default 64; with a
	// Rate, the most in flight at once).
	Connections int
	// Duration and Count bound the run; at least one is required.
	Duration time.Duration
	Count    int
	// Lag, when set, is told each accepted exchange, for delivery lag; Drain
	// is how long to wait after the load for the deliveries still due
	// (default 30 s).
	Lag   *LagTracker
	Drain time.Duration
	// Progress, when set, receives a line every ProgressEvery (default 1 s).
	Progress      io.Writer
	ProgressEvery time.Duration
	// Extra, when set, is appended to each progress line (the gateway's RSS).
	Extra func() string
}

// Latency is a set of percentiles in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Lag is delivery-lag percentiles in milliseconds.
type Lag struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
}

// Report is the outcome of a run. Its JSON is the one object `tongban load
// --json` prints last.
type Report struct {
	Sent     int64            `json:"sent"`
	Accepted int64            `json:"accepted"`
	Errors   map[string]int64 `json:"errors"`
	// DurationS is from the first request sent to the last answer.
	DurationS float64 `json:"duration_s"`
	// ThroughputPerS is accepted exchanges per second.
	ThroughputPerS float64 `json:"throughput_per_s"`
	LatencyMS      Latency `json:"latency_ms"`
	DeliveryLagMS  Lag     `json:"delivery_lag_ms"`
	FloorPerS      float64 `json:"floor_per_s"`
	RatioToFloor   float64 `json:"ratio_to_floor"`

	// Replayed counts 200 answers (a case number already accepted with the
	// same body): neither accepted nor an error.
	Replayed int64 `json:"-"`
	// Unexpected counts answers that did not match the case's kind (an
	// allowed case refused, a denied one accepted…), by kind and code.
	Unexpected map[string]int64 `json:"-"`
	// Delivered is how many accepted cases reached their receiver (with a
	// Lag tracker), Undelivered how many had not when the drain ended.
	Delivered, Undelivered int64 `json:"-"`
	// DeliveredInRun is how many had reached their receiver when the last
	// answer came back, before the drain: far below Accepted means the
	// gateway accepted faster than it delivered, a rate the outbox could
	// not sustain.
	DeliveredInRun int64 `json:"-"`
	// SignedDuringRun is how many requests the client signed while the
	// load ran (not ahead of it).
	SignedDuringRun int64 `json:"-"`
}

// SetFloor fills the floor fields (ratio = throughput / floor).
func (r *Report) SetFloor(perSecond float64) {
	r.FloorPerS = perSecond
	if perSecond > 0 {
		r.RatioToFloor = r.ThroughputPerS / perSecond
	}
}

// Summary is a few human lines.
func (r *Report) Summary() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "sent %d, accepted %d (%.0f/s over %.1fs), replayed %d\n", r.Sent, r.Accepted, r.ThroughputPerS, r.DurationS, r.Replayed)
	fmt.Fprintf(&b, "accept latency ms: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n", r.LatencyMS.P50, r.LatencyMS.P90, r.LatencyMS.P99, r.LatencyMS.Max)
	if len(r.Errors) > 0 {
		fmt.Fprintf(&b, "refusals by code: %s\n", counts(r.Errors))
	}
	if len(r.Unexpected) > 0 {
		fmt.Fprintf(&b, "UNEXPECTED answers: %s\n", counts(r.Unexpected))
	}
	if r.Delivered+r.Undelivered > 0 {
		fmt.Fprintf(&b, "delivered %d (lag ms p50 %.1f, p99 %.1f), not delivered by the end of the drain %d\n",
			r.Delivered, r.DeliveryLagMS.P50, r.DeliveryLagMS.P99, r.Undelivered)
		fmt.Fprintf(&b, "delivered by the last answer %d of %d accepted (%.0f/s)\n", r.DeliveredInRun, r.Accepted, float64(r.DeliveredInRun)/max(r.DurationS, 1e-9))
		if r.Accepted > 0 && float64(r.DeliveredInRun) < 0.9*float64(r.Accepted) {
			fmt.Fprintf(&b, "WARNING: deliveries fell behind the accepted cases: the accepted rate is more than the gateway delivered; the outbox grew during the run\n")
		}
	}
	if r.FloorPerS > 0 {
		fmt.Fprintf(&b, "floor %.0f/s, throughput/floor %.3f\n", r.FloorPerS, r.RatioToFloor)
	}
	if r.SignedDuringRun > 0 {
		fmt.Fprintf(&b, "note: %d requests were signed during the run (beyond the pre-signed ones)\n", r.SignedDuringRun)
	}
	return b.String()
}

func counts(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", k, m[k])
	}
	return b.String()
}

// wantCode is the answer each kind should get.
var wantCode = [numKinds]string{Allowed: "", Denied: "policy_denied", Invalid: "validation_failed"}

// runner is one run's shared state.
type runner struct {
	o        Options
	sent     atomic.Int64
	accepted atomic.Int64
	replayed atomic.Int64
	latency  samples
	mu       sync.Mutex
	errors   map[string]int64
	unexp    map[string]int64
	stop     atomic.Bool
}

// Run drives the gateway until Duration has passed or Count requests were
// sent (or ctx ends), then waits for outstanding deliveries (with a Lag
// tracker) and reports.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Generator == nil || o.Client == nil {
		return nil, fmt.Errorf("%w: a generator and a client are required", ErrOptions)
	}
	if o.Duration <= 0 && o.Count <= 0 {
		return nil, fmt.Errorf("%w: a duration or a count is required", ErrOptions)
	}
	if o.Connections <= 0 {
		o.Connections = 64
	}
	if o.Drain <= 0 {
		o.Drain = 30 * time.Second
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = time.Second
	}
	r := &runner{o: o, errors: map[string]int64{}, unexp: map[string]int64{}}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if o.Duration > 0 {
		var c2 context.CancelFunc
		runCtx, c2 = context.WithTimeout(runCtx, o.Duration)
		defer c2()
	}

	begin := time.Now()
	progressDone := make(chan struct{})
	go func() { defer close(progressDone); r.progress(runCtx, begin) }()

	var last atomic.Int64 // unix nanos of the last answer
	var wg sync.WaitGroup
	var genErr error
	var genOnce sync.Once
	fail := func(err error) {
		genOnce.Do(func() { genErr = err })
		r.stop.Store(true)
		cancel()
	}
	// claim reserves one request of the Count, false when the run is over.
	claim := func() bool {
		if r.stop.Load() || runCtx.Err() != nil {
			return false
		}
		if n := r.sent.Add(1); o.Count > 0 && n > int64(o.Count) {
			r.sent.Add(-1)
			return false
		}
		return true
	}
	send := func(scheduled time.Time) {
		req, err := o.Generator.Next()
		if err != nil {
			fail(err)
			return
		}
		r.do(ctx, req, scheduled)
		last.Store(time.Now().UnixNano())
	}
	if o.Rate > 0 {
		tickets := make(chan time.Time, o.Connections)
		for range o.Connections {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for at := range tickets {
					send(at)
				}
			}()
		}
		interval := time.Duration(float64(time.Second) / o.Rate)
		next := time.Now()
	schedule:
		for claim() {
			if d := time.Until(next); d > 0 {
				select {
				case <-time.After(d):
				case <-runCtx.Done():
					r.sent.Add(-1)
					break schedule
				}
			}
			// A full channel blocks the schedule; the ticket keeps its
			// time, so the wait counts in its latency.
			tickets <- next
			next = next.Add(interval)
		}
		close(tickets)
	} else {
		for range o.Connections {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for claim() {
					send(time.Now())
				}
			}()
		}
	}
	wg.Wait()
	var deliveredInRun int64
	if o.Lag != nil {
		deliveredInRun = o.Lag.Arrived()
	}
	end := time.Unix(0, last.Load())
	if last.Load() == 0 {
		end = time.Now()
	}
	cancel()
	<-progressDone
	if genErr != nil {
		return nil, genErr
	}

	rep := &Report{
		Sent: r.sent.Load(), Accepted: r.accepted.Load(), Replayed: r.replayed.Load(),
		Errors: r.errors, Unexpected: r.unexp, DurationS: end.Sub(begin).Seconds(),
		SignedDuringRun: o.Generator.SignedDuringRun(), DeliveredInRun: deliveredInRun,
	}
	if rep.DurationS > 0 {
		rep.ThroughputPerS = float64(rep.Accepted) / rep.DurationS
	}
	lat := r.latency.snapshot()
	rep.LatencyMS = Latency{P50: percentile(lat, 50), P90: percentile(lat, 90), P99: percentile(lat, 99), Max: percentile(lat, 100)}
	if o.Lag != nil {
		r.drain(ctx, rep)
	}
	return rep, nil
}

// drain waits for the deliveries still due, then fills the lag fields.
func (r *runner) drain(ctx context.Context, rep *Report) {
	t := r.o.Lag
	deadline := time.Now().Add(r.o.Drain)
	for t.Pending() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	lags := t.lags.snapshot()
	rep.Delivered = int64(len(lags))
	rep.Undelivered = int64(t.Pending())
	rep.DeliveryLagMS = Lag{P50: percentile(lags, 50), P99: percentile(lags, 99)}
}

// do sends one request and records its answer.
func (r *runner) do(ctx context.Context, q *Request, scheduled time.Time) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, q.url, bytes.NewReader(q.Body()))
	if err != nil {
		r.count(q, "client_error")
		return
	}
	q.header(req.Header)
	resp, err := r.o.Client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			r.count(q, "transport")
		}
		return
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	answered := time.Now()
	if err != nil {
		r.count(q, "transport")
		return
	}
	switch resp.StatusCode {
	case http.StatusAccepted:
		r.latency.add(answered.Sub(scheduled))
		var rc struct {
			ExchangeID string `json:"exchangeId"`
		}
		if json.Unmarshal(body, &rc) != nil || rc.ExchangeID == "" {
			r.count(q, "bad_receipt")
			return
		}
		r.accepted.Add(1)
		if q.Kind != Allowed {
			r.unexpected(q, "accepted")
		}
		if r.o.Lag != nil {
			r.o.Lag.Sent(rc.ExchangeID, scheduled)
		}
	case http.StatusOK:
		r.replayed.Add(1)
	default:
		r.count(q, problemCode(resp.StatusCode, body))
	}
}

// count records a refusal by its problem code.
func (r *runner) count(q *Request, code string) {
	r.mu.Lock()
	r.errors[code]++
	r.mu.Unlock()
	if code != wantCode[q.Kind] {
		r.unexpected(q, code)
	}
}

func (r *runner) unexpected(q *Request, code string) {
	r.mu.Lock()
	r.unexp[q.Kind.String()+"→"+code]++
	r.mu.Unlock()
}

func problemCode(status int, body []byte) string {
	var p struct {
		Code string `json:"code"`
	}
	if json.Unmarshal(body, &p) == nil && p.Code != "" {
		return p.Code
	}
	return "http_" + strconv.Itoa(status)
}

// progress prints a line every ProgressEvery until ctx ends.
func (r *runner) progress(ctx context.Context, begin time.Time) {
	if r.o.Progress == nil {
		return
	}
	tick := time.NewTicker(r.o.ProgressEvery)
	defer tick.Stop()
	var lastAccepted int64
	lastAt := begin
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			acc := r.accepted.Load()
			w := r.latency.takeWindow()
			rate := float64(acc-lastAccepted) / now.Sub(lastAt).Seconds()
			lastAccepted, lastAt = acc, now
			r.mu.Lock()
			var errs int64
			for _, n := range r.errors {
				errs += n
			}
			r.mu.Unlock()
			line := fmt.Sprintf("%5.1fs sent %d accepted %d (%.0f/s) refused %d p50 %.1fms p99 %.1fms",
				now.Sub(begin).Seconds(), r.sent.Load(), acc, rate, errs, percentile(w, 50), percentile(w, 99))
			if r.o.Lag != nil {
				line += fmt.Sprintf(" delivered %d pending %d", r.o.Lag.Arrived(), r.o.Lag.Pending())
			}
			if r.o.Extra != nil {
				line += " " + r.o.Extra()
			}
			fmt.Fprintln(r.o.Progress, line)
		}
	}
}
