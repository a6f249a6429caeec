package policies

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
)

func benchDecide(b *testing.B, e *Engine, in Input) {
	b.Helper()
	ctx := context.Background()
	if d, err := e.Evaluate(ctx, in); err != nil || !d.Allow {
		b.Fatalf("decision %+v, %v", d, err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.Evaluate(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
}

var benchInput = Input{From: nanhai, To: liwan, BasicCode: "000105001000", ApplicantKind: "ENTERPRISE", Channel: "COUNTER",
	Materials: []string{"M001", "M002", "M003", "M004"}, Time: at("2026-11-27T09:45:00+08:00")}

// BenchmarkDecidePilot evaluates a decision on the 8-item pilot catalog.
func BenchmarkDecidePilot(b *testing.B) {
	benchDecide(b, pilot(b), benchInput)
}

// BenchmarkDecideRemembered is a decision of the pilot answered from its
// cache (the same input on the same day), against BenchmarkDecidePilot.
func BenchmarkDecideRemembered(b *testing.B) {
	e := pilot(b)
	ctx := context.Background()
	if d, err := e.Decide(ctx, benchInput); err != nil || !d.Allow {
		b.Fatalf("decision %+v, %v", d, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Decide(ctx, benchInput); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecide20000 evaluates on a catalog of 20,000 items: the cost must
// be that of the pilot, since the catalog is looked up by key.
func BenchmarkDecide20000(b *testing.B) {
	e := compileLarge(b, 20000)
	b.Run("pilot item", func(b *testing.B) { benchDecide(b, e, benchInput) })
	in := benchInput
	in.BasicCode = fmt.Sprintf("9%011d", 10000)
	b.Run("generated item", func(b *testing.B) { benchDecide(b, e, in) })
}

// compileLarge compiles the pilot bundle with its catalog grown to n items.
func compileLarge(tb testing.TB, n int) *Engine {
	tb.Helper()
	files := Pilot().Files()
	var c map[string]any
	if err := json.Unmarshal(files[CatalogPath], &c); err != nil {
		tb.Fatal(err)
	}
	items := c["items"].(map[string]any)
	template := items["000105001000"]
	for i := 0; len(items) < n; i++ {
		items[fmt.Sprintf("9%011d", i)] = template
	}
	data, err := json.Marshal(c)
	if err != nil {
		tb.Fatal(err)
	}
	files[CatalogPath] = data
	bundle, err := BundleFromFiles(files)
	if err != nil {
		tb.Fatal(err)
	}
	e, err := Compile(context.Background(), bundle)
	if err != nil {
		tb.Fatal(err)
	}
	if len(e.Catalog().Items) != n {
		tb.Fatalf("catalog has %d items", len(e.Catalog().Items))
	}
	return e
}
