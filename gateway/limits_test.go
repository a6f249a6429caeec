package gateway

import (
	"context"
	"errors"
	"fmt"
	"github.com/tongban/tongban/sim"
	"io"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// relLimits sets one partner's limits.
func relLimits(id string, l LimitsConfig) relOption {
	return func(tb testing.TB, e *relEnv) {
		for i := range e.cfg.Partners {
			if e.cfg.Partners[i].ID == id {
				e.cfg.Partners[i].Limits = l
				return
			}
		}
		tb.Fatalf("no partner %s", id)
	}
}

// TestRateLimitOverHTTP: above its burst a partner gets 429 rate_limited
// with Retry-After, counted in tongban_rate_limited_total and not written
// to the exchange log; the other partner is not affected.
func TestRateLimitOverHTTP(t *testing.T) {
	e := newRelEnv(t, relLimits("nanhai", LimitsConfig{RatePerS: 1, Burst: 5, Concurrency: 4}))
	before := e.counts(t)
	limited := 0
	for i := range 10 {
		req, _ := e.signedRequest(t, e.pki.Nanhai, http.MethodGet, "/v1/cases/440605202611279999", "", nil)
		a := e.do(t, req)
		switch a.Status {
		case http.StatusNotFound:
			if limited > 0 {
				t.Fatalf("request %d passed after a refusal within the same second", i)
			}
		case http.StatusTooManyRequests:
			limited++
			relCheckProblem(t, a, 429, "rate_limited")
			if ra, err := strconv.Atoi(a.Header.Get("Retry-After")); err != nil || ra < 1 {
				t.Fatalf("Retry-After %q", a.Header.Get("Retry-After"))
			}
		default:
			t.Fatalf("status %d %s", a.Status, a.Body)
		}
	}
	if limited < 4 {
		t.Errorf("%d of 10 requests limited with a burst of 5", limited)
	}
	if m := e.metric(t, "tongban_rate_limited_total", `division="440605"`, `limit="rate"`); m != float64(limited) {
		t.Errorf("tongban_rate_limited_total %v, want %d", m, limited)
	}
	// A limited POST is not a denied entry either.
	req, _ := e.signedRequest(t, e.pki.Nanhai, http.MethodPost, "/v1/exchanges", relXML, e.nanhaiCase(t))
	relCheckProblem(t, e.do(t, req), 429, "rate_limited")
	if after := e.counts(t); after != before {
		t.Errorf("rows changed: %+v → %+v", before, after)
	}
	// Liwan has the default limits.
	for range 10 {
		req, _ := e.signedRequest(t, e.pki.Liwan, http.MethodGet, "/v1/cases/LW2026112799999", "", nil)
		if a := e.do(t, req); a.Status != http.StatusNotFound {
			t.Fatalf("liwan: %d %s", a.Status, a.Body)
		}
	}
}

// p99 of latencies (nearest rank).
func p99(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)*99+99)/100-1]
}

// TestFloodIsolation: Nanhai floods at ten times its rate limit while
// Liwan submits cases one after another; Liwan's p99 latency stays within
// twice its idle p99.
func TestFloodIsolation(t *testing.T) {
	if raceEnabled() {
		t.Skip("timing test: the race detector slows the flooding client below 10× the limit; runs in `go test ./gateway` and `make chaos`")
	}
	const rate = 20
	e := newRelEnv(t,
		relLimits("nanhai", LimitsConfig{RatePerS: rate, Burst: rate, Concurrency: 4}),
		relLimits("liwan", LimitsConfig{RatePerS: 1000, Burst: 1000, Concurrency: 16}))
	ctx := context.Background()
	seq := 100
	measure := func(n int) []time.Duration {
		var ds []time.Duration
		for range n {
			seq++
			body, err := e.liwan.SampleCase(seq, sim.SampleOptions{})
			if err != nil {
				t.Fatal(err)
			}
			begin := time.Now()
			resp, err := e.liwan.SendCase(ctx, e.url, body)
			ds = append(ds, time.Since(begin))
			if err != nil || resp.Status != http.StatusAccepted {
				t.Fatalf("liwan: %v %+v", err, resp)
			}
		}
		return ds
	}
	measure(20) // warm up connections and caches
	floodClient := relTLSClient(t, e.pki.TLSCert)
	next := 1000
	// round measures Liwan's p99 idle, then under the flood: 10 × rate
	// requests per second of new Nanhai cases over their own connections.
	round := func() (idle, flooded time.Duration, floodRate float64, limited, sent int64) {
		idle = p99(measure(100))
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var nSent, nLimited atomic.Int64
		const workers = 8
		for w := range workers {
			first := next + w*200
			wg.Add(1)
			go func() {
				defer wg.Done()
				tick := time.NewTicker(time.Second * workers / (10 * rate))
				defer tick.Stop()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					body, err := e.nanhai.SampleCase(first+i%200, sim.SampleOptions{})
					if err != nil {
						t.Error(err)
						return
					}
					req, _ := e.signedRequest(t, e.pki.Nanhai, http.MethodPost, "/v1/exchanges", relXML, body)
					resp, err := floodClient.Do(req)
					if err != nil {
						continue
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					nSent.Add(1)
					if resp.StatusCode == http.StatusTooManyRequests {
						nLimited.Add(1)
					}
				}
			}()
		}
		next += workers * 200
		time.Sleep(500 * time.Millisecond)
		start, before := time.Now(), nSent.Load()
		flooded = p99(measure(100))
		floodRate = float64(nSent.Load()-before) / time.Since(start).Seconds()
		close(stop)
		wg.Wait()
		return idle, flooded, floodRate, nLimited.Load(), nSent.Load()
	}
	// Other processes share the machine: a round spoiled by them is run
	// again, up to three times; a gateway without isolation fails all three
	// (measured: p99 ×3 with the limit lifted).
	var report []string
	for range 3 {
		idle, flooded, floodRate, limited, sent := round()
		report = append(report, fmt.Sprintf("p99 idle %v, under %.0f req/s from nanhai (%d of %d limited) %v", idle, floodRate, limited, sent, flooded))
		t.Log(report[len(report)-1])
		if floodRate < 8*rate {
			t.Fatalf("the flood reached only %.0f req/s, want about %d", floodRate, 10*rate)
		}
		if limited < sent/2 {
			t.Fatalf("only %d of %d flood requests limited", limited, sent)
		}
		if flooded <= 2*idle {
			return
		}
	}
	t.Errorf("liwan's p99 under the flood was more than twice the idle p99 in every round:\n%s", strings.Join(report, "\n"))

}

// raceEnabled reports whether the test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}
