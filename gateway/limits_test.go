package gateway

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tongban/tongban/certs"
)

var (
	limNanhai = certs.Identity{Role: certs.RolePartner, Partner: "nanhai", Division: "440605", KeyID: "nh"}
	limLiwan  = certs.Identity{Role: certs.RolePartner, Partner: "liwan", Division: "440103", KeyID: "lw"}
)

func rateLimited(t *testing.T, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeRateLimited {
		t.Fatalf("error %v, want rate_limited", err)
	}
	if e.RetryAfter < time.Second {
		t.Errorf("RetryAfter %v, want at least 1 s", e.RetryAfter)
	}
	return e
}

func TestLimiterRate(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := NewLimiter(LimiterOptions{
		Partners: map[string]LimitsConfig{"440605": {RatePerS: 2, Burst: 3, Concurrency: 100}, "440103": {RatePerS: 2, Burst: 3, Concurrency: 100}},
		Now:      func() time.Time { return now },
	})
	ctx := context.Background()
	for i := range 3 {
		release, err := l.Acquire(ctx, limNanhai)
		if err != nil {
			t.Fatalf("request %d within the burst: %v", i, err)
		}
		release()
	}
	_, err := l.Acquire(ctx, limNanhai)
	e := rateLimited(t, err)
	if e.RetryAfter > time.Second {
		t.Errorf("RetryAfter %v; one token comes back after 0.5 s, so 1 s", e.RetryAfter)
	}
	// A refusal does not spend a token: after 0.5 s exactly one more passes.
	now = now.Add(500 * time.Millisecond)
	if _, err := l.Acquire(ctx, limNanhai); err != nil {
		t.Fatalf("after 0.5 s: %v", err)
	}
	if _, err := l.Acquire(ctx, limNanhai); err == nil {
		t.Fatal("second request after 0.5 s passed")
	}
	// The other partner's bucket is its own.
	for i := range 3 {
		if _, err := l.Acquire(ctx, limLiwan); err != nil {
			t.Fatalf("liwan request %d: %v", i, err)
		}
	}
}

func TestLimiterConcurrency(t *testing.T) {
	l := NewLimiter(LimiterOptions{Partners: map[string]LimitsConfig{"440605": {RatePerS: 1000, Burst: 1000, Concurrency: 2}}})
	ctx := context.Background()
	r1, err := l.Acquire(ctx, limNanhai)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := l.Acquire(ctx, limNanhai)
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Acquire(ctx, limNanhai)
	rateLimited(t, err)
	r1()
	r3, err := l.Acquire(ctx, limNanhai)
	if err != nil {
		t.Fatalf("after a release: %v", err)
	}
	r2()
	r3()
}

func TestLimiterOtherRolesAndUnknownPartners(t *testing.T) {
	l := NewLimiter(LimiterOptions{Partners: map[string]LimitsConfig{"440605": {RatePerS: 1, Burst: 1, Concurrency: 1}}})
	ctx := context.Background()
	for _, id := range []certs.Identity{
		{Role: certs.RoleAdmin, KeyID: "a"},
		{Role: certs.RoleAuditor, KeyID: "b"},
		{Role: certs.RolePartner, Partner: "liwan", Division: "440104"},
	} {
		for range 5 {
			if _, err := l.Acquire(ctx, id); err != nil {
				t.Fatalf("%s: %v", id.Role, err)
			}
		}
	}
}

func TestLimitsDefaults(t *testing.T) {
	got := LimitsConfig{RatePerS: 10}.withDefaults(LimitsConfig{Burst: 7})
	if want := (LimitsConfig{RatePerS: 10, Burst: 7, Concurrency: DefaultConcurrency}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	got = LimitsConfig{}.withDefaults(LimitsConfig{})
	if want := (LimitsConfig{RatePerS: DefaultRatePerS, Burst: 2 * DefaultRatePerS, Concurrency: DefaultConcurrency}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	cfg := &Config{Data: t.TempDir(), Limits: LimitsConfig{RatePerS: 5}}
	if err := cfg.ApplyDefaults(); err != nil {
		t.Fatal(err)
	}
	for _, p := range cfg.Partners {
		if p.Limits.RatePerS != 5 || p.Limits.Burst != 10 {
			t.Errorf("partner %s limits %+v, want the top-level rate 5 and burst 10", p.ID, p.Limits)
		}
	}
}
