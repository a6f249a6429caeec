package certs

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/emmansun/gmsm/sm4"
)

// TestSM4KnownAnswer checks the block cipher under the payload cipher with
// the example of GB/T 32907-2016 (Appendix A.1).
func TestSM4KnownAnswer(t *testing.T) {
	key, _ := hex.DecodeString("0123456789abcdeffedcba9876543210")
	want, _ := hex.DecodeString("681edf34d206965e86b3e94f536e4246")
	b, err := sm4.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 16)
	b.Encrypt(got, key)
	if !bytes.Equal(got, want) {
		t.Fatalf("SM4(%x) = %x, want %x", key, got, want)
	}
}

func TestPayloadCipher(t *testing.T) {
	c, err := NewPayloadCipher(NewPayloadKey())
	if err != nil {
		t.Fatal(err)
	}
	pt := []byte("APPLYER_PAGE_CODE 440605199001010014")
	ad := []byte("exchanges/request/01J")
	sealed := c.Seal(pt, ad)
	if bytes.Contains(sealed, []byte("440605199001010014")) {
		t.Fatal("the sealed payload holds the plaintext")
	}
	if again := c.Seal(pt, ad); bytes.Equal(again, sealed) {
		t.Fatal("two seals of one payload are equal: the nonce is not fresh")
	}
	got, err := c.Open(sealed, ad)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := c.Open(sealed, []byte("exchanges/request/other")); !errors.Is(err, ErrSealed) {
		t.Fatalf("opened with other additional data: %v", err)
	}
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 1
		if _, err := c.Open(bad, ad); !errors.Is(err, ErrSealed) {
			t.Fatalf("a flipped byte %d opened: %v", i, err)
		}
	}
	other, _ := NewPayloadCipher(NewPayloadKey())
	if _, err := other.Open(sealed, ad); !errors.Is(err, ErrSealed) {
		t.Fatalf("opened with another key: %v", err)
	}
	if _, err := c.Open(sealed[:10], ad); !errors.Is(err, ErrSealed) {
		t.Fatalf("a truncated payload opened: %v", err)
	}
	if _, err := NewPayloadCipher(make([]byte, 15)); err == nil {
		t.Fatal("a 15-byte key was taken")
	}
}

func TestLoadOrCreatePayloadKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "payload.key")
	k1, err := LoadOrCreatePayloadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", fi.Mode().Perm(), err)
	}
	k2, err := LoadOrCreatePayloadKey(path)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("the key changed on a second load: %v", err)
	}
	if err := os.WriteFile(path, []byte("nothex"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreatePayloadKey(path); err == nil {
		t.Fatal("a malformed key file was taken")
	}
}
