package certs

import (
	"crypto/ecdsa"
	"errors"
	"fmt"
	"math/big"

	"github.com/emmansun/gmsm/sm2"
)

// DefaultSignerID is the SM2 signer ID of every tongban signature (GB/T
// 35276, GM/T 0009): the 16 ASCII bytes "1234567812345678".
const DefaultSignerID = "1234567812345678"

// Errors about signatures.
var (
	// ErrSignatureMalformed means a signature is not exactly the DER
	// SEQUENCE{INTEGER r, INTEGER s} with 0 < r, s < n and nothing after it.
	ErrSignatureMalformed = errors.New("certs: malformed SM2 signature")
	// ErrSignatureInvalid means a well-formed signature does not verify.
	ErrSignatureInvalid = errors.New("certs: SM2 signature does not verify")
)

// sm2N is the order of the sm2p256v1 base point.
var sm2N = sm2.P256().Params().N

// ParseSignatureDER decodes an SM2 signature strictly: one DER
// SEQUENCE { INTEGER r, INTEGER s }, minimal lengths, positive minimal
// integers with 1 ≤ r, s < n, and no byte after the sequence (trailing bytes
// are refused even where a library would tolerate them).
func ParseSignatureDER(sig []byte) (r, s *big.Int, err error) {
	if len(sig) < 2 || sig[0] != 0x30 {
		return nil, nil, fmt.Errorf("%w: not a DER SEQUENCE", ErrSignatureMalformed)
	}
	// The longest valid signature has 2×(2+33) content bytes, so the
	// sequence length is always in short form.
	if sig[1] >= 0x80 {
		return nil, nil, fmt.Errorf("%w: sequence length not in short form", ErrSignatureMalformed)
	}
	n := int(sig[1])
	if len(sig) < 2+n {
		return nil, nil, fmt.Errorf("%w: truncated", ErrSignatureMalformed)
	}
	if len(sig) > 2+n {
		return nil, nil, fmt.Errorf("%w: %d trailing bytes after the DER sequence", ErrSignatureMalformed, len(sig)-2-n)
	}
	body := sig[2:]
	r, body, err = parseDERInteger(body)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: r: %v", ErrSignatureMalformed, err)
	}
	s, body, err = parseDERInteger(body)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: s: %v", ErrSignatureMalformed, err)
	}
	if len(body) != 0 {
		return nil, nil, fmt.Errorf("%w: extra data inside the sequence", ErrSignatureMalformed)
	}
	return r, s, nil
}

func parseDERInteger(b []byte) (*big.Int, []byte, error) {
	if len(b) < 2 || b[0] != 0x02 {
		return nil, nil, errors.New("not an INTEGER")
	}
	n := int(b[1])
	if n >= 0x80 || n == 0 || n > 33 {
		return nil, nil, errors.New("bad INTEGER length")
	}
	if len(b) < 2+n {
		return nil, nil, errors.New("truncated INTEGER")
	}
	v := b[2 : 2+n]
	if v[0]&0x80 != 0 {
		return nil, nil, errors.New("negative INTEGER")
	}
	if n > 1 && v[0] == 0 && v[1]&0x80 == 0 {
		return nil, nil, errors.New("INTEGER not minimally encoded")
	}
	x := new(big.Int).SetBytes(v)
	if x.Sign() == 0 || x.Cmp(sm2N) >= 0 {
		return nil, nil, errors.New("INTEGER out of range [1, n-1]")
	}
	return x, b[2+n:], nil
}

// VerifySignature checks an SM2-with-SM3 signature (default signer ID) of
// msg by the key of cert. sig must be strict DER (ParseSignatureDER). The
// error wraps ErrSignatureMalformed, ErrSignatureInvalid or
// ErrPublicKeyInvalid. msg may be empty.
func VerifySignature(cert *Certificate, msg, sig []byte) error {
	pub, err := sm2PublicKey(cert)
	if err != nil {
		return err
	}
	return verifyWithPublicKey(pub, msg, sig)
}

func verifyWithPublicKey(pub *ecdsa.PublicKey, msg, sig []byte) error {
	if _, _, err := ParseSignatureDER(sig); err != nil {
		return err
	}
	e, err := sm2.CalculateSM2Hash(pub, msg, []byte(DefaultSignerID))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPublicKeyInvalid, err)
	}
	if !sm2.VerifyASN1(pub, e, sig) {
		return ErrSignatureInvalid
	}
	return nil
}

// verifyWithEmptyID reports whether sig verifies over msg by the key of
// cert with an EMPTY signer ID (ENTL = 0). It exists only to explain why a
// certificate is refused: OpenSSL 3 signs with an empty ID when
// -sigopt distid:… is forgotten, and such a signature must not count.
func verifyWithEmptyID(cert *Certificate, msg, sig []byte) bool {
	pub, err := sm2PublicKey(cert)
	if err != nil {
		return false
	}
	point, err := sm2Point(cert)
	if err != nil {
		return false
	}
	p := pub.Curve.Params()
	h := NewSM3()
	h.Write([]byte{0, 0}) // ENTL: ID length in bits, here zero
	a := new(big.Int).Sub(p.P, big.NewInt(3))
	h.Write(a.FillBytes(make([]byte, 32)))
	h.Write(p.B.FillBytes(make([]byte, 32)))
	h.Write(p.Gx.FillBytes(make([]byte, 32)))
	h.Write(p.Gy.FillBytes(make([]byte, 32)))
	h.Write(point[1:]) // X ‖ Y
	za := h.Sum(nil)
	h.Reset()
	h.Write(za)
	h.Write(msg)
	return sm2.VerifyASN1(pub, h.Sum(nil), sig)
}
