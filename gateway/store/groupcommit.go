package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// groupStats counts commits, for tests and tuning.
type groupStats struct {
	batches     atomic.Int64 // commits of more than one job
	batchedJobs atomic.Int64 // jobs in those commits
	commits     atomic.Int64 // all commits of the committer
}

// Group commit (SQLite). Every write transaction is a job; one committer
// goroutine runs the jobs that are waiting in one transaction and one fsync,
// and answers each caller only after that commit. Each job runs inside its
// own SAVEPOINT, so a job that fails (a duplicate, a refused transition, a
// receipt that could not be signed) is rolled back alone — its log index
// included, so the log stays gapless — and the others commit. Nothing is
// acknowledged before it is durable; a commit failure fails every job of
// the batch, none of which was acknowledged.
//
// It is used on SQLite only, which has one writer anyway. On PostgreSQL a
// batch would hold log_head's lock while waiting for row locks other
// replicas hold, breaking the lock order that keeps replicas deadlock-free.

// ErrClosed: the store was closed.
var ErrClosed = errors.New("store: closed")

type txJob struct {
	ctx  context.Context
	fn   func(ctx context.Context, tx *sql.Tx) error
	done chan error
}

// submit queues fn for the committer and waits for its outcome. Once
// queued, a job runs to completion even if ctx is cancelled meanwhile
// (interrupting one statement would roll back the whole batch), like a
// request whose response was lost. queue is s.jobs or s.first.
func (s *sqlStore) submit(ctx context.Context, queue chan *txJob, fn func(ctx context.Context, tx *sql.Tx) error) error {
	j := &txJob{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case queue <- j:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stop:
		return ErrClosed
	}
	select {
	case err := <-j.done:
		return err
	case <-s.committed:
		// The committer stopped; it may have answered just before.
		select {
		case err := <-j.done:
			return err
		default:
			return ErrClosed
		}
	}
}

// committer runs batches until the store closes; jobs still queued then are
// answered ErrClosed. Jobs of s.first (the delivery worker's claims and
// outcomes) are taken before those of s.jobs, into the next batch: under
// a load the disk cannot keep up with, new cases then wait for commits
// longer, rather than the outbox growing without bound while deliveries
// wait behind them (docs/performance.md, fourth round). They cannot starve
// the other jobs: the worker has at most two of them queued per delivery
// in flight (its claim, its outcome), and its deliveries in flight are
// bounded by the partners' slots, so each batch takes what is waiting in
// s.first and fills the rest from s.jobs.
func (s *sqlStore) committer() {
	defer s.wg.Done()
	defer close(s.committed)
	batch := make([]*txJob, 0, s.maxBatch)
	var lastStart time.Time
	contended := false // the last commit had company: several jobs, or more waiting
	for {
		j := s.waiting()
		if j == nil {
			select {
			case <-s.stop:
				for _, q := range []chan *txJob{s.first, s.jobs} {
				drain:
					for {
						select {
						case j := <-q:
							j.done <- ErrClosed
						default:
							break drain
						}
					}
				}
				return
			case j = <-s.first:
			case j = <-s.jobs:
			}
		}
		batch = append(batch[:0], j)
		// Pace the commits of concurrent writers: at most one every
		// commitInterval. A commit costs about the same whether it carries
		// one job or forty (the pages every write touches — table and
		// index tails, the log head — are written to the WAL again, and
		// fsynced), so committing each job as soon as the previous commit
		// finished spent most of the store's CPU at moderate load
		// (docs/performance.md, sixth round). Only when writers are
		// concurrent — the previous commit carried several jobs, or jobs
		// were waiting as it ended: a lone writer, whose next job comes
		// only after its answer, is not held back. Under full load a
		// commit takes longer than the interval and nothing waits.
		if wait := time.Until(lastStart.Add(s.commitInterval)); wait > 0 && contended {
			time.Sleep(wait)
		}
		lastStart = time.Now()
		for len(batch) < s.maxBatch {
			j := s.waiting()
			if j == nil {
				break
			}
			batch = append(batch, j)
		}
		othersWaiting := s.runBatch(batch)
		s.commits.Add(1)
		contended = len(batch) > 1 || othersWaiting
	}
}

// waiting takes a job already queued, one of s.first before any of s.jobs;
// nil when both are empty.
func (s *sqlStore) waiting() *txJob {
	select {
	case j := <-s.first:
		return j
	default:
	}
	select {
	case j := <-s.jobs:
		return j
	default:
		return nil
	}
}

var (
	qSavepoint           = newQuery("SAVEPOINT job")
	qReleaseSavepoint    = newQuery("RELEASE SAVEPOINT job")
	qRollbackToSavepoint = newQuery("ROLLBACK TO SAVEPOINT job")
)

// runBatch runs batch in one transaction (a single job in its own) and
// answers each job. It reports whether other jobs were waiting when the
// transaction ended, looked at before the batch's callers are answered: a
// lone writer's next job may be queued as soon as it has its answer.
func (s *sqlStore) runBatch(batch []*txJob) (waiting bool) {
	queued := func() bool { return len(s.first)+len(s.jobs) > 0 }
	if len(batch) == 1 {
		j := batch[0]
		err := s.runTx(context.WithoutCancel(j.ctx), j.fn)
		waiting = queued()
		j.done <- err
		return waiting
	}
	ctx := context.Background()
	results := make([]error, len(batch))
	fail := func(err error) {
		waiting = queued()
		for _, j := range batch {
			j.done <- err
		}
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		fail(fmt.Errorf("store: begin: %w", err))
		return
	}
	for i, j := range batch {
		if err := j.ctx.Err(); err != nil {
			results[i] = err
			continue
		}
		if _, err := s.txExec(ctx, tx, qSavepoint); err != nil {
			_ = tx.Rollback()
			fail(fmt.Errorf("store: savepoint: %w", err))
			return
		}
		results[i] = j.fn(context.WithoutCancel(j.ctx), tx)
		end := []query{qReleaseSavepoint}
		if results[i] != nil {
			end = []query{qRollbackToSavepoint, qReleaseSavepoint}
		}
		for _, stmt := range end {
			// If SQLite had rolled the whole transaction back (I/O error,
			// full disk), the savepoint is gone and this fails: abort the
			// batch rather than let later jobs run outside a transaction.
			if _, err := s.txExec(ctx, tx, stmt); err != nil {
				_ = tx.Rollback()
				fail(fmt.Errorf("store: batch aborted: %w (job error: %v)", err, results[i]))
				return
			}
		}
	}
	if err := tx.Commit(); err != nil {
		fail(fmt.Errorf("store: commit: %w", err))
		return
	}
	s.batches.Add(1)
	s.batchedJobs.Add(int64(len(batch)))
	waiting = queued()
	for i, j := range batch {
		j.done <- results[i]
	}
	return waiting
}
