package certs

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/emmansun/gmsm/sm2"
)

func TestSM3KnownAnswers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"abc", "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"},
		{strings.Repeat("abcd", 16), "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"},
		{"", "1ab21d8355cfa17f8e61194831e81a8f22bec8c728fefb747ed035eb5082aa2b"},
	} {
		if got := SM3Hex([]byte(tc.in)); got != tc.want {
			t.Errorf("SM3Hex(%q) = %s, want %s", tc.in, got, tc.want)
		}
		d := SM3([]byte(tc.in))
		if hex.EncodeToString(d[:]) != tc.want {
			t.Errorf("SM3(%q) differs from SM3Hex", tc.in)
		}
		h := NewSM3()
		for i := 0; i < len(tc.in); i++ { // byte by byte: the streaming path
			h.Write([]byte{tc.in[i]})
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != tc.want {
			t.Errorf("NewSM3 streaming %q = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func mustHexInt(t testing.TB, s string) *big.Int {
	t.Helper()
	n, ok := new(big.Int).SetString(s, 16)
	if !ok {
		t.Fatalf("bad hex %q", s)
	}
	return n
}

// derSignature encodes r, s the way the library does, for tests.
func derSignature(t testing.TB, r, s *big.Int) []byte {
	t.Helper()
	enc := func(x *big.Int) []byte {
		b := x.Bytes()
		if b[0]&0x80 != 0 {
			b = append([]byte{0}, b...)
		}
		return append([]byte{0x02, byte(len(b))}, b...)
	}
	body := append(enc(r), enc(s)...)
	return append([]byte{0x30, byte(len(body))}, body...)
}

// TestSM2KnownAnswer is the signature example of GM/T 0003.5 (GB/T
// 32918.5) on the recommended curve, default ID, message "message digest".
func TestSM2KnownAnswer(t *testing.T) {
	t.Parallel()
	d := mustHexInt(t, "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8")
	wantX := mustHexInt(t, "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020")
	wantY := mustHexInt(t, "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13")
	k := mustHexInt(t, "59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21")
	wantR := mustHexInt(t, "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3")
	wantS := mustHexInt(t, "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA")
	msg := []byte("message digest")

	priv, err := sm2.NewPrivateKeyFromInt(d)
	if err != nil {
		t.Fatal(err)
	}
	pub := &priv.PublicKey
	// Carry the key in a certificate, as every verification here does.
	cert, err := createSM2Cert(caTemplate(time.Now()), nil, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	point, err := sm2Point(cert)
	if err != nil {
		t.Fatal(err)
	}
	wantPoint := "04" + fmt.Sprintf("%064x%064x", wantX, wantY)
	if got := hex.EncodeToString(point); got != wantPoint {
		t.Fatalf("public key = %s, want the standard's %s", got, wantPoint)
	}

	sig := derSignature(t, wantR, wantS)
	if err := VerifySignature(cert, msg, sig); err != nil {
		t.Fatalf("standard signature does not verify: %v", err)
	}

	// The library derives k itself (hedged signing), so reproduce the
	// standard's r, s from its k with the library's e = SM3(Z_A ‖ M) and
	// curve arithmetic: r = (e + x1) mod n, s = (1+d)⁻¹(k − r·d) mod n.
	e, err := sm2.CalculateSM2Hash(pub, msg, []byte(DefaultSignerID))
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(e); got != "f0b43e94ba45accaace692ed534382eb17e6ab5a19ce7b31f4486fdfc0d28640" {
		t.Errorf("e = %s, want the standard's f0b43e94…", got)
	}
	curve := sm2.P256()
	n := curve.Params().N
	//lint:ignore SA1019 the standard's fixed k needs raw scalar multiplication
	x1, _ := curve.ScalarBaseMult(k.FillBytes(make([]byte, 32)))
	r := new(big.Int).Add(new(big.Int).SetBytes(e), x1)
	r.Mod(r, n)
	inv := new(big.Int).ModInverse(new(big.Int).Add(d, big.NewInt(1)), n)
	s := new(big.Int).Sub(k, new(big.Int).Mul(r, d))
	s.Mul(s, inv).Mod(s, n)
	if r.Cmp(wantR) != 0 || s.Cmp(wantS) != 0 {
		t.Errorf("reproduced (r, s) = (%X, %X), want the standard's", r, s)
	}

	// Flipping any single bit of the signature or of the message breaks it.
	for i := 0; i < len(sig)*8; i++ {
		bad := bytes.Clone(sig)
		bad[i/8] ^= 1 << (i % 8)
		if VerifySignature(cert, msg, bad) == nil {
			t.Fatalf("signature with bit %d flipped verifies", i)
		}
	}
	for i := 0; i < len(msg)*8; i++ {
		bad := bytes.Clone(msg)
		bad[i/8] ^= 1 << (i % 8)
		if VerifySignature(cert, bad, sig) == nil {
			t.Fatalf("message with bit %d flipped verifies", i)
		}
	}
	// Not with the empty ID either: the ID is part of what is signed.
	if verifyWithEmptyID(cert, msg, sig) {
		t.Error("the default-ID signature verifies with an empty ID")
	}
}

func TestParseSignatureDER(t *testing.T) {
	t.Parallel()
	one := big.NewInt(1)
	nMinus1 := new(big.Int).Sub(sm2N, one)
	good := derSignature(t, nMinus1, one)
	if r, s, err := ParseSignatureDER(good); err != nil || r.Cmp(nMinus1) != 0 || s.Cmp(one) != 0 {
		t.Fatalf("ParseSignatureDER(good) = %v, %v, %v", r, s, err)
	}
	tests := []struct {
		name string
		sig  []byte
	}{
		{"empty", nil},
		{"one byte", []byte{0x30}},
		{"not a sequence", append([]byte{0x31}, good[1:]...)},
		{"trailing zero byte", append(bytes.Clone(good), 0)},
		{"trailing sequence", append(bytes.Clone(good), good...)},
		{"truncated", good[:len(good)-1]},
		{"long-form length", append([]byte{0x30, 0x81, good[1]}, good[2:]...)},
		{"zero integer", []byte{0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x01}},
		{"negative integer", []byte{0x30, 0x06, 0x02, 0x01, 0x80, 0x02, 0x01, 0x01}},
		{"non-minimal integer", []byte{0x30, 0x07, 0x02, 0x02, 0x00, 0x01, 0x02, 0x01, 0x01}},
		{"r equals n", derSignature(t, sm2N, one)},
		{"s above n", derSignature(t, one, new(big.Int).Add(sm2N, one))},
		{"extra element", []byte{0x30, 0x09, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01}},
		{"one integer", []byte{0x30, 0x03, 0x02, 0x01, 0x01}},
		{"zero-length integer", []byte{0x30, 0x05, 0x02, 0x00, 0x02, 0x01, 0x01}},
		{"octet string", []byte{0x30, 0x06, 0x04, 0x01, 0x01, 0x02, 0x01, 0x01}},
	}
	for _, tc := range tests {
		if _, _, err := ParseSignatureDER(tc.sig); !errors.Is(err, ErrSignatureMalformed) {
			t.Errorf("%s: err = %v, want ErrSignatureMalformed", tc.name, err)
		}
	}
}
