package gateway

import (
	"context"
	"log/slog"
	"time"

	"github.com/go-kit/kit/endpoint"
	"github.com/go-kit/kit/metrics"
	"golang.org/x/time/rate"

	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/httpsig"
)

// LimitsConfig bounds what one partner may ask of the gateway at once
// (gateway-api.md's 429 rate_limited, with Retry-After). Zero fields take
// the defaults, or, in a partner's own limits, the top-level ones.
type LimitsConfig struct {
	// RatePerS is the sustained number of requests per second (default 50).
	RatePerS float64 `yaml:"rate_per_s"`
	// Burst is how many requests may come at once above the rate (default
	// 2 × RatePerS, at least 1).
	Burst int `yaml:"burst"`
	// Concurrency is the number of the partner's requests being served at
	// the same time (default 16); one more is refused, not queued.
	Concurrency int `yaml:"concurrency"`
}

// Default limits per partner.
const (
	DefaultRatePerS    = 50
	DefaultConcurrency = 16
)

// withDefaults fills l's zero fields from def, then from the built-in
// defaults.
func (l LimitsConfig) withDefaults(def LimitsConfig) LimitsConfig {
	if l.RatePerS == 0 {
		l.RatePerS = def.RatePerS
	}
	if l.RatePerS == 0 {
		l.RatePerS = DefaultRatePerS
	}
	if l.Burst == 0 {
		l.Burst = def.Burst
	}
	if l.Burst == 0 {
		l.Burst = max(1, int(2*l.RatePerS))
	}
	if l.Concurrency == 0 {
		l.Concurrency = def.Concurrency
	}
	if l.Concurrency == 0 {
		l.Concurrency = DefaultConcurrency
	}
	return l
}

// Limiter holds one token bucket and one concurrency slot pool per partner.
// The key is the verified signer — a partner's division — never anything the
// request claims before its signature verified, so that nobody can spend
// another partner's allowance. Requests of other roles (administrators,
// auditors) are not limited here. It is safe for concurrent use.
type Limiter struct {
	byPartner map[string]*partnerLimit
	now       func() time.Time
	refused   metrics.Counter
	log       *slog.Logger
}

type partnerLimit struct {
	cfg    LimitsConfig
	bucket *rate.Limiter
	slots  chan struct{}
}

// LimiterOptions configures a Limiter.
type LimiterOptions struct {
	// Partners maps a partner's division code (certs.Identity.Division)
	// to its limits; zero fields take the defaults.
	Partners map[string]LimitsConfig
	// Refused counts refusals, labelled division and limit ("rate",
	// "concurrency"); optional.
	Refused metrics.Counter
	Logger  *slog.Logger
	Now     func() time.Time
}

// NewLimiter returns a limiter for the partners in o.
func NewLimiter(o LimiterOptions) *Limiter {
	l := &Limiter{byPartner: map[string]*partnerLimit{}, now: o.Now, refused: o.Refused, log: o.Logger}
	if l.now == nil {
		l.now = time.Now
	}
	if l.log == nil {
		l.log = slog.Default()
	}
	for division, c := range o.Partners {
		c = c.withDefaults(LimitsConfig{})
		l.byPartner[division] = &partnerLimit{
			cfg:    c,
			bucket: rate.NewLimiter(rate.Limit(c.RatePerS), c.Burst),
			slots:  make(chan struct{}, c.Concurrency),
		}
	}
	return l
}

// Limits returns the limits in force for the partner of division (false
// when it has none).
func (l *Limiter) Limits(division string) (LimitsConfig, bool) {
	p, ok := l.byPartner[division]
	if !ok {
		return LimitsConfig{}, false
	}
	return p.cfg, true
}

// Acquire admits one request of id, or refuses it with a rate_limited
// *Error carrying RetryAfter. On success the caller must call release when
// the request is done.
func (l *Limiter) Acquire(ctx context.Context, id certs.Identity) (release func(), err error) {
	if id.Role != certs.RolePartner {
		return func() {}, nil
	}
	p, ok := l.byPartner[id.Division]
	if !ok {
		return func() {}, nil
	}
	select {
	case p.slots <- struct{}{}:
	default:
		return nil, l.refuse(ctx, id, "concurrency", time.Second)
	}
	now := l.now()
	r := p.bucket.ReserveN(now, 1)
	if d := r.DelayFrom(now); !r.OK() || d > 0 {
		r.CancelAt(now)
		<-p.slots
		if d < time.Second {
			d = time.Second
		}
		return nil, l.refuse(ctx, id, "rate", d)
	}
	return func() { <-p.slots }, nil
}

func (l *Limiter) refuse(ctx context.Context, id certs.Identity, limit string, retry time.Duration) error {
	if l.refused != nil {
		l.refused.With("division", id.Division, "limit", limit).Add(1)
	}
	l.log.InfoContext(ctx, "rate limited", "partner", id.Partner, "division", id.Division, "caller", id.KeyID, "limit", limit, "retry_after", retry)
	return &Error{Code: CodeRateLimited, Detail: "too many requests from " + id.Partner + " (" + limit + " limit); try again later", RetryAfter: retry}
}

// Middleware is the go-kit endpoint middleware applying the limiter to
// the verified caller of each request. A refusal is answered as a
// receipt or view error would be: 429 rate_limited with Retry-After. It is
// not recorded in the exchange log, so that a flood cannot grow the
// permanent log; it is counted and logged by the process.
func (l *Limiter) Middleware() endpoint.Middleware {
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, request any) (any, error) {
			vr, ok := httpsig.FromContext(ctx)
			if !ok {
				return next(ctx, request)
			}
			release, err := l.Acquire(ctx, vr.Identity)
			if err != nil {
				return nil, err
			}
			defer release()
			return next(ctx, request)
		}
	}
}
