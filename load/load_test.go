package load_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/adapters/liwan"
	"github.com/tongban/tongban/adapters/nanhai"
	"github.com/tongban/tongban/gateway"
	"github.com/tongban/tongban/load"
	"github.com/tongban/tongban/sim"
)

func TestParseMix(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want load.Mix
		err  bool
	}{
		{"allowed=90,denied=5,invalid=5", load.Mix{90, 5, 5}, false},
		{"allowed=1", load.Mix{1, 0, 0}, false},
		{" invalid=3 , allowed=2", load.Mix{2, 0, 3}, false},
		{"allowed=0,denied=0", load.Mix{}, true},
		{"allowed=-1,denied=2", load.Mix{}, true},
		{"other=1", load.Mix{}, true},
		{"allowed", load.Mix{}, true},
		{"", load.Mix{}, true},
	} {
		got, err := load.ParseMix(tc.in)
		if (err != nil) != tc.err || (err == nil && got != tc.want) {
			t.Errorf("ParseMix(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.err)
		}
		if err != nil && !errors.Is(err, load.ErrMix) {
			t.Errorf("ParseMix(%q): error %v is not ErrMix", tc.in, err)
		}
	}
	if m, err := load.ParseMix(load.DefaultMix.String()); err != nil || m != load.DefaultMix {
		t.Errorf("DefaultMix does not round-trip: %v %v", m, err)
	}
}

// local starts a gateway in this process (as `tongban load --local
// --in-process` does) with the receivers, tracking lag.
func local(t *testing.T) (*load.Local, *load.LagTracker) {
	t.Helper()
	lag := load.NewLagTracker()
	serve := func(ctx context.Context, file string) error {
		cfg, err := gateway.LoadConfig(file)
		if err != nil {
			return err
		}
		cfg.Log.CheckpointInterval = 100 * time.Millisecond
		srv, err := gateway.NewServer(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			srv.Close()
			return err
		}
		return srv.Run(ctx, ln)
	}
	l, err := load.StartLocal(context.Background(), load.LocalOptions{Serve: serve, Dir: t.TempDir(), Lag: lag, Connections: 8,
		ExtraConfig: "delivery: {concurrency: 16}\n"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	return l, lag
}

func generator(t *testing.T, l *load.Local, mix load.Mix, caseSize, firstDay int) *load.Generator {
	t.Helper()
	mk := func(division string) *sim.Partner {
		key := l.PKI.Nanhai
		if division == adapters.DivisionLiwan {
			key = l.PKI.Liwan
		}
		p, err := sim.New(sim.Options{Division: division, Signer: key, Trust: l.PKI.TrustStore(), PublicURL: "http://127.0.0.1:1"})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	g, err := load.NewGenerator(load.GeneratorOptions{Target: l.URL, Nanhai: mk(adapters.DivisionNanhai), Liwan: mk(adapters.DivisionLiwan),
		NanhaiKey: l.PKI.Nanhai, LiwanKey: l.PKI.Liwan, CaseSize: caseSize, Mix: mix, Seed: 7, FirstDay: firstDay})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestRunLocal drives a real gateway with every kind of case: allowed ones
// are accepted and delivered, denied and invalid ones refused with their
// codes, nothing unexpected; pre-signed and inline-signed requests both
// pass the gateway's verification.
func TestRunLocal(t *testing.T) {
	l, lag := local(t)
	g := generator(t, l, load.Mix{load.Allowed: 6, load.Denied: 2, load.Invalid: 2}, 8<<10, 1)
	if err := g.Presign(40); err != nil {
		t.Fatal(err)
	}
	rep, err := load.Run(context.Background(), load.Options{Generator: g, Client: l.Client, Connections: 4, Count: 60,
		Lag: lag, Drain: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep.Summary())
	if rep.Sent != 60 || len(rep.Unexpected) > 0 || rep.Replayed != 0 {
		t.Fatalf("sent %d, unexpected %v, replayed %d", rep.Sent, rep.Unexpected, rep.Replayed)
	}
	if rep.Accepted == 0 || rep.Errors["policy_denied"] == 0 || rep.Errors["validation_failed"] == 0 ||
		rep.Accepted+rep.Errors["policy_denied"]+rep.Errors["validation_failed"] != 60 {
		t.Fatalf("accepted %d, errors %v", rep.Accepted, rep.Errors)
	}
	if rep.SignedDuringRun != 20 {
		t.Errorf("signed during the run: %d, want 20", rep.SignedDuringRun)
	}
	if rep.Delivered != rep.Accepted || rep.Undelivered != 0 || rep.DeliveryLagMS.P50 <= 0 || rep.DeliveryLagMS.P99 < rep.DeliveryLagMS.P50 {
		t.Fatalf("delivered %d of %d, undelivered %d, lag %+v", rep.Delivered, rep.Accepted, rep.Undelivered, rep.DeliveryLagMS)
	}
	if rep.DeliveredInRun < 0 || rep.DeliveredInRun > rep.Delivered {
		t.Errorf("delivered by the last answer %d, delivered in all %d", rep.DeliveredInRun, rep.Delivered)
	}
	lat := rep.LatencyMS
	if !(lat.P50 > 0 && lat.P50 <= lat.P90 && lat.P90 <= lat.P99 && lat.P99 <= lat.Max) {
		t.Fatalf("latency percentiles out of order: %+v", lat)
	}
	if rep.ThroughputPerS <= 0 || math.Abs(rep.ThroughputPerS*rep.DurationS-float64(rep.Accepted)) > 0.5 {
		t.Fatalf("throughput %f over %fs for %d accepted", rep.ThroughputPerS, rep.DurationS, rep.Accepted)
	}
	rep.SetFloor(rep.ThroughputPerS * 4)
	if rep.RatioToFloor != 0.25 {
		t.Fatalf("ratio %f", rep.RatioToFloor)
	}

	// A second run over the same case numbers (FirstDay 1 again): every
	// allowed case is a replay (200), never accepted twice.
	g2 := generator(t, l, load.Mix{load.Allowed: 1}, 8<<10, 1)
	rep2, err := load.Run(context.Background(), load.Options{Generator: g2, Client: l.Client, Connections: 2, Count: 4})
	if err != nil {
		t.Fatal(err)
	}
	if rep2.Accepted+rep2.Replayed != 4 || rep2.Replayed == 0 {
		t.Fatalf("rerun: accepted %d, replayed %d, errors %v", rep2.Accepted, rep2.Replayed, rep2.Errors)
	}
}

// TestRunRate sends on a fixed schedule: about Rate requests a second.
func TestRunRate(t *testing.T) {
	l, _ := local(t)
	g := generator(t, l, load.Mix{load.Allowed: 1}, 0, 3)
	if err := g.Presign(30); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	rep, err := load.Run(context.Background(), load.Options{Generator: g, Client: l.Client, Rate: 50, Connections: 8, Count: 30})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(begin)
	// 30 requests at 50/s are scheduled over 580 ms.
	if took < 550*time.Millisecond || rep.Accepted != 30 {
		t.Fatalf("30 requests at 50/s took %s, accepted %d (%v)", took, rep.Accepted, rep.Errors)
	}
}

// TestCases: the generated cases are about the size asked for, decode
// as their kind says, and never reuse a case number — not even past the
// 9,999 numbers Nanhai has in a day.
func TestCases(t *testing.T) {
	l, _ := local(t)
	g := generator(t, l, load.Mix{load.Allowed: 1, load.Denied: 1, load.Invalid: 1}, 20<<10, 5)
	if err := g.Presign(30); err != nil {
		t.Fatal(err)
	}
	codecs := map[string]adapters.Codec{adapters.DivisionNanhai: nanhai.Codec, adapters.DivisionLiwan: liwan.Codec}
	kinds := map[load.Kind]int{}
	for range 30 {
		r, err := g.Next()
		if err != nil {
			t.Fatal(err)
		}
		kinds[r.Kind]++
		body := r.Body()
		if r.Kind == load.Allowed && (len(body) < 18<<10 || len(body) > 22<<10) {
			t.Errorf("%s case of %d bytes, want about 20 KiB", r.From, len(body))
		}
		c, err := codecs[r.From].DecodeCase(body)
		var verr *adapters.ValidationError
		switch {
		case r.Kind == load.Invalid && !errors.As(err, &verr):
			t.Errorf("invalid case decodes: %v", err)
		case r.Kind != load.Invalid && err != nil:
			t.Errorf("%s case does not decode: %v", r.Kind, err)
		case r.Kind != load.Invalid && c.CaseNo != r.CaseNo:
			t.Errorf("case number %s, want %s", c.CaseNo, r.CaseNo)
		}
	}
	if len(kinds) != 3 {
		t.Errorf("kinds %v", kinds)
	}

	// Denied cases all come from Nanhai: 10,050 of them span two days.
	g = generator(t, l, load.Mix{load.Denied: 1}, 0, 5)
	seen := map[string]bool{}
	for range 10050 {
		r, err := g.Next()
		if err != nil {
			t.Fatal(err)
		}
		if seen[r.CaseNo] {
			t.Fatalf("case number %s used twice", r.CaseNo)
		}
		seen[r.CaseNo] = true
	}
}

func TestMeasureFloor(t *testing.T) {
	f, err := load.MeasureFloor(context.Background(), load.FloorOptions{Duration: 200 * time.Millisecond, CaseSize: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(f)
	if f.Exchanges == 0 || f.PerSecond <= 0 || f.Workers < 1 || f.Verify <= 0 || f.Sign <= 0 || f.Decide <= 0 || f.SM3Case <= 0 {
		t.Fatalf("floor %+v", f)
	}
	// One exchange is 3 verifies, 3 signs and a decision: on all workers
	// together it cannot go faster than the workers running those
	// operations back to back (with a generous margin for noise).
	perCore := 3*f.Verify + 3*f.Sign + f.Decide
	if limit := float64(f.Workers) * float64(time.Second) / float64(perCore) * 3; f.PerSecond > limit {
		t.Fatalf("floor %.0f/s is faster than its own operations allow (%.0f/s)", f.PerSecond, limit)
	}
}

// TestLagTracker matches deliveries to sends in either order.
func TestLagTracker(t *testing.T) {
	t.Parallel()
	tr := load.NewLagTracker()
	t0 := time.Now()
	tr.Sent("a", t0)
	tr.Delivered("b", t0.Add(30*time.Millisecond)) // before its receipt was read
	tr.Sent("b", t0.Add(10*time.Millisecond))
	if tr.Pending() != 1 || tr.Arrived() != 1 {
		t.Fatalf("pending %d arrived %d", tr.Pending(), tr.Arrived())
	}
	tr.Delivered("a", t0.Add(50*time.Millisecond))
	if tr.Pending() != 0 || tr.Arrived() != 2 {
		t.Fatalf("pending %d arrived %d", tr.Pending(), tr.Arrived())
	}
}

// The summary says how many cases were delivered while the load ran, and
// warns when deliveries fell behind the accepted cases (an accepted rate
// the outbox could not sustain), not when they kept pace.
func TestSummaryDeliveriesBehind(t *testing.T) {
	for _, tc := range []struct {
		inRun int64
		warn  bool
	}{{950, false}, {900, false}, {899, true}, {120, true}} {
		r := load.Report{Accepted: 1000, Delivered: 1000, DeliveredInRun: tc.inRun, DurationS: 10}
		s := r.Summary()
		if !strings.Contains(s, fmt.Sprintf("delivered by the last answer %d of 1000 accepted", tc.inRun)) {
			t.Errorf("in run %d: summary %q", tc.inRun, s)
		}
		if got := strings.Contains(s, "WARNING: deliveries fell behind"); got != tc.warn {
			t.Errorf("in run %d: warning %v, want %v:\n%s", tc.inRun, got, tc.warn, s)
		}
	}
}
