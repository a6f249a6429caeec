package exchangelog

import (
	"context"
	"fmt"
	"sync"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
)

// cachedLevel is the lowest tree level kept in memory. Nodes below it (at
// most 2^cachedLevel leaves' worth) are recomputed from the store's leaf
// hashes when a proof needs them, so a log of n entries holds about
// n/2^(cachedLevel-1) hashes in memory: 4 MiB at a million entries.
const cachedLevel = 4

// integrateBatch is how many leaf hashes are read from the store at once.
const integrateBatch = 4096

var rangeFactory = &compact.RangeFactory{Hash: Hasher.HashChildren}

// tree is the in-memory part of the Merkle tree over the store's leaves.
type tree struct {
	mu     sync.RWMutex
	store  Store
	rng    *compact.Range     // [0, size)
	levels [][][HashSize]byte // levels[l][i]: complete node (l, i), for l ≥ cachedLevel
}

func newTree(s Store) *tree {
	return &tree{store: s, rng: rangeFactory.NewEmptyRange(0)}
}

func (t *tree) size() uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.rng.End()
}

// integrate reads the leaves the store holds beyond the tree and adds them.
// Only one integrate runs at a time (the caller serialises).
func (t *tree) integrate(ctx context.Context) (uint64, error) {
	n, err := t.store.LogSize(ctx)
	if err != nil {
		return 0, err
	}
	size := t.size()
	if n < size {
		return size, fmt.Errorf("%w: store holds %d entries, tree already has %d", ErrInconsistent, n, size)
	}
	for size < n {
		end := min(n, size+integrateBatch)
		leaves, err := t.store.LeafHashes(ctx, size, end)
		if err != nil {
			return size, err
		}
		if uint64(len(leaves)) != end-size {
			return size, fmt.Errorf("%w: store returned %d leaf hashes for [%d, %d)", ErrInconsistent, len(leaves), size, end)
		}
		t.mu.Lock()
		for i := range leaves {
			if err := t.rng.Append(leaves[i][:], t.keep); err != nil {
				t.mu.Unlock()
				return size, err
			}
		}
		t.mu.Unlock()
		size = end
	}
	return size, nil
}

// keep is the compact range's visitor: it keeps complete nodes from
// cachedLevel up. Nodes of a level arrive in index order.
func (t *tree) keep(id compact.NodeID, hash []byte) {
	if id.Level < cachedLevel {
		return
	}
	for uint(len(t.levels)) <= id.Level {
		t.levels = append(t.levels, nil)
	}
	t.levels[id.Level] = append(t.levels[id.Level], [HashSize]byte(hash))
}

// root is the root hash of the tree of the given size (≤ the tree's size).
func (t *tree) root(ctx context.Context, size uint64) ([HashSize]byte, error) {
	if size == 0 {
		return EmptyRoot(), nil
	}
	hashes, err := t.nodes(ctx, compact.RangeNodes(0, size, nil), size)
	if err != nil {
		return [HashSize]byte{}, err
	}
	r, err := rangeFactory.NewRange(0, size, hashes)
	if err != nil {
		return [HashSize]byte{}, err
	}
	h, err := r.GetRootHash(nil)
	if err != nil {
		return [HashSize]byte{}, err
	}
	return [HashSize]byte(h), nil
}

// rangeHashes is the compact range of [0, size): the roots of its perfect
// subtrees, largest (leftmost) first.
func (t *tree) rangeHashes(ctx context.Context, size uint64) ([][]byte, error) {
	return t.nodes(ctx, compact.RangeNodes(0, size, nil), size)
}

// inclusion builds the inclusion proof of leaf index in the tree of size.
func (t *tree) inclusion(ctx context.Context, index, size uint64) ([][]byte, error) {
	if size > t.size() || index >= size {
		return nil, fmt.Errorf("%w: inclusion of %d in a tree of %d (log size %d)", ErrNotFound, index, size, t.size())
	}
	ns, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, err
	}
	hashes, err := t.nodes(ctx, ns.IDs, size)
	if err != nil {
		return nil, err
	}
	return ns.Rehash(hashes, Hasher.HashChildren)
}

// consistency builds the consistency proof from size1 to size2.
func (t *tree) consistency(ctx context.Context, size1, size2 uint64) ([][]byte, error) {
	if size2 > t.size() || size1 > size2 {
		return nil, fmt.Errorf("%w: consistency from %d to %d (log size %d)", ErrNotFound, size1, size2, t.size())
	}
	ns, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, err
	}
	hashes, err := t.nodes(ctx, ns.IDs, size2)
	if err != nil {
		return nil, err
	}
	return ns.Rehash(hashes, Hasher.HashChildren)
}

// nodes returns the hashes of complete nodes, all within [0, size). Nodes
// below cachedLevel are recomputed from leaf hashes read from the store, one
// read per block of 2^cachedLevel leaves.
func (t *tree) nodes(ctx context.Context, ids []compact.NodeID, size uint64) ([][]byte, error) {
	out := make([][]byte, len(ids))
	blocks := map[uint64][][HashSize]byte{}
	for i, id := range ids {
		begin, end := id.Coverage()
		if end > size {
			return nil, fmt.Errorf("exchangelog: node %v beyond size %d", id, size)
		}
		if id.Level >= cachedLevel {
			t.mu.RLock()
			var h [HashSize]byte
			ok := int(id.Level) < len(t.levels) && id.Index < uint64(len(t.levels[id.Level]))
			if ok {
				h = t.levels[id.Level][id.Index]
			}
			t.mu.RUnlock()
			if !ok {
				return nil, fmt.Errorf("exchangelog: node %v not integrated", id)
			}
			out[i] = h[:]
			continue
		}
		start := begin &^ (1<<cachedLevel - 1)
		leaves, ok := blocks[start]
		if !ok {
			var err error
			leaves, err = t.store.LeafHashes(ctx, start, min(start+1<<cachedLevel, size))
			if err != nil {
				return nil, err
			}
			blocks[start] = leaves
		}
		if uint64(len(leaves)) < end-start {
			return nil, fmt.Errorf("%w: store returned %d leaf hashes from %d", ErrInconsistent, len(leaves), start)
		}
		h := perfectRoot(leaves[begin-start : end-start])
		out[i] = h[:]
	}
	return out, nil
}

// perfectRoot is the root of a perfect subtree (len a power of two).
func perfectRoot(leaves [][HashSize]byte) [HashSize]byte {
	level := append([][HashSize]byte(nil), leaves...)
	for len(level) > 1 {
		for i := 0; i < len(level)/2; i++ {
			level[i] = NodeHash(level[2*i][:], level[2*i+1][:])
		}
		level = level[:len(level)/2]
	}
	return level[0]
}
