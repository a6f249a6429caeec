package exchangelog

import (
	"github.com/tongban/tongban/certs"
	"github.com/transparency-dev/merkle"
)

// HashSize is the size of an SM3 digest, and so of every tree hash.
const HashSize = 32

// Domain-separation prefixes of RFC 6962 §2.1.
const (
	leafPrefix = 0x00
	nodePrefix = 0x01
)

// LeafHash is the Merkle leaf hash of an entry: SM3(0x00 ‖ entry).
func LeafHash(entry []byte) [HashSize]byte {
	h := certs.NewSM3()
	h.Write([]byte{leafPrefix})
	h.Write(entry)
	var out [HashSize]byte
	h.Sum(out[:0])
	return out
}

// NodeHash is the hash of an interior node: SM3(0x01 ‖ left ‖ right).
func NodeHash(left, right []byte) [HashSize]byte {
	h := certs.NewSM3()
	h.Write([]byte{nodePrefix})
	h.Write(left)
	h.Write(right)
	var out [HashSize]byte
	h.Sum(out[:0])
	return out
}

// EmptyRoot is the root of the empty tree: SM3 of the empty string.
func EmptyRoot() [HashSize]byte { return certs.SM3(nil) }

// Hasher is the SM3 [merkle.LogHasher] of the log, for the proof and compact
// packages of github.com/transparency-dev/merkle.
var Hasher merkle.LogHasher = sm3Hasher{}

type sm3Hasher struct{}

func (sm3Hasher) EmptyRoot() []byte { r := EmptyRoot(); return r[:] }

func (sm3Hasher) HashLeaf(leaf []byte) []byte { h := LeafHash(leaf); return h[:] }

func (sm3Hasher) HashChildren(l, r []byte) []byte { h := NodeHash(l, r); return h[:] }

func (sm3Hasher) Size() int { return HashSize }
