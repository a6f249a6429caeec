package exchangelog

import (
	"context"
	"sync"
	"testing"
)

// racingStore is a Store on which another replica appends entries and signs
// a checkpoint between a replica's first LogSize and its LatestCheckpoint,
// as happens when a replica starts while the others serve.
type racingStore struct {
	*MemoryStore
	once   sync.Once
	meddle func()
}

func (s *racingStore) LatestCheckpoint(ctx context.Context) (*StoredCheckpoint, error) {
	s.once.Do(s.meddle)
	return s.MemoryStore.LatestCheckpoint(ctx)
}

func TestOpenWhileAnotherReplicaSigns(t *testing.T) {
	f := newFixture(t)
	f.build(8, 4)
	rs := &racingStore{MemoryStore: f.store, meddle: func() {
		for i := 100; i < 103; i++ {
			f.addExchange(i)
		}
		f.sync()
	}}
	before, _ := f.store.LogSize(f.ctx)
	l, err := Open(f.ctx, rs, NewOptions().WithSigner(f.pki.Log).WithLeader(func() bool { return false }))
	if err != nil {
		t.Fatalf("a replica starting while another signs: %v", err)
	}
	after, _ := f.store.LogSize(f.ctx)
	if after <= before || l.Size() != after {
		t.Fatalf("tree of %d leaves, store of %d (was %d)", l.Size(), after, before)
	}
	if c, _, ok := l.LatestCheckpoint(); !ok || c.Size != after {
		t.Fatalf("latest checkpoint %+v, want size %d", c, after)
	}
}
