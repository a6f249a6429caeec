package certs

import (
	"bytes"
	"math/big"
	"testing"
)

// FuzzParseSignatureDER: never panics, and whatever it accepts is the one
// canonical DER encoding of (r, s).
func FuzzParseSignatureDER(f *testing.F) {
	f.Add(derSignature(f, big.NewInt(1), big.NewInt(1)))
	f.Add(derSignature(f, new(big.Int).Sub(sm2N, big.NewInt(1)), sm2N))
	f.Add([]byte{0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x00})
	f.Add([]byte{0x30, 0x81, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01})
	f.Fuzz(func(t *testing.T, sig []byte) {
		r, s, err := ParseSignatureDER(sig)
		if err != nil {
			return
		}
		if !bytes.Equal(derSignature(t, r, s), sig) {
			t.Fatalf("accepted a non-canonical encoding %x", sig)
		}
	})
}

// FuzzParseCertificate: hostile DER never panics the parser, and whatever
// parses with an elliptic-curve key has it on its curve.
func FuzzParseCertificate(f *testing.F) {
	p := newDevPKI(f)
	f.Add(p.Nanhai.Certificate().Raw)
	f.Add(p.CA.Raw)
	f.Fuzz(func(t *testing.T, der []byte) {
		cert, err := ParseCertificate(der)
		if err != nil {
			return
		}
		if IsSM2(cert) {
			_ = VerifySignature(cert, []byte("m"), []byte{0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01})
		}
	})
}
