package exchangelog

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// ErrNotFound is returned (wrapped) for an index, size or exchange the log
// does not hold.
var ErrNotFound = errors.New("exchangelog: not found")

// StoredEntry is one log entry as stored. Its fields are those of the
// gateway store's StoredEntry, so one converts to the other.
type StoredEntry struct {
	Index    uint64
	Time     time.Time
	Kind     string
	Exchange string
	Bytes    []byte
	LeafHash [HashSize]byte
}

// StoredCheckpoint is one signed checkpoint as stored: its tree size, when it
// was signed, and the signed note. Its fields are those of the gateway
// store's StoredCheckpoint.
type StoredCheckpoint struct {
	Size uint64
	Time time.Time
	Note []byte
}

// Store is where the log lives; the gateway's store implements it (with an
// adapter converting its StoredEntry/StoredCheckpoint). Entries are appended
// by the store itself, inside the business transaction: index = current
// size, gapless, leaf hash = [LeafHash] of the bytes.
type Store interface {
	// LogSize is the number of committed entries.
	LogSize(ctx context.Context) (uint64, error)
	// LeafHashes of the entries start ≤ i < end.
	LeafHashes(ctx context.Context, start, end uint64) ([][HashSize]byte, error)
	// Entries start ≤ i < end, in index order.
	Entries(ctx context.Context, start, end uint64) ([]StoredEntry, error)
	// EntriesOfExchange in index order (none: empty, no error).
	EntriesOfExchange(ctx context.Context, id string) ([]StoredEntry, error)
	// AddCheckpoint stores a checkpoint; sizes are unique.
	AddCheckpoint(ctx context.Context, cp StoredCheckpoint) error
	// LatestCheckpoint is the checkpoint of the largest size (nil, nil when none).
	LatestCheckpoint(ctx context.Context) (*StoredCheckpoint, error)
	// Checkpoints with minSize ≤ size ≤ maxSize, by size.
	Checkpoints(ctx context.Context, minSize, maxSize uint64) ([]StoredCheckpoint, error)
	// CheckpointAtOrBefore is the last checkpoint signed at or before t
	// (nil, nil when none).
	CheckpointAtOrBefore(ctx context.Context, t time.Time) (*StoredCheckpoint, error)
}

// MemoryStore is a Store held in memory, safe for concurrent use. Besides the
// Store methods it appends entries ([MemoryStore.Append]).
type MemoryStore struct {
	mu          sync.RWMutex
	entries     []StoredEntry
	byExchange  map[string][]uint64
	checkpoints []StoredCheckpoint // by size
}

// NewMemoryStore returns an empty in-memory store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{byExchange: make(map[string][]uint64)}
}

// Append marshals an entry and appends it at the next index.
func (m *MemoryStore) Append(_ context.Context, e Entry) (StoredEntry, error) {
	b, err := Marshal(e)
	if err != nil {
		return StoredEntry{}, err
	}
	return m.AppendBytes(e.kind(), e.ExchangeID(), e.header().Time, b), nil
}

// AppendBytes appends an already serialized entry at the next index.
func (m *MemoryStore) AppendBytes(kind, exchange string, t time.Time, b []byte) StoredEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	se := StoredEntry{Index: uint64(len(m.entries)), Time: t, Kind: kind, Exchange: exchange, Bytes: b, LeafHash: LeafHash(b)}
	m.entries = append(m.entries, se)
	if exchange != "" {
		m.byExchange[exchange] = append(m.byExchange[exchange], se.Index)
	}
	return se
}

// LogSize implements Store.
func (m *MemoryStore) LogSize(context.Context) (uint64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return uint64(len(m.entries)), nil
}

func (m *MemoryStore) checkRange(start, end uint64) error {
	if start > end || end > uint64(len(m.entries)) {
		return fmt.Errorf("%w: entries [%d, %d) of %d", ErrNotFound, start, end, len(m.entries))
	}
	return nil
}

// LeafHashes implements Store.
func (m *MemoryStore) LeafHashes(_ context.Context, start, end uint64) ([][HashSize]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if err := m.checkRange(start, end); err != nil {
		return nil, err
	}
	out := make([][HashSize]byte, 0, end-start)
	for _, e := range m.entries[start:end] {
		out = append(out, e.LeafHash)
	}
	return out, nil
}

// Entries implements Store.
func (m *MemoryStore) Entries(_ context.Context, start, end uint64) ([]StoredEntry, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if err := m.checkRange(start, end); err != nil {
		return nil, err
	}
	return append([]StoredEntry(nil), m.entries[start:end]...), nil
}

// EntriesOfExchange implements Store.
func (m *MemoryStore) EntriesOfExchange(_ context.Context, id string) ([]StoredEntry, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []StoredEntry
	for _, i := range m.byExchange[id] {
		out = append(out, m.entries[i])
	}
	return out, nil
}

// AddCheckpoint implements Store.
func (m *MemoryStore) AddCheckpoint(_ context.Context, cp StoredCheckpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := sort.Search(len(m.checkpoints), func(i int) bool { return m.checkpoints[i].Size >= cp.Size })
	if i < len(m.checkpoints) && m.checkpoints[i].Size == cp.Size {
		return fmt.Errorf("exchangelog: a checkpoint of size %d exists", cp.Size)
	}
	m.checkpoints = append(m.checkpoints, StoredCheckpoint{})
	copy(m.checkpoints[i+1:], m.checkpoints[i:])
	m.checkpoints[i] = cp
	return nil
}

// LatestCheckpoint implements Store.
func (m *MemoryStore) LatestCheckpoint(context.Context) (*StoredCheckpoint, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if len(m.checkpoints) == 0 {
		return nil, nil
	}
	cp := m.checkpoints[len(m.checkpoints)-1]
	return &cp, nil
}

// Checkpoints implements Store.
func (m *MemoryStore) Checkpoints(_ context.Context, minSize, maxSize uint64) ([]StoredCheckpoint, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []StoredCheckpoint
	for _, cp := range m.checkpoints {
		if cp.Size >= minSize && cp.Size <= maxSize {
			out = append(out, cp)
		}
	}
	return out, nil
}

// CheckpointAtOrBefore implements Store.
func (m *MemoryStore) CheckpointAtOrBefore(_ context.Context, t time.Time) (*StoredCheckpoint, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var best *StoredCheckpoint
	for i := range m.checkpoints {
		cp := m.checkpoints[i]
		if !cp.Time.After(t) && (best == nil || cp.Size > best.Size) {
			best = &cp
		}
	}
	return best, nil
}
