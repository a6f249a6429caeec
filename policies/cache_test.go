package policies

import (
	"context"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// TestPilotIsCached: the pilot bundle declares its decision day-granular.
func TestPilotIsCached(t *testing.T) {
	if !pilot(t).Cached() {
		t.Fatalf("the pilot bundle does not declare %s: day", TimeGranularityKey)
	}
}

// TestDecideIsEvaluate: on a fresh engine, in a shuffled order and twice
// over, every remembered decision is the decision evaluated for the same
// input, messages included. The generated inputs cross the effective dates
// at 00:00 +08:00 written in other offsets (so a cache keyed by the UTC day
// would answer wrongly).
func TestDecideIsEvaluate(t *testing.T) {
	ctx := context.Background()
	e, err := Compile(ctx, Pilot())
	if err != nil {
		t.Fatal(err)
	}
	ins := generatedInputs(e.Catalog())
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 2 {
		rng.Shuffle(len(ins), func(i, j int) { ins[i], ins[j] = ins[j], ins[i] })
		for _, in := range ins {
			got, err := e.Decide(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			want, err := e.Evaluate(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round %d, %+v:\nremembered %+v\n evaluated %+v", round, in, got, want)
			}
		}
	}
	if n := len(e.cache.m); n == 0 || n >= len(ins) {
		t.Errorf("%d decisions remembered for %d inputs", n, len(ins))
	}
}

// TestUndeclaredIsEvaluated: a bundle that looks at the hour and does not
// declare day granularity is evaluated every time; one that declares another
// granularity is not cached either.
func TestUndeclaredIsEvaluated(t *testing.T) {
	src, _ := Pilot().File("tongban/crossdistrict.rego")
	declaration := "# custom:\n#   decision_time_granularity: day\n"
	if !strings.Contains(string(src), declaration) {
		t.Fatal("the pilot's declaration is not where this test expects it")
	}
	// Before 10:00 (UTC) every case misses a material.
	hourly := string(src) + "\nfailed contains \"materials_missing\" if time.clock(received_ns)[0] < 10\n"
	ctx := context.Background()
	for name, rego := range map[string]string{
		"undeclared": strings.Replace(hourly, declaration, "", 1),
		"hour":       strings.Replace(hourly, declaration, "# custom:\n#   decision_time_granularity: hour\n", 1),
	} {
		e, err := Compile(ctx, pilotWith(t, map[string]string{"tongban/crossdistrict.rego": rego}))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if e.Cached() {
			t.Fatalf("%s: cached", name)
		}
		in := benchInput
		in.Time = at("2026-11-27T09:45:00Z")
		early, err := e.Decide(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		in.Time = at("2026-11-27T10:45:00Z")
		late, err := e.Decide(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if early.Allow || !late.Allow {
			t.Errorf("%s: at 09:45Z %v, at 10:45Z %v; want denied, then allowed", name, early.ReasonCodes(), late.ReasonCodes())
		}
	}
}

// TestCacheKeyDistinct: inputs that differ in any field, or only in how
// their fields split, have different keys; the same day in any offset has
// the same key.
func TestCacheKeyDistinct(t *testing.T) {
	base := benchInput
	with := func(f func(*Input)) Input {
		in := base
		in.Materials = append([]string(nil), base.Materials...)
		f(&in)
		return in
	}
	different := []Input{
		with(func(in *Input) { in.From = liwan }),
		with(func(in *Input) { in.To = nanhai }),
		with(func(in *Input) { in.BasicCode = "000105002000" }),
		with(func(in *Input) { in.ApplicantKind = "PERSON" }),
		with(func(in *Input) { in.Channel = "ONLINE" }),
		with(func(in *Input) { in.Materials = in.Materials[:3] }),
		with(func(in *Input) { in.Materials = []string{"M001M002", "M003", "M004"} }),
		with(func(in *Input) { in.Materials[0], in.Materials[1] = in.Materials[1], in.Materials[0] }),
		with(func(in *Input) { in.From, in.To = in.From+in.To[:1], in.To[1:] }),
		with(func(in *Input) { in.Time = at("2026-11-27T23:59:59+08:00").AddDate(0, 0, -1) }),
		with(func(in *Input) { in.Time = at("2026-11-27T16:00:00Z") }),
	}
	keys := map[string]int{cacheKey(base): -1}
	for i, in := range different {
		k := cacheKey(in)
		if j, dup := keys[k]; dup {
			t.Errorf("inputs %d and %d share a key", i, j)
		}
		keys[k] = i
	}
	for _, s := range []string{"2026-11-27T00:00:00+08:00", "2026-11-26T16:00:00Z", "2026-11-27T23:59:59.999999999+08:00", "2026-11-27T10:59:59-05:00"} {
		in := with(func(in *Input) { in.Time = at(s) })
		if cacheKey(in) != cacheKey(base) {
			t.Errorf("%s is not the day of %s in +08:00", s, base.Time)
		}
	}
}

// TestRememberedIsOwn: a caller that changes the slices of a remembered
// decision does not change the next caller's.
func TestRememberedIsOwn(t *testing.T) {
	ctx := context.Background()
	e, err := Compile(ctx, Pilot())
	if err != nil {
		t.Fatal(err)
	}
	in := benchInput
	in.Materials = in.Materials[:2]
	first, err := e.Decide(ctx, in)
	if err != nil || first.Allow || len(first.MissingMaterials) == 0 {
		t.Fatalf("%+v, %v: want a denial with missing materials", first, err)
	}
	want := first.clone()
	first.MissingMaterials[0] = "changed"
	first.Reasons[0].Code = "changed"
	again, err := e.Decide(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, want) {
		t.Fatalf("remembered decision changed by a caller: %+v", again)
	}
}
