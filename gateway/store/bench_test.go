package store_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tongban/tongban/gateway/store"
	"github.com/tongban/tongban/internal/pgtest"
)

// BenchmarkCreateExchange measures durable acceptances per second: each op is
// one CreateExchange (entry + exchange + outbox row, committed and fsynced),
// by one goroutine (serial) or eight.
func BenchmarkCreateExchange(b *testing.B) {
	backends := []struct {
		name string
		open func(b *testing.B) store.Store
	}{
		{"sqlite", func(b *testing.B) store.Store {
			s, err := store.OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
		{"sqlite-nogroup", func(b *testing.B) store.Store {
			s, err := store.OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "bench.db"), store.WithGroupCommit(1))
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
		{"postgres", func(b *testing.B) store.Store {
			s, err := store.OpenPostgres(context.Background(), pgtest.FreshSchema(b, pgtest.Admin(b)))
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
	}
	for _, be := range backends {
		for _, workers := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/goroutines=%d", be.name, workers), func(b *testing.B) {
				s := be.open(b)
				defer s.Close()
				benchCreate(b, s, workers)
			})
		}
	}
}

var benchSeq atomic.Int64

func benchCreate(b *testing.B, s store.Store, workers int) {
	ctx := context.Background()
	payload := make([]byte, 2048)
	next := make(chan struct{})
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				n := benchSeq.Add(1)
				id := fmt.Sprintf("bench-%d-%d", runtime.NumGoroutine(), n)
				body := []byte(fmt.Sprintf(`{"v":1,"kind":"exchange","exchange":%q,"policy_input":{}}`, id))
				ex := &store.Exchange{ID: id, From: "440605", To: "440103", SourceCaseNo: id, Request: payload, Translated: payload}
				e := store.LogAppend{Kind: "exchange", Exchange: id, Time: time.Now(), Bytes: body, LeafHash: sha256.Sum256(body), HasDecision: true}
				if _, err := s.CreateExchange(ctx, ex, e, func(p store.LogPosition) ([]byte, error) { return []byte("receipt"), nil }); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for i := 0; i < b.N; i++ {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "creates/s")
}
