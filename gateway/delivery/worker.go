// Package delivery is tongban's outbox worker: it claims due deliveries from
// the store, POSTs each to its partner signed with the gateway key, and
// records the outcome — delivered or refused with the partner's signed
// acknowledgement in the exchange log, or retried with a durable backoff
// until the limit, then dead until an administrator re-drives it.
//
// The contracts are gateway-api.md ("Delivery to partners"), signing.md
// ("Signed responses") and exchange-log.md (delivered, refused_by_partner,
// dead and redriven entries).
//
// Within one attempt, transport failures and 5xx/429 answers are retried
// quickly by [go-retryablehttp], every HTTP request signed anew (fresh
// created and nonce; the Idempotency-Key stays). Between attempts the wait
// is stored with the row, so a restarted gateway resumes where it was.
// A circuit breaker per partner and a concurrency limit per partner keep
// one unreachable partner from starving the other.
//
// [go-retryablehttp]: https://github.com/hashicorp/go-retryablehttp
package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/gateway/exchangelog"
	"github.com/tongban/tongban/gateway/store"
	"github.com/tongban/tongban/httpsig"
)

// Defaults of [Options] (gateway-api.md: 12 attempts, 1 s doubling to
// 10 min, with jitter).
const (
	DefaultMaxAttempts      = 12
	DefaultInitialBackoff   = time.Second
	DefaultMaxBackoff       = 10 * time.Minute
	DefaultJitter           = 0.2
	DefaultConcurrency      = 16
	DefaultAttemptTimeout   = 30 * time.Second
	DefaultQuickRetries     = 2
	DefaultQuickRetryMin    = 200 * time.Millisecond
	DefaultQuickRetryMax    = 2 * time.Second
	DefaultPollInterval     = time.Second
	DefaultBreakerThreshold = 5
	DefaultBreakerCooldown  = 30 * time.Second
	DefaultMaxAckBytes      = 1 << 20
)

// Errors.
var (
	// ErrConfig: the options are incomplete or inconsistent.
	ErrConfig = errors.New("delivery: invalid options")
	// ErrNotDead: a re-drive of a delivery that is not dead (wraps
	// store.ErrConflict).
	ErrNotDead = fmt.Errorf("delivery: not dead: %w", store.ErrConflict)
)

// Partner is a district system deliveries go to.
type Partner struct {
	// Division is the partner's division code; deliveries whose To is this
	// division go to this partner, and its acknowledgements must be signed
	// by a partner key of this division.
	Division string
	// Endpoint is the partner's base URL: cases are POSTed to
	// Endpoint + "/cases", status updates to Endpoint + "/status".
	Endpoint string
	// Codec gives the Content-Type of the records delivered and decodes the
	// partner's acknowledgements.
	Codec adapters.Codec
}

// Options configures a [Worker]. Store, Signer, Trust and Partners are
// required; every other field has a default when zero.
type Options struct {
	Store store.Store
	// Signer is the gateway's key: it signs every delivery request.
	Signer *certs.Signer
	// Trust finds the key that signed an acknowledgement; it must be a
	// partner key of the division the delivery was addressed to.
	Trust    *certs.TrustStore
	Partners []Partner
	// HTTPClient carries the requests (TLS configuration, proxies). Its
	// Timeout should be zero: AttemptTimeout bounds an attempt. Its
	// transport should keep as many idle connections per partner as
	// Concurrency, or connections are closed and dialled again under load.
	// Default: http.DefaultTransport's settings keeping Concurrency idle
	// connections per partner.
	HTTPClient *http.Client

	MaxAttempts    int           // attempts before a delivery is dead (12)
	InitialBackoff time.Duration // wait after the first failed attempt (1 s)
	MaxBackoff     time.Duration // the longest wait (10 min)
	// Jitter is the largest fraction by which a wait is shortened at
	// random (0.2); negative means none.
	Jitter float64

	// Concurrency is the number of deliveries in flight per partner (16).
	Concurrency int
	// AttemptTimeout bounds one attempt, its quick retries included (30 s).
	AttemptTimeout time.Duration
	// QuickRetries is the number of quick HTTP retries within an attempt
	// on transport errors and 5xx/429 answers (2); negative means none.
	QuickRetries int
	// QuickRetryMin and QuickRetryMax bound the waits between quick
	// retries (200 ms, 2 s).
	QuickRetryMin, QuickRetryMax time.Duration
	// PollInterval is how often the store is asked for due deliveries when
	// nothing wakes the worker (1 s).
	PollInterval time.Duration
	// Lease is how long a claimed delivery stays with this worker before
	// another may claim it (AttemptTimeout + 30 s).
	Lease time.Duration

	// BreakerThreshold is the number of consecutive failed attempts that
	// opens a partner's circuit breaker (5); negative disables it.
	BreakerThreshold int
	// BreakerCooldown is how long an open breaker holds a partner's
	// deliveries before one probe is let through (30 s).
	BreakerCooldown time.Duration

	// MaxAckBytes limits the acknowledgement body read (1 MiB).
	MaxAckBytes int64

	Now    func() time.Time
	Logger *slog.Logger
}

// Worker delivers outbox rows to partners. Create it with [New], run it
// with [Worker.Run]; [Worker.Kick] and [Worker.Redrive] are safe to call
// from other goroutines.
type Worker struct {
	o        Options
	backoff  Backoff
	partners map[string]*partnerState
	order    []*partnerState // as configured: the order claims go in
	kick     chan struct{}
	freed    chan struct{}
	log      *slog.Logger
	// ackNonces refuses an acknowledgement whose nonce was seen before:
	// the ;req lines bind an ack to the request's body and target, not to
	// one attempt, so an old ack could otherwise be replayed.
	ackNonces *httpsig.MemoryNonces
}

type partnerState struct {
	Partner
	breaker *breaker
	slots   chan struct{}
}

// New checks o, fills in the defaults and returns a worker.
func New(o Options) (*Worker, error) {
	if o.Store == nil || o.Signer == nil || o.Trust == nil || len(o.Partners) == 0 {
		return nil, fmt.Errorf("%w: Store, Signer, Trust and Partners are required", ErrConfig)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	def(&o.InitialBackoff, DefaultInitialBackoff)
	def(&o.MaxBackoff, DefaultMaxBackoff)
	if o.MaxBackoff < o.InitialBackoff {
		o.MaxBackoff = o.InitialBackoff
	}
	switch {
	case o.Jitter == 0:
		o.Jitter = DefaultJitter
	case o.Jitter < 0:
		o.Jitter = 0
	case o.Jitter > 1:
		o.Jitter = 1
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	def(&o.AttemptTimeout, DefaultAttemptTimeout)
	switch {
	case o.QuickRetries == 0:
		o.QuickRetries = DefaultQuickRetries
	case o.QuickRetries < 0:
		o.QuickRetries = 0
	}
	def(&o.QuickRetryMin, DefaultQuickRetryMin)
	def(&o.QuickRetryMax, DefaultQuickRetryMax)
	def(&o.PollInterval, DefaultPollInterval)
	def(&o.Lease, o.AttemptTimeout+30*time.Second)
	if o.Lease <= o.AttemptTimeout {
		return nil, fmt.Errorf("%w: Lease (%s) must exceed AttemptTimeout (%s)", ErrConfig, o.Lease, o.AttemptTimeout)
	}
	if o.BreakerThreshold == 0 {
		o.BreakerThreshold = DefaultBreakerThreshold
	}
	def(&o.BreakerCooldown, DefaultBreakerCooldown)
	if o.MaxAckBytes <= 0 {
		o.MaxAckBytes = DefaultMaxAckBytes
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Transport: keepAliveTransport(o.Concurrency)}
	}
	w := &Worker{
		o:        o,
		backoff:  Backoff{Initial: o.InitialBackoff, Max: o.MaxBackoff, Jitter: o.Jitter},
		partners: make(map[string]*partnerState, len(o.Partners)),
		kick:     make(chan struct{}, 1),
		freed:    make(chan struct{}, 1),
		log:      o.Logger,

		ackNonces: httpsig.NewMemoryNonces(0),
	}
	if w.log == nil {
		w.log = slog.Default()
	}
	for _, p := range o.Partners {
		if p.Division == "" || p.Endpoint == "" || p.Codec == nil {
			return nil, fmt.Errorf("%w: partner %q needs Division, Endpoint and Codec", ErrConfig, p.Division)
		}
		if _, dup := w.partners[p.Division]; dup {
			return nil, fmt.Errorf("%w: partner %q configured twice", ErrConfig, p.Division)
		}
		p.Endpoint = strings.TrimRight(p.Endpoint, "/")
		ps := &partnerState{
			Partner: p,
			breaker: newBreaker(o.BreakerThreshold, o.BreakerCooldown),
			slots:   make(chan struct{}, o.Concurrency),
		}
		w.partners[p.Division] = ps
		w.order = append(w.order, ps)
	}
	return w, nil
}

// Kick wakes the worker to claim due deliveries now rather than at the next
// poll; the gateway calls it after queueing a delivery. It never blocks.
func (w *Worker) Kick() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Breaker reports the circuit breaker state of the partner of division
// (BreakerClosed for an unknown division).
func (w *Worker) Breaker(division string) BreakerState {
	p, ok := w.partners[division]
	if !ok {
		return BreakerClosed
	}
	return p.breaker.state(w.o.Now())
}

// Run claims and delivers due deliveries until ctx is done. Attempts in
// flight when ctx ends are abandoned and their deliveries put back, due at
// once and without counting the attempt (the Idempotency-Key makes a
// repeat harmless at the partner). Run returns nil after ctx ends; store
// errors are logged and retried at the next poll.
func (w *Worker) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		sweep := false
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
			sweep = true
		case <-w.kick:
		case <-w.freed:
		}
		w.dispatch(ctx, &wg, sweep)
		timer.Reset(w.o.PollInterval)
	}
}

// dispatch starts what is due. Each partner's rows are claimed apart, no
// more than the partner has free slots (and one while its breaker is
// half-open; none while it is open): claiming across partners and putting
// back what a busy partner could not take made the claims re-read the same
// rows under a backlog (18.6% of the CPU of a load run). On a poll (sweep)
// the oldest due row of any division is claimed too, so that a delivery to
// a division no partner is configured for still ends dead and visible.
func (w *Worker) dispatch(ctx context.Context, wg *sync.WaitGroup, sweep bool) {
	now := w.o.Now()
	lease := now.Add(w.o.Lease)
	for _, p := range w.order {
		free := cap(p.slots) - len(p.slots)
		if free == 0 {
			continue
		}
		halfOpen := p.breaker.state(now) == BreakerHalfOpen
		if ok, _ := p.breaker.allow(now, w.o.PollInterval); !ok {
			continue // its rows wait in the store, no attempt counted
		}
		if halfOpen {
			free = 1 // the probe
		}
		rows, err := w.o.Store.ClaimDeliveriesFor(ctx, p.Division, now, lease, free)
		if err != nil {
			p.breaker.release()
			if ctx.Err() == nil {
				w.log.Error("delivery: claim", "partner", p.Division, "err", err)
			}
			return
		}
		if len(rows) == 0 {
			p.breaker.release() // a probe allowed but not made
		}
		for i, d := range rows {
			// The first row has the allowance taken above; the breaker
			// may have opened since for the others.
			w.start(ctx, wg, p, d, now, i > 0)
		}
	}
	if !sweep {
		return
	}
	rows, err := w.o.Store.ClaimDeliveries(ctx, now, lease, 1)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Error("delivery: claim", "err", err)
		}
		return
	}
	for _, d := range rows {
		p, ok := w.partners[d.To]
		if !ok {
			w.fail(ctx, d, fmt.Errorf("no partner configured for division %s", d.To))
			continue
		}
		w.start(ctx, wg, p, d, now, true)
	}
}

// start begins an attempt at a claimed delivery in its own goroutine, or
// puts the row back without counting an attempt when the partner may not
// take it now (breaker open when checkBreaker, or no free slot).
func (w *Worker) start(ctx context.Context, wg *sync.WaitGroup, p *partnerState, d store.Delivery, now time.Time, checkBreaker bool) {
	if checkBreaker {
		if ok, retryAt := p.breaker.allow(now, w.o.PollInterval); !ok {
			why := fmt.Sprintf("circuit breaker open for partner %s", d.To)
			switch {
			case strings.Contains(d.LastError, why):
				why = d.LastError
			case d.LastError != "":
				why = d.LastError + " (" + why + ")"
			}
			w.putBack(ctx, d, retryAt, why)
			return
		}
	}
	select {
	case p.slots <- struct{}{}:
	default:
		// Only the sweep's row can find its partner full: it goes back
		// due at once, for the partner's own claims to take in log order.
		p.breaker.release()
		w.putBack(ctx, d, now, d.LastError)
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		var once sync.Once
		release := func() {
			once.Do(func() {
				<-p.slots
				select {
				case w.freed <- struct{}{}:
				default:
				}
			})
		}
		defer release()
		w.attempt(ctx, p, d, release)
	}()
}

// finishTimeout bounds the store write that records an attempt's outcome;
// it runs even while the worker stops, so an answer received is not lost.
const finishTimeout = 10 * time.Second

// attempt makes one delivery attempt and records its outcome. The
// partner's slot is released (release) as soon as the partner has
// answered, before the outcome is written: a slot bounds the requests a
// partner has to serve at once, and the store write waits for a group
// commit that, under load, takes longer than the request itself — holding
// the slot through it halved the deliveries per slot while the accepted
// cases queued up (docs/performance.md, fourth round). The row stays
// claimed until the outcome is written, so it is not claimed again.
func (w *Worker) attempt(ctx context.Context, p *partnerState, d store.Delivery, release func()) {
	actx, cancel := context.WithTimeout(ctx, w.o.AttemptTimeout)
	res := w.deliver(actx, p, d)
	cancel()
	// The breaker learns the outcome before the slot is free, so that a
	// half-open breaker's next claim sees it.
	stopped := res.err != nil && ctx.Err() != nil
	switch {
	case res.err == nil:
		p.breaker.success()
	case stopped:
		p.breaker.release() // the partner is not to blame
	case res.unreachable:
		p.breaker.failure(w.o.Now())
	default:
		p.breaker.success()
	}
	release()
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	switch {
	case res.err == nil:
		w.succeed(fctx, d, res)
	case stopped:
		w.putBack(fctx, d, w.o.Now(), d.LastError)
	default:
		w.fail(fctx, d, res.err)
	}
}

// putBack returns a claimed delivery to the store, due at at, without
// counting an attempt.
func (w *Worker) putBack(ctx context.Context, d store.Delivery, at time.Time, why string) {
	err := w.o.Store.FinishDelivery(ctx, d.ID, store.DeliveryOutcome{
		State: store.StateRetrying, Attempts: d.Attempts, NextAttempt: at, LastError: why,
	})
	if err != nil {
		// The lease runs out and the row is claimed again.
		w.log.Error("delivery: put back", "delivery", d.ID, "err", err)
	}
}

// fail records a failed attempt: retrying after the backoff, or dead with
// its log entry once the attempts are used up. A delivery to a division no
// partner is configured for fails this way too, so that it ends dead and
// visible rather than looping.
func (w *Worker) fail(ctx context.Context, d store.Delivery, cause error) {
	now := w.o.Now()
	attempts := d.Attempts + 1
	out := store.DeliveryOutcome{Attempts: attempts, LastError: cause.Error()}
	if attempts < w.o.MaxAttempts {
		out.State = store.StateRetrying
		out.NextAttempt = now.Add(w.backoff.Delay(attempts))
		w.log.Info("delivery: retrying", "delivery", d.ID, "to", d.To, "attempts", attempts, "next", out.NextAttempt, "err", cause)
	} else {
		out.State = store.StateDead
		entry, err := store.NewLogAppend(&exchangelog.DeadEntry{
			Header: exchangelog.Header{Time: now}, Exchange: d.ExchangeID, To: d.To,
			Of: d.EventIndex, Attempts: attempts, LastError: cause.Error(),
		}, now)
		if err != nil {
			w.log.Error("delivery: dead entry", "delivery", d.ID, "err", err)
			return
		}
		out.Entry = &entry
		w.log.Warn("delivery: dead", "delivery", d.ID, "to", d.To, "attempts", attempts, "err", cause)
	}
	if err := w.o.Store.FinishDelivery(ctx, d.ID, out); err != nil {
		w.log.Error("delivery: record failure", "delivery", d.ID, "err", err)
	}
}

// succeed records an acknowledgement: delivered or refused, with its entry.
func (w *Worker) succeed(ctx context.Context, d store.Delivery, res result) {
	now := w.o.Now()
	out := store.DeliveryOutcome{Attempts: d.Attempts + 1}
	var e exchangelog.Entry
	partnerCase := ""
	if d.Kind == kindCase {
		partnerCase = res.ack.CaseNo
	}
	if res.ack.Accepted {
		out.State = store.StateDelivered
		out.PartnerCaseNo = partnerCase
		e = &exchangelog.DeliveredEntry{
			Header: exchangelog.Header{Time: now}, Exchange: d.ExchangeID, To: d.To,
			Delivery: res.request, Ack: res.response, PartnerCase: partnerCase, Of: d.EventIndex,
		}
	} else {
		out.State = store.StateRefused
		out.Reason = res.ack.Reason
		if strings.TrimSpace(out.Reason) == "" {
			out.Reason = "refused by the partner without a reason"
		}
		e = &exchangelog.RefusedByPartnerEntry{
			Header: exchangelog.Header{Time: now}, Exchange: d.ExchangeID, To: d.To,
			Delivery: res.request, Ack: res.response, PartnerCase: partnerCase, Of: d.EventIndex,
			Reason: out.Reason,
		}
	}
	entry, err := store.NewLogAppend(e, now)
	if err != nil {
		// Cannot happen with verified signatures; retry rather than lose it.
		w.fail(ctx, d, err)
		return
	}
	out.Entry = &entry
	if err := w.o.Store.FinishDelivery(ctx, d.ID, out); err != nil {
		w.log.Error("delivery: record acknowledgement", "delivery", d.ID, "err", err)
		return
	}
	w.log.Info("delivery: "+out.State, "delivery", d.ID, "to", d.To, "partner_case", partnerCase, "reason", out.Reason)
}

// Redrive re-queues a dead delivery on an administrator's request (by is
// the administrator's key id) and appends the redriven entry; it wraps
// store.ErrNotFound for an unknown id and returns ErrNotDead when the
// delivery is not dead.
func (w *Worker) Redrive(ctx context.Context, id, by string) error {
	d, err := w.o.Store.GetDelivery(ctx, id)
	if err != nil {
		return fmt.Errorf("delivery: redrive %s: %w", id, err)
	}
	if d.State != store.StateDead {
		return ErrNotDead
	}
	now := w.o.Now()
	entry, err := store.NewLogAppend(&exchangelog.RedrivenEntry{
		Header: exchangelog.Header{Time: now}, Exchange: d.ExchangeID, Of: d.EventIndex, By: by,
	}, now)
	if err != nil {
		return fmt.Errorf("delivery: redrive %s: %w", id, err)
	}
	if err := w.o.Store.Redrive(ctx, id, entry); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return ErrNotDead
		}
		return fmt.Errorf("delivery: redrive %s: %w", id, err)
	}
	w.Kick()
	return nil
}

// keepAliveTransport is http.DefaultTransport's configuration keeping up to
// perHost idle connections to each partner (the default keeps 2: with more
// deliveries in flight, every answer beyond the second closed its
// connection and the next delivery dialled a new one).
func keepAliveTransport(perHost int) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = perHost
	t.MaxIdleConns = max(t.MaxIdleConns, 4*perHost)
	return t
}
