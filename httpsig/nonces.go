package httpsig

import (
	"container/heap"
	"context"
	"errors"
	"sync"
	"time"
)

// NonceStore remembers the nonces of verified signatures. Remember records
// (keyID, nonce) until the given time, atomically: it returns fresh=false if
// the pair is already recorded (the request is a replay). With several
// gateway replicas the store must be shared (a unique key in the
// database).
type NonceStore interface {
	Remember(ctx context.Context, keyID, nonce string, until time.Time) (fresh bool, err error)
}

// NonceChecker is optionally implemented by a NonceStore that can tell,
// without recording, whether a nonce was already used. The verifier then
// refuses a replay at the place signing.md's table gives it (before the
// digest and signature checks); Remember stays the authoritative, atomic
// check after the signature has verified.
type NonceChecker interface {
	Seen(ctx context.Context, keyID, nonce string) (bool, error)
}

// ErrNonceStoreFull is returned by MemoryNonces when it holds its maximum
// of unexpired nonces; the verifier answers 429 rate_limited.
var ErrNonceStoreFull = errors.New("httpsig: nonce store full")

// MemoryNonces is an in-memory NonceStore for one process, bounded in size
// and in time: it holds at most max nonces, and drops those whose time has
// passed as it records new ones. It implements NonceChecker.
type MemoryNonces struct {
	mu   sync.Mutex
	max  int
	seen map[nonceKey]time.Time
	exp  expiryHeap
	now  func() time.Time
}

type nonceKey struct{ keyID, nonce string }

// NewMemoryNonces returns a MemoryNonces holding at most max nonces
// (100 000 when max ≤ 0).
func NewMemoryNonces(max int) *MemoryNonces {
	if max <= 0 {
		max = 100_000
	}
	return &MemoryNonces{max: max, seen: map[nonceKey]time.Time{}, now: time.Now}
}

// Remember implements NonceStore.
func (m *MemoryNonces) Remember(_ context.Context, keyID, nonce string, until time.Time) (bool, error) {
	k := nonceKey{keyID, nonce}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.seen[k]; ok {
		return false, nil
	}
	// Forget what has expired, at every call rather than only when full,
	// so that the store holds about rate × lifetime nonces instead of
	// growing to max first (the delivery worker's store of acknowledgement
	// nonces grew to 100,000 entries, ~30 MB, in 9 minutes at 180/s:
	// docs/performance.md, "Memory"). Only what has expired: an unexpired
	// nonce forgotten would let its request be replayed.
	now := m.now()
	for m.exp.Len() > 0 && m.exp[0].until.Before(now) {
		e := heap.Pop(&m.exp).(expiry)
		delete(m.seen, e.key)
	}
	if len(m.seen) >= m.max {
		return false, ErrNonceStoreFull
	}
	m.seen[k] = until
	heap.Push(&m.exp, expiry{key: k, until: until})
	return true, nil
}

// Seen implements NonceChecker.
func (m *MemoryNonces) Seen(_ context.Context, keyID, nonce string) (bool, error) {
	m.mu.Lock()
	_, ok := m.seen[nonceKey{keyID, nonce}]
	m.mu.Unlock()
	return ok, nil
}

// Len is the number of nonces held.
func (m *MemoryNonces) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.seen)
}

type expiry struct {
	key   nonceKey
	until time.Time
}

type expiryHeap []expiry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].until.Before(h[j].until) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
