package certs

import (
	"bytes"
	"crypto/rand"
	"errors"
	"math/big"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

func TestTrustStoreLookup(t *testing.T) {
	t.Parallel()
	p := newDevPKI(t)
	other := newDevPKI(t) // another CA, not trusted by p's store
	now := time.Now()
	partner := Identity{Role: RolePartner, Partner: "nanhai", Division: "440605"}

	expired, err := p.IssueLeaf(partner, now.Add(-48*time.Hour), now.Add(-10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	future, err := p.IssueLeaf(partner, now.Add(time.Hour), now.Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	revokedByKey, _ := p.IssueLeaf(partner, now.Add(-time.Hour), now.Add(time.Hour))
	revokedBySerial, _ := p.IssueLeaf(partner, now.Add(-time.Hour), now.Add(time.Hour))

	ts := p.TrustStore()
	for _, s := range []*Signer{expired, future, revokedByKey, revokedBySerial} {
		if err := ts.Add(s.Certificate(), partner); err != nil {
			t.Fatal(err)
		}
	}
	if err := ts.Add(other.Nanhai.Certificate(), partner); !errors.Is(err, ErrCertificateInvalid) {
		t.Errorf("Add of a certificate from an untrusted CA: %v", err)
	}
	ts.SetRevoked([]string{revokedByKey.KeyID()}, []*big.Int{revokedBySerial.Certificate().SerialNumber})

	tests := []struct {
		name  string
		keyID string
		at    time.Time
		want  error
	}{
		{"valid", p.Nanhai.KeyID(), now, nil},
		{"unknown", SM3Hex([]byte("nobody")), now, ErrKeyUnknown},
		{"empty key id", "", now, ErrKeyUnknown},
		{"expired", expired.KeyID(), now, ErrCertificateInvalid},
		{"expired cert valid in its time", expired.KeyID(), now.Add(-30 * time.Minute), nil},
		{"not yet valid", future.KeyID(), now, ErrCertificateInvalid},
		{"valid later", future.KeyID(), now.Add(2 * time.Hour), nil},
		{"revoked by key id", revokedByKey.KeyID(), now, ErrCertificateInvalid},
		{"revoked by serial", revokedBySerial.KeyID(), now, ErrCertificateInvalid},
		{"other CA", other.Nanhai.KeyID(), now, ErrCertificateInvalid},
		{"after the CA expired", p.Gateway.KeyID(), p.CA.NotAfter.Add(time.Second), ErrCertificateInvalid},
	}
	for _, tc := range tests {
		id, err := ts.Lookup(tc.keyID, tc.at)
		if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
		if err == nil && id.KeyID != tc.keyID {
			t.Errorf("%s: identity key id %s", tc.name, id.KeyID)
		}
	}

	// Revocation is a replaceable set.
	ts.SetRevoked(nil, nil)
	if _, err := ts.Lookup(revokedByKey.KeyID(), now); err != nil {
		t.Errorf("after clearing revocations: %v", err)
	}

	// Incomplete identities are refused and not recorded.
	fresh, _ := p.IssueLeaf(Identity{Role: RoleAdmin, Name: "admin2"}, now.Add(-time.Hour), now.Add(time.Hour))
	for _, bad := range []Identity{{Role: "root"}, {Role: RolePartner, Partner: "nanhai"}} {
		if err := ts.Add(fresh.Certificate(), bad); !errors.Is(err, ErrIdentityInvalid) {
			t.Errorf("Add(%+v): %v, want ErrIdentityInvalid", bad, err)
		}
	}
	if _, err := ts.Lookup(fresh.KeyID(), now); !errors.Is(err, ErrKeyUnknown) {
		t.Errorf("an identity refused by Add is known: %v", err)
	}
	if got := ts.Roots(); len(got) != 1 || !bytes.Equal(got[0].Raw, p.CA.Raw) {
		t.Errorf("Roots() = %v", got)
	}
}

// rebuildLeaf re-encodes cert with a new SubjectPublicKeyInfo and signs it
// by ca (default ID), for certificates the library would not make.
func rebuildLeaf(t *testing.T, cert *Certificate, spki []byte, ca *Signer) []byte {
	t.Helper()
	in := cryptobyte.String(cert.RawTBSCertificate)
	var tbs cryptobyte.String
	if !in.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		t.Fatal("bad TBS")
	}
	var parts [][]byte
	for !tbs.Empty() {
		var el cryptobyte.String
		var tag cbasn1.Tag
		if !tbs.ReadAnyASN1Element(&el, &tag) {
			t.Fatal("bad TBS element")
		}
		parts = append(parts, el)
	}
	parts[6] = spki // version, serial, sigalg, issuer, validity, subject, spki, …
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, p := range parts {
			b.AddBytes(p)
		}
	})
	newTBS := b.BytesOrPanic()
	sig, err := ca.Sign(newTBS)
	if err != nil {
		t.Fatal(err)
	}
	var c cryptobyte.Builder
	c.AddASN1(cbasn1.SEQUENCE, func(c *cryptobyte.Builder) {
		c.AddBytes(newTBS)
		c.AddASN1(cbasn1.SEQUENCE, func(c *cryptobyte.Builder) { c.AddASN1ObjectIdentifier(oidSM2WithSM3) })
		c.AddASN1BitString(sig)
	})
	return c.BytesOrPanic()
}

var oidSM2WithSM3 = []int{1, 2, 156, 10197, 1, 501}

func spkiWith(algOID []int, point []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(algOID)
			b.AddASN1ObjectIdentifier([]int{1, 2, 156, 10197, 1, 301})
		})
		b.AddASN1BitString(point)
	})
	return b.BytesOrPanic()
}

func TestPublicKeyConventionsAndOffCurve(t *testing.T) {
	t.Parallel()
	p := newDevPKI(t)
	leaf := p.Nanhai.Certificate()
	point := leaf.RawSubjectPublicKeyInfo[len(leaf.RawSubjectPublicKeyInfo)-65:]
	if point[0] != 4 {
		t.Fatal("expected an uncompressed point at the end of the SPKI")
	}
	ts := p.TrustStore()

	// The SM2 OID as the algorithm (as some Chinese CAs write it).
	sm2Alg := rebuildLeaf(t, leaf, spkiWith([]int{1, 2, 156, 10197, 1, 301}, point), p.CASigner)
	cert, err := ParseCertificate(sm2Alg)
	if err != nil {
		t.Fatalf("SM2-OID certificate: %v", err)
	}
	if !IsSM2(cert) {
		t.Fatal("SM2-OID certificate not recognised as SM2")
	}
	if _, err := ts.AddCertificate(cert); err != nil {
		t.Fatalf("SM2-OID certificate refused by the trust store: %v", err)
	}
	sig, _ := p.Nanhai.Sign([]byte("m"))
	if err := VerifySignature(cert, []byte("m"), sig); err != nil {
		t.Errorf("verify with the SM2-OID certificate: %v", err)
	}
	// The id-ecPublicKey convention, explicitly rebuilt, is accepted too.
	ecAlg := rebuildLeaf(t, leaf, spkiWith([]int{1, 2, 840, 10045, 2, 1}, point), p.CASigner)
	if _, err := ParseCertificate(ecAlg); err != nil {
		t.Fatalf("id-ecPublicKey certificate: %v", err)
	}

	// A point off the curve, in both conventions, is refused at parse time.
	off := bytes.Clone(point)
	off[64] ^= 1
	for _, alg := range [][]int{{1, 2, 156, 10197, 1, 301}, {1, 2, 840, 10045, 2, 1}} {
		der := rebuildLeaf(t, leaf, spkiWith(alg, off), p.CASigner)
		if _, err := ParseCertificate(der); !errors.Is(err, ErrPublicKeyInvalid) {
			t.Errorf("off-curve key with %v: %v, want ErrPublicKeyInvalid", alg, err)
		}
	}
	// The same with the library making the certificate from the start (no
	// re-signing): flip a bit of Y inside a genuine DER.
	der := bytes.Clone(leaf.Raw)
	i := bytes.Index(der, point)
	der[i+64] ^= 1
	if _, err := ParseCertificate(der); !errors.Is(err, ErrPublicKeyInvalid) {
		t.Errorf("genuine certificate with Y flipped: %v, want ErrPublicKeyInvalid", err)
	}
}

func TestNonSM2Certificates(t *testing.T) {
	t.Parallel()
	p := newDevPKI(t)
	tlsCerts, err := LoadCertificates(p.TLSCert)
	if err != nil {
		t.Fatalf("tls.pem: %v", err)
	}
	if IsSM2(tlsCerts[0]) {
		t.Error("the P-256 TLS certificate is taken for SM2")
	}
	if err := VerifySignature(tlsCerts[0], []byte("m"), []byte{0x30, 0}); !errors.Is(err, ErrPublicKeyInvalid) {
		t.Errorf("VerifySignature with a P-256 key: %v", err)
	}
	if _, err := ParseCertificatesPEM([]byte("nothing here")); !errors.Is(err, ErrNoCertificate) {
		t.Errorf("no PEM: %v", err)
	}
	// Random bytes never parse as a certificate.
	junk := make([]byte, 300)
	rand.Read(junk)
	if _, err := ParseCertificate(junk); err == nil {
		t.Error("random bytes parsed as a certificate")
	}
}
