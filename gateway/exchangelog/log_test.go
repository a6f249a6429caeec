package exchangelog

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestOpenRefusesATamperedStore(t *testing.T) {
	f := newFixture(t)
	f.build(12, 4)
	opts := func() *Options { return NewOptions().WithSigner(f.pki.Log) }
	if _, err := Open(f.ctx, f.store, opts().WithEntryCheck(true)); err != nil {
		t.Fatal(err)
	}
	// A leaf rewritten (its hash recomputed, as an operator with database access could).
	s := f.store
	saved := s.entries[5]
	s.entries[5].Bytes = append([]byte(nil), saved.Bytes...)
	s.entries[5].Bytes[20] ^= 1
	s.entries[5].LeafHash = LeafHash(s.entries[5].Bytes)
	if _, err := Open(f.ctx, s, opts()); !errors.Is(err, ErrInconsistent) {
		t.Errorf("rewritten entry: %v", err)
	}
	// Bytes changed but the leaf hash left: only the entry check sees it.
	s.entries[5].LeafHash = saved.LeafHash
	if _, err := Open(f.ctx, s, opts()); err != nil {
		t.Errorf("without entry check: %v", err)
	}
	if _, err := Open(f.ctx, s, opts().WithEntryCheck(true)); !errors.Is(err, ErrInconsistent) {
		t.Errorf("entry check: %v", err)
	}
	s.entries[5] = saved
	// Entries lost after the checkpoint was signed.
	all := s.entries
	s.entries = all[:len(all)-3]
	if _, err := Open(f.ctx, s, opts()); !errors.Is(err, ErrInconsistent) {
		t.Errorf("lost entries: %v", err)
	}
	s.entries = all
	// A checkpoint signed by an unknown key.
	if _, err := Open(f.ctx, s, NewOptions().WithSigner(f.pki.Gateway)); !errors.Is(err, ErrInconsistent) {
		t.Errorf("unknown log key: %v", err)
	}
}

func TestSyncSignsOnlyWhenGrownAndLeader(t *testing.T) {
	f := newFixture(t)
	f.sync()
	if f.log.Checkpoint() != nil {
		t.Fatal("checkpoint of an empty log")
	}
	f.addExchange(0)
	f.sync()
	first := f.log.Checkpoint()
	f.sync()
	if cps, _ := f.store.Checkpoints(f.ctx, 0, 100); len(cps) != 1 {
		t.Fatalf("%d checkpoints without growth", len(cps))
	}
	// A replica that is not the leader does not sign, but picks up the leader's.
	follower, err := Open(f.ctx, f.store, NewOptions().WithSigner(f.pki.Log).WithLeader(func() bool { return false }))
	if err != nil {
		t.Fatal(err)
	}
	f.addExchange(1)
	if err := follower.Sync(f.ctx); err != nil {
		t.Fatal(err)
	}
	if string(follower.Checkpoint()) != string(first) {
		t.Fatal("follower signed")
	}
	f.sync()
	if err := follower.Sync(f.ctx); err != nil {
		t.Fatal(err)
	}
	if string(follower.Checkpoint()) != string(f.log.Checkpoint()) || follower.Size() != f.log.Size() {
		t.Fatal("follower did not pick up the leader's checkpoint")
	}
	p, err := follower.ConsistencyProof(f.ctx, 2, 4)
	if err != nil {
		t.Fatal(err)
	}
	r1, _ := follower.Root(f.ctx, 2)
	r2, _ := follower.Root(f.ctx, 4)
	if err := p.Verify(r1, r2); err != nil {
		t.Error(err)
	}
	ip, err := follower.InclusionProof(f.ctx, 1, 4)
	if err != nil {
		t.Fatal(err)
	}
	es, _ := f.store.Entries(f.ctx, 1, 2)
	if err := ip.Verify(es[0].LeafHash, r2); err != nil {
		t.Error(err)
	}
	if _, err := follower.InclusionProof(f.ctx, 4, 4); !errors.Is(err, ErrNotFound) {
		t.Errorf("proof beyond the log: %v", err)
	}
	// No signer: the leader reports it.
	noKey, err := Open(f.ctx, f.store, NewOptions().WithLogCertificates(f.pki.Log.Certificate()))
	if err != nil {
		t.Fatal(err)
	}
	f.addExchange(2)
	if err := noKey.Sync(f.ctx); !errors.Is(err, ErrNoSigner) || !errors.Is(noKey.Err(), ErrNoSigner) {
		t.Errorf("no signer: %v", err)
	}
}

func TestRunSignsWhileEntriesArrive(t *testing.T) {
	pki := devPKI(t)
	s := NewMemoryStore()
	l, err := Open(context.Background(), s, NewOptions().WithSigner(pki.Log).WithInterval(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	for i := 0; i < 5; i++ {
		s.AppendBytes("x", "", fixedTime, []byte{byte(i)})
		deadline := time.Now().Add(5 * time.Second)
		for {
			c, _, ok := l.LatestCheckpoint()
			if ok && c.Size == uint64(i+1) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no checkpoint of size %d", i+1)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v", err)
	}
}
