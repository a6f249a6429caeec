package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"
)

var (
	qLogSize          = newQuery("SELECT size FROM log_head WHERE id = 0")
	qLeafHashes       = newQuery("SELECT idx, leaf_hash FROM log_entries WHERE idx >= ? AND idx < ? ORDER BY idx")
	qEntries          = newQuery("SELECT " + entryCols + " FROM log_entries WHERE idx >= ? AND idx < ? ORDER BY idx")
	qEntriesOf        = newQuery("SELECT " + entryCols + " FROM log_entries WHERE exchange_id = ? ORDER BY idx")
	qRecentDecisions  = newQuery("SELECT " + entryCols + " FROM log_entries WHERE has_decision = 1 ORDER BY idx DESC LIMIT ?")
	qAddCheckpoint    = newQuery("INSERT INTO checkpoints (size, time_ns, note) VALUES (?, ?, ?) ON CONFLICT (size) DO NOTHING")
	qLatestCheckpoint = newQuery("SELECT size, time_ns, note FROM checkpoints ORDER BY size DESC LIMIT 1")
	qCheckpoints      = newQuery("SELECT size, time_ns, note FROM checkpoints WHERE size >= ? AND size <= ? ORDER BY size")
	qCheckpointBefore = newQuery("SELECT size, time_ns, note FROM checkpoints WHERE time_ns <= ? ORDER BY size DESC LIMIT 1")
)

// LogSize implements Store.
func (s *sqlStore) LogSize(ctx context.Context) (uint64, error) {
	var n int64
	if err := s.dbQueryRow(ctx, s.r, qLogSize).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: log size: %w", err)
	}
	return uint64(n), nil
}

// checkRange validates [start, end): an empty range is fine, one reaching past
// the log is ErrNotFound.
func (s *sqlStore) checkRange(ctx context.Context, start, end uint64) error {
	if start > end {
		return fmt.Errorf("store: log range [%d, %d): start after end", start, end)
	}
	if start == end {
		return nil
	}
	size, err := s.LogSize(ctx)
	if err != nil {
		return err
	}
	if end > size {
		return fmt.Errorf("%w: log range [%d, %d) beyond size %d", ErrNotFound, start, end, size)
	}
	return nil
}

// LeafHashes implements Store: the leaf hashes of entries start ≤ i < end.
// A range past the log's size is ErrNotFound.
func (s *sqlStore) LeafHashes(ctx context.Context, start, end uint64) ([][32]byte, error) {
	if err := s.checkRange(ctx, start, end); err != nil || start == end {
		return nil, err
	}
	rows, err := s.dbQuery(ctx, s.r, qLeafHashes, int64(start), int64(end))
	if err != nil {
		return nil, fmt.Errorf("store: leaf hashes: %w", err)
	}
	defer rows.Close()
	out := make([][32]byte, 0, end-start)
	for rows.Next() {
		var idx int64
		var b []byte
		if err := rows.Scan(&idx, &b); err != nil {
			return nil, fmt.Errorf("store: leaf hashes: %w", err)
		}
		if uint64(idx) != start+uint64(len(out)) {
			return nil, fmt.Errorf("store: log entry %d missing", start+uint64(len(out)))
		}
		h, err := hash32(b)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: leaf hashes: %w", err)
	}
	if uint64(len(out)) != end-start {
		return nil, fmt.Errorf("store: log entries [%d, %d): %d stored", start, end, len(out))
	}
	return out, nil
}

const entryCols = "idx, time_ns, kind, exchange_id, bytes, leaf_hash"

func scanEntries(rows *sql.Rows, err error) ([]StoredEntry, error) {
	if err != nil {
		return nil, fmt.Errorf("store: entries: %w", err)
	}
	defer rows.Close()
	var out []StoredEntry
	for rows.Next() {
		var e StoredEntry
		var idx, t int64
		var leaf []byte
		if err := rows.Scan(&idx, &t, &e.Kind, &e.Exchange, &e.Bytes, &leaf); err != nil {
			return nil, fmt.Errorf("store: entries: %w", err)
		}
		if e.LeafHash, err = hash32(leaf); err != nil {
			return nil, err
		}
		e.Index, e.Time = uint64(idx), fromNs(t)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: entries: %w", err)
	}
	return out, nil
}

// Entries implements Store: entries start ≤ i < end in log order. A range
// past the log's size is ErrNotFound.
func (s *sqlStore) Entries(ctx context.Context, start, end uint64) ([]StoredEntry, error) {
	if err := s.checkRange(ctx, start, end); err != nil || start == end {
		return nil, err
	}
	out, err := scanEntries(s.dbQuery(ctx, s.r, qEntries, int64(start), int64(end)))
	if err != nil {
		return nil, err
	}
	if uint64(len(out)) != end-start {
		return nil, fmt.Errorf("store: log entries [%d, %d): %d stored", start, end, len(out))
	}
	return out, nil
}

// EntriesOfExchange implements Store, in log order (none: an empty slice).
func (s *sqlStore) EntriesOfExchange(ctx context.Context, id string) ([]StoredEntry, error) {
	return scanEntries(s.dbQuery(ctx, s.r, qEntriesOf, id))
}

// RecentDecisions implements Store: the last n entries of kind exchange or
// denied that carry a top-level policy_input, newest first.
func (s *sqlStore) RecentDecisions(ctx context.Context, n int) ([]StoredEntry, error) {
	if n <= 0 {
		return nil, nil
	}
	return scanEntries(s.dbQuery(ctx, s.r, qRecentDecisions, n))
}

// AddCheckpoint implements Store. Checkpoints are keyed by size: when two
// replicas sign the same size, the first one stored is kept and the second
// call succeeds without effect (both notes verify; they differ only by the
// signature's randomness).
func (s *sqlStore) AddCheckpoint(ctx context.Context, cp StoredCheckpoint) error {
	t := cp.Time
	if t.IsZero() {
		t = s.now()
	}
	if _, err := s.dbExec(ctx, s.w, qAddCheckpoint, int64(cp.Size), ns(t), nonNil(cp.Note)); err != nil {
		return fmt.Errorf("store: add checkpoint: %w", err)
	}
	return nil
}

func (s *sqlStore) oneCheckpoint(ctx context.Context, q query, args ...any) (*StoredCheckpoint, error) {
	var cp StoredCheckpoint
	var size, t int64
	err := s.dbQueryRow(ctx, s.r, q, args...).Scan(&size, &t, &cp.Note)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: checkpoint: %w", err)
	}
	cp.Size, cp.Time = uint64(size), fromNs(t)
	return &cp, nil
}

// LatestCheckpoint implements Store: the largest.
func (s *sqlStore) LatestCheckpoint(ctx context.Context) (*StoredCheckpoint, error) {
	return s.oneCheckpoint(ctx, qLatestCheckpoint)
}

// Checkpoints implements Store: those with minSize ≤ size ≤ maxSize,
// smallest first.
func (s *sqlStore) Checkpoints(ctx context.Context, minSize, maxSize uint64) ([]StoredCheckpoint, error) {
	if minSize > maxSize {
		return nil, nil
	}
	hi := int64(maxSize)
	if maxSize > 1<<63-1 {
		hi = 1<<63 - 1
	}
	rows, err := s.dbQuery(ctx, s.r, qCheckpoints, int64(minSize), hi)
	if err != nil {
		return nil, fmt.Errorf("store: checkpoints: %w", err)
	}
	defer rows.Close()
	var out []StoredCheckpoint
	for rows.Next() {
		var cp StoredCheckpoint
		var size, t int64
		if err := rows.Scan(&size, &t, &cp.Note); err != nil {
			return nil, fmt.Errorf("store: checkpoints: %w", err)
		}
		cp.Size, cp.Time = uint64(size), fromNs(t)
		out = append(out, cp)
	}
	return out, rows.Err()
}

// CheckpointAtOrBefore implements Store: of the checkpoints signed at or
// before t, the largest.
func (s *sqlStore) CheckpointAtOrBefore(ctx context.Context, t time.Time) (*StoredCheckpoint, error) {
	return s.oneCheckpoint(ctx, qCheckpointBefore, clampNs(t))
}

// Ping implements Store.
func (s *sqlStore) Ping(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	if s.r != s.w {
		if err := s.r.PingContext(ctx); err != nil {
			return fmt.Errorf("store: ping: %w", err)
		}
	}
	return nil
}

// clampNs is t in Unix nanoseconds, clamped to the int64 range (the zero time
// is before everything).
func clampNs(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, math.MinInt64)):
		return math.MinInt64
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return t.UnixNano()
}
