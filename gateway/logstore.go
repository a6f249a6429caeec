package gateway

import (
	"context"
	"time"

	"github.com/tongban/tongban/gateway/exchangelog"
	"github.com/tongban/tongban/gateway/store"
)

// logStore presents the gateway store as the exchange log's Store: the
// entries and checkpoints are the same records under the log's own types.
type logStore struct{ s store.Store }

var _ exchangelog.Store = logStore{}

func (l logStore) LogSize(ctx context.Context) (uint64, error) { return l.s.LogSize(ctx) }

func (l logStore) LeafHashes(ctx context.Context, start, end uint64) ([][exchangelog.HashSize]byte, error) {
	return l.s.LeafHashes(ctx, start, end)
}

func (l logStore) Entries(ctx context.Context, start, end uint64) ([]exchangelog.StoredEntry, error) {
	es, err := l.s.Entries(ctx, start, end)
	return convertEntries(es), err
}

func (l logStore) EntriesOfExchange(ctx context.Context, id string) ([]exchangelog.StoredEntry, error) {
	es, err := l.s.EntriesOfExchange(ctx, id)
	return convertEntries(es), err
}

func (l logStore) AddCheckpoint(ctx context.Context, cp exchangelog.StoredCheckpoint) error {
	return l.s.AddCheckpoint(ctx, store.StoredCheckpoint(cp))
}

func (l logStore) LatestCheckpoint(ctx context.Context) (*exchangelog.StoredCheckpoint, error) {
	return convertCheckpoint(l.s.LatestCheckpoint(ctx))
}

func (l logStore) Checkpoints(ctx context.Context, minSize, maxSize uint64) ([]exchangelog.StoredCheckpoint, error) {
	cps, err := l.s.Checkpoints(ctx, minSize, maxSize)
	out := make([]exchangelog.StoredCheckpoint, len(cps))
	for i, cp := range cps {
		out[i] = exchangelog.StoredCheckpoint(cp)
	}
	return out, err
}

func (l logStore) CheckpointAtOrBefore(ctx context.Context, t time.Time) (*exchangelog.StoredCheckpoint, error) {
	return convertCheckpoint(l.s.CheckpointAtOrBefore(ctx, t))
}

func convertEntries(es []store.StoredEntry) []exchangelog.StoredEntry {
	out := make([]exchangelog.StoredEntry, len(es))
	for i, e := range es {
		out[i] = exchangelog.StoredEntry(e)
	}
	return out
}

func convertCheckpoint(cp *store.StoredCheckpoint, err error) (*exchangelog.StoredCheckpoint, error) {
	if cp == nil || err != nil {
		return nil, err
	}
	c := exchangelog.StoredCheckpoint(*cp)
	return &c, nil
}
