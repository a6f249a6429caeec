package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
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

// TestCommitInterval: with a commit interval, the committer starts at
// most about one commit per interval however many writers keep it busy,
// and every write still succeeds.
func TestCommitInterval(t *testing.T) {
	ctx := context.Background()
	const interval = 25 * time.Millisecond
	s := openPaced(t, interval)
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	appended := 0
	for w := 0; w < 8; w++ {
		wg.Go(func() {
			for i := 0; time.Since(start) < 300*time.Millisecond; i++ {
				b := []byte(fmt.Sprintf(`{"v":1,"kind":"key_rotated","w":%d,"n":%d}`, w, i))
				if _, err := s.AppendEntry(ctx, LogAppend{Kind: "key_rotated", Bytes: b, LeafHash: sha256.Sum256(b)}); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				appended++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	commits := s.commits.Load()
	// About one commit per interval: the first starts at once, and a
	// commit after one that carried a single job with nothing waiting is
	// not paced (on a loaded machine the other writers may not have queued
	// theirs yet), so allow twice that. Unpaced, 8 writers make hundreds.
	if most := 2*int64(elapsed/interval) + 2; commits > most {
		t.Errorf("%d commits in %s, want at most %d with a %s interval", commits, elapsed, most, interval)
	}
	if size, err := s.LogSize(ctx); err != nil || size != uint64(appended) {
		t.Errorf("log size %d (%v), %d appends returned", size, err, appended)
	}
	t.Logf("%d appends in %d commits over %s", appended, commits, elapsed)
}

// TestCommitIntervalLoneWriter: a writer alone, whose next write comes
// only after the previous one returned, is not paced.
func TestCommitIntervalLoneWriter(t *testing.T) {
	ctx := context.Background()
	const interval = 200 * time.Millisecond
	st := openPaced(t, interval)
	start := time.Now()
	const n = 5
	for i := range n {
		b := []byte(fmt.Sprintf(`{"v":1,"kind":"key_rotated","n":%d}`, i))
		if _, err := st.AppendEntry(ctx, LogAppend{Kind: "key_rotated", Bytes: b, LeafHash: sha256.Sum256(b)}); err != nil {
			t.Fatal(err)
		}
	}
	// Paced, the five commits would take at least 4 intervals (800 ms).
	if elapsed := time.Since(start); elapsed >= 2*interval {
		t.Errorf("%d sequential appends took %s with a %s interval: the lone writer was paced", n, elapsed, interval)
	}
}

// openPaced opens a fresh SQLite store with the commit interval given,
// closed when the test ends.
func openPaced(t *testing.T, interval time.Duration) *sqlStore {
	t.Helper()
	st, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "p.db"), WithCommitInterval(interval))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st.(*sqlStore)
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

// The outbox's claims and outcomes (inTxFirst) go into the next batch
// ahead of jobs that were waiting before them: with the committer busy
// and a full queue of other writes behind it, the delivery job is the
// first to run once the committer is free.
func TestGroupCommitDeliveriesFirst(t *testing.T) {
	ctx := context.Background()
	st, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "f.db"), WithGroupCommit(4))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := st.(*sqlStore)
	var mu sync.Mutex
	var order []string
	started := make(chan struct{})
	release := make(chan struct{})
	var releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(release) }) // never leave the committer blocked
	job := func(name string) func(context.Context, *sql.Tx) error {
		return func(ctx context.Context, tx *sql.Tx) error {
			if name == "busy" {
				close(started)
				<-release
			}
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			return nil
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	run := func(first bool, name string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := s.inTx
			if first {
				in = s.inTxFirst
			}
			if err := in(ctx, job(name)); err != nil {
				t.Error(name, err)
			}
		}()
	}
	run(false, "busy")
	<-started // the committer is running it
	for i := 0; i < 4; i++ {
		run(false, fmt.Sprintf("case%d", i))
	}
	waitUntil(t, func() bool { return len(s.jobs) == 4 })
	run(true, "delivery")
	waitUntil(t, func() bool { return len(s.first) == 1 })
	releaseOnce.Do(func() { close(release) })
	wg.Wait()
	if len(order) != 6 || order[0] != "busy" || order[1] != "delivery" {
		t.Errorf("jobs ran in the order %v, want busy, then delivery ahead of the cases queued before it", order)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not reached in 5 s")
}
