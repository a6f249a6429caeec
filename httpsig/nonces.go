package httpsig

import (
	"container/heap"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/tongban/tongban/certs"
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

// NonceNoter is optionally implemented by a NonceStore that keeps a
// faster copy of what it recorded (for NonceChecker): the verifier tells
// it of deferred nonces the handler recorded itself (Verifier.Defer).
type NonceNoter interface {
	Note(keyID, nonce string, until time.Time)
}

// ErrNonceStoreFull is returned by MemoryNonces when it holds its maximum
// of unexpired nonces; the verifier answers 429 rate_limited.
var ErrNonceStoreFull = errors.New("httpsig: nonce store full")

// MemoryNonces is an in-memory NonceStore for one process, bounded in size
// and in time: it holds at most max nonces, and drops those whose time has
// passed as it records new ones. It implements NonceChecker.
//
// A pair is held as the first 16 bytes of SM3(keyID ‖ 0x00 ‖ nonce), in a
// set and, with its expiry in Unix nanoseconds, in a heap by expiry: ~50
// bytes an entry with no pointers, so the collector never scans either.
// Nonces live for the signature window (300 s), so a store holds rate ×
// 300 s of them: the delivery worker's
// store of acknowledgement nonces reached its old bound of 100,000 strings
// after ~100 s at 1,000 deliveries/s, and every acknowledgement after that
// was refused as if the store were under attack (docs/performance.md).
type MemoryNonces struct {
	mu   sync.Mutex
	max  int
	seen map[nonceKey]struct{}
	exp  expiryHeap
	now  func() time.Time
}

type nonceKey [16]byte

func keyOf(keyID, nonce string) nonceKey {
	b := make([]byte, 0, len(keyID)+1+len(nonce))
	b = append(append(append(b, keyID...), 0), nonce...)
	sum := certs.SM3(b)
	return nonceKey(sum[:16])
}

// DefaultMaxNonces is the bound of NewMemoryNonces(0): the signature
// window of 300 s at ~3,300 signatures per second, ~50 MB when full.
const DefaultMaxNonces = 1_000_000

// NewMemoryNonces returns a MemoryNonces holding at most max nonces
// (DefaultMaxNonces when max ≤ 0).
func NewMemoryNonces(max int) *MemoryNonces {
	if max <= 0 {
		max = DefaultMaxNonces
	}
	return &MemoryNonces{max: max, seen: map[nonceKey]struct{}{}, now: time.Now}
}

// Remember implements NonceStore.
func (m *MemoryNonces) Remember(_ context.Context, keyID, nonce string, until time.Time) (bool, error) {
	k := keyOf(keyID, nonce)
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
	now := m.now().UnixNano()
	for m.exp.Len() > 0 && m.exp[0].until < now {
		e := heap.Pop(&m.exp).(expiry)
		delete(m.seen, e.key)
	}
	if len(m.seen) >= m.max {
		return false, ErrNonceStoreFull
	}
	m.seen[k] = struct{}{}
	heap.Push(&m.exp, expiry{key: k, until: until.UnixNano()})
	return true, nil
}

// Seen implements NonceChecker.
func (m *MemoryNonces) Seen(_ context.Context, keyID, nonce string) (bool, error) {
	k := keyOf(keyID, nonce)
	m.mu.Lock()
	_, ok := m.seen[k]
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
	until int64 // Unix nanoseconds
}

type expiryHeap []expiry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].until < h[j].until }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
