package exchangelog

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkAppendAndCheckpoint measures appends (marshal, leaf hash, memory
// store) with a Sync (integrate + sign a checkpoint) every 1,000 entries.
func BenchmarkAppendAndCheckpoint(b *testing.B) {
	pki := devPKI(b)
	s := NewMemoryStore()
	ctx := context.Background()
	l, err := Open(ctx, s, NewOptions().WithSigner(pki.Log))
	if err != nil {
		b.Fatal(err)
	}
	e := &RedrivenEntry{Header: Header{Time: fixedTime}, Exchange: "01JD0000000000000000000000", By: pki.Admin.KeyID()}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.Of = uint64(i)
		if _, err := s.Append(ctx, e); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 {
			if err := l.Sync(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := l.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkInclusionProof measures building one inclusion proof in logs of
// 10k, 100k and 1M entries (memory store; nodes below cachedLevel come from
// the store).
func BenchmarkInclusionProof(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			s := NewMemoryStore()
			for i := 0; i < n; i++ {
				s.AppendBytes("x", "", fixedTime, []byte(fmt.Sprint(i)))
			}
			tr := newTree(s)
			ctx := context.Background()
			if _, err := tr.integrate(ctx); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			var hashes int
			for i := 0; i < b.N; i++ {
				p, err := tr.inclusion(ctx, uint64(i*7919%n), uint64(n))
				if err != nil {
					b.Fatal(err)
				}
				hashes = len(p)
			}
			b.ReportMetric(float64(hashes), "hashes/proof")
		})
	}
}
