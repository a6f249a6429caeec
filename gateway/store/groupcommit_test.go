package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

// TestGroupCommitBatches checks that concurrent writers on SQLite share
// commits, and that every caller's entry is durable once it returns: a
// second handle (its own connections) reads it.
func TestGroupCommitBatches(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "g.db")
	st, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	other, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	s := st.(*sqlStore)
	const n = 200
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			b := []byte(fmt.Sprintf(`{"v":1,"kind":"key_rotated","n":%d}`, i))
			pos, err := s.AppendEntry(ctx, LogAppend{Kind: "key_rotated", Bytes: b, LeafHash: sha256.Sum256(b)})
			if err != nil {
				t.Error(err)
				return
			}
			es, err := other.Entries(ctx, pos.Index, pos.Index+1)
			if err != nil || string(es[0].Bytes) != string(b) {
				t.Errorf("entry %d not readable after its append returned: %v", pos.Index, err)
			}
		}(i)
	}
	wg.Wait()
	if s.batches.Load() == 0 {
		t.Fatalf("%d concurrent appends were never committed together", n)
	}
	t.Logf("%d jobs in %d shared commits", s.batchedJobs.Load(), s.batches.Load())
}

// TestClosedStore: writes after Close fail with ErrClosed rather than hang.
func TestClosedStore(t *testing.T) {
	ctx := context.Background()
	st, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AppendEntry(ctx, LogAppend{Kind: "x", Bytes: []byte("{}")}); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after Close: %v, want ErrClosed", err)
	}
	if err := st.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestWriterPragmas checks the writer connection's settings that keep the
// group commit's I/O down (docs/performance.md, fourth round), and that the
// reader pool is left at SQLite's defaults for what it does not need.
func TestWriterPragmas(t *testing.T) {
	ctx := context.Background()
	st, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := st.(*sqlStore)
	for _, tc := range []struct {
		pragma string
		want   int64
	}{
		{"temp_store", 2}, // MEMORY: savepoint journals stay off the disk
		{"cache_size", -16384},
		{"wal_autocheckpoint", 4000},
		{"synchronous", 2}, // FULL: still durable
	} {
		var got int64
		if err := s.w.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", tc.pragma, err)
		}
		if got != tc.want {
			t.Errorf("writer PRAGMA %s = %d, want %d", tc.pragma, got, tc.want)
		}
	}
	var readerCache int64
	if err := s.r.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&readerCache); err != nil {
		t.Fatal(err)
	}
	if readerCache == -16384 {
		t.Errorf("reader connections got the writer's 16 MiB cache (×%d connections)", 10)
	}
}
