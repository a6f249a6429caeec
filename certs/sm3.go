package certs

import (
	"encoding/hex"
	"hash"

	"github.com/emmansun/gmsm/sm3"
)

// SM3Size is the size of an SM3 digest in bytes.
const SM3Size = sm3.Size

// SM3 returns the SM3 digest (GB/T 32905) of b.
func SM3(b []byte) [SM3Size]byte { return sm3.Sum(b) }

// SM3Hex returns the SM3 digest of b as lowercase hex.
func SM3Hex(b []byte) string {
	d := sm3.Sum(b)
	return hex.EncodeToString(d[:])
}

// NewSM3 returns a new streaming SM3 hash.
func NewSM3() hash.Hash { return sm3.New() }
