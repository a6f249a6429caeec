package certs

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/emmansun/gmsm/sm4"
)

// SM4KeySize is the size of an SM4 key (128 bits).
const SM4KeySize = 16

// ErrSealed is returned (wrapped) for a sealed payload that does not open:
// truncated, altered, bound to other data, or sealed with another key.
var ErrSealed = errors.New("certs: sealed payload does not open")

// PayloadCipher seals payloads at rest with SM4-GCM (GB/T 32907, GCM mode
// of SP 800-38D): a fresh 12-byte random nonce per payload, followed by the
// ciphertext and its 16-byte tag. Additional data binds a payload to its
// place (e.g. its table, column and row), so one cannot be moved to another.
type PayloadCipher struct {
	aead cipher.AEAD
}

// NewPayloadCipher returns an SM4-GCM cipher for a 16-byte key.
func NewPayloadCipher(key []byte) (*PayloadCipher, error) {
	if len(key) != SM4KeySize {
		return nil, fmt.Errorf("certs: an SM4 key is %d bytes, not %d", SM4KeySize, len(key))
	}
	block, err := sm4.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &PayloadCipher{aead: aead}, nil
}

// Seal encrypts plaintext bound to ad: nonce ‖ ciphertext ‖ tag.
func (c *PayloadCipher) Seal(plaintext, ad []byte) []byte {
	out := make([]byte, c.aead.NonceSize(), c.aead.NonceSize()+len(plaintext)+c.aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		panic("certs: no randomness: " + err.Error())
	}
	return c.aead.Seal(out, out, plaintext, ad)
}

// Open decrypts what Seal made with the same key and ad.
func (c *PayloadCipher) Open(sealed, ad []byte) ([]byte, error) {
	n := c.aead.NonceSize()
	if len(sealed) < n+c.aead.Overhead() {
		return nil, fmt.Errorf("%w: too short", ErrSealed)
	}
	pt, err := c.aead.Open(nil, sealed[:n], sealed[n:], ad)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSealed, err)
	}
	return pt, nil
}

// NewPayloadKey returns a fresh random SM4 key.
func NewPayloadKey() []byte {
	k := make([]byte, SM4KeySize)
	if _, err := rand.Read(k); err != nil {
		panic("certs: no randomness: " + err.Error())
	}
	return k
}

// ParsePayloadKey reads a key written as 32 hex digits (surrounding
// whitespace ignored).
func ParsePayloadKey(s string) ([]byte, error) {
	k, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(k) != SM4KeySize {
		return nil, fmt.Errorf("certs: a payload key is %d hex digits", 2*SM4KeySize)
	}
	return k, nil
}

// LoadOrCreatePayloadKey reads the key file at path, or, when it does not
// exist, writes a fresh key there (mode 0600, never overwritten).
func LoadOrCreatePayloadKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return ParsePayloadKey(string(b))
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	k := NewPayloadKey()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if _, err := f.WriteString(hex.EncodeToString(k) + "\n"); err != nil {
		f.Close()
		return nil, err
	}
	return k, f.Close()
}
