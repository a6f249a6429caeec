package exchangelog

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/bits"
	"testing"

	"github.com/tongban/tongban/certs"
	"github.com/transparency-dev/merkle/proof"
)

// naiveRoot is a deliberately naive recursive RFC 6962 §2.1 tree hash over
// SM3, independent of the package's tree code.
func naiveRoot(entries [][]byte) []byte {
	n := len(entries)
	switch n {
	case 0:
		h := certs.SM3(nil)
		return h[:]
	case 1:
		h := certs.SM3(append([]byte{0}, entries[0]...))
		return h[:]
	}
	k := 1
	for k*2 < n {
		k *= 2
	}
	l, r := naiveRoot(entries[:k]), naiveRoot(entries[k:])
	h := certs.SM3(append(append([]byte{1}, l...), r...))
	return h[:]
}

func TestHashVectors(t *testing.T) {
	// SM3("") from GB/T 32905 implementations (OpenSSL `openssl dgst -sm3 /dev/null`).
	if got := hex.EncodeToString(Hasher.EmptyRoot()); got != "1ab21d8355cfa17f8e61194831e81a8f22bec8c728fefb747ed035eb5082aa2b" {
		t.Errorf("empty root %s", got)
	}
	if got := certs.SM3Hex([]byte("abc")); got != "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0" {
		t.Errorf("SM3(abc) = %s", got)
	}
	leaf := LeafHash([]byte("abc"))
	if want := certs.SM3([]byte("\x00abc")); leaf != want {
		t.Errorf("leaf hash %x, want %x", leaf, want)
	}
	node := NodeHash([]byte("L"), []byte("R"))
	if want := certs.SM3([]byte("\x01LR")); node != want {
		t.Errorf("node hash %x, want %x", node, want)
	}
	if Hasher.Size() != 32 {
		t.Errorf("size %d", Hasher.Size())
	}
}

// smallLog appends n distinct entries to a memory store and opens a tree.
func smallLog(t testing.TB, n int) (*tree, [][]byte) {
	t.Helper()
	s := NewMemoryStore()
	var entries [][]byte
	for i := 0; i < n; i++ {
		b := []byte(fmt.Sprintf(`{"v":1,"n":%d}`, i))
		entries = append(entries, b)
		s.AppendBytes("x", "", fixedTime, b)
	}
	tr := newTree(s)
	if _, err := tr.integrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return tr, entries
}

func TestTreeRootMatchesNaive(t *testing.T) {
	t.Parallel()
	tr, entries := smallLog(t, 70)
	ctx := context.Background()
	for size := 0; size <= len(entries); size++ {
		got, err := tr.root(ctx, uint64(size))
		if err != nil {
			t.Fatal(err)
		}
		if want := naiveRoot(entries[:size]); hex.EncodeToString(got[:]) != hex.EncodeToString(want) {
			t.Fatalf("size %d: root %x, want %x", size, got, want)
		}
	}
}

func TestProofsVerifyWithTransparencyDev(t *testing.T) {
	t.Parallel()
	const n = 45
	tr, entries := smallLog(t, n)
	ctx := context.Background()
	roots := make([][]byte, n+1)
	for s := 0; s <= n; s++ {
		roots[s] = naiveRoot(entries[:s])
	}
	for size := uint64(1); size <= n; size++ {
		for i := uint64(0); i < size; i++ {
			p, err := tr.inclusion(ctx, i, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyInclusion(Hasher, i, size, Hasher.HashLeaf(entries[i]), p, roots[size]); err != nil {
				t.Fatalf("inclusion %d in %d: %v", i, size, err)
			}
			if max := bits.Len64(size - 1); len(p) > max {
				t.Fatalf("inclusion %d in %d: %d hashes, more than %d", i, size, len(p), max)
			}
			// A proof for another leaf must not verify.
			if err := proof.VerifyInclusion(Hasher, i, size, Hasher.HashLeaf([]byte("forged")), p, roots[size]); err == nil {
				t.Fatalf("forged leaf verified at %d in %d", i, size)
			}
		}
		for from := uint64(0); from <= size; from++ {
			p, err := tr.consistency(ctx, from, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyConsistency(Hasher, from, size, p, roots[from], roots[size]); err != nil {
				t.Fatalf("consistency %d→%d: %v", from, size, err)
			}
			if max := bits.Len64(size) + 1; len(p) > max {
				t.Fatalf("consistency %d→%d: %d hashes, more than %d", from, size, len(p), max)
			}
		}
	}
	if _, err := tr.inclusion(ctx, n, n); err == nil {
		t.Error("inclusion of index == size succeeded")
	}
	if _, err := tr.consistency(ctx, 3, n+1); err == nil {
		t.Error("consistency beyond the tree succeeded")
	}
}

func TestProofsLogarithmicAtScale(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a tree of 100,000 leaves")
	}
	t.Parallel()
	tr, entries := smallLog(t, 100_000)
	ctx := context.Background()
	root, err := tr.root(ctx, 100_000)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []uint64{0, 1, 4095, 65535, 65536, 99_999} {
		p, err := tr.inclusion(ctx, i, 100_000)
		if err != nil {
			t.Fatal(err)
		}
		if len(p) > 17 {
			t.Errorf("inclusion of %d: %d hashes", i, len(p))
		}
		if err := proof.VerifyInclusion(Hasher, i, 100_000, Hasher.HashLeaf(entries[i]), p, root[:]); err != nil {
			t.Errorf("inclusion of %d: %v", i, err)
		}
	}
	r1, _ := tr.root(ctx, 77_777)
	p, err := tr.consistency(ctx, 77_777, 100_000)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(Hasher, 77_777, 100_000, p, r1[:], root[:]); err != nil {
		t.Error(err)
	}
	// Memory: only levels ≥ cachedLevel are kept.
	var nodes int
	for _, l := range tr.levels {
		nodes += len(l)
	}
	if nodes > 100_000/(1<<(cachedLevel-1)) {
		t.Errorf("%d nodes kept in memory for 100,000 leaves", nodes)
	}
}
