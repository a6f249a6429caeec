package certs

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/smx509"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Certificate is an X.509 certificate that may be signed SM2-with-SM3 and may
// carry an SM2 public key. It is an alias so that callers need not import
// gmsm.
type Certificate = smx509.Certificate

// Errors about certificates and keys. Callers test them with errors.Is.
var (
	// ErrNoCertificate means a PEM input held no CERTIFICATE block.
	ErrNoCertificate = errors.New("certs: no certificate found")
	// ErrPublicKeyInvalid means a public key is not a valid point of its
	// curve (for SM2: not on sm2p256v1), or is not an SM2 key where one is
	// required.
	ErrPublicKeyInvalid = errors.New("certs: invalid public key")
	// ErrKeyMismatch means a private key does not belong to the certificate
	// it was loaded with.
	ErrKeyMismatch = errors.New("certs: private key does not match certificate")
)

// ParseCertificate parses one DER certificate. Both conventions for an SM2
// public key are accepted: id-ecPublicKey with the sm2p256v1 curve parameter,
// and the SM2 OID 1.2.156.10197.1.301 as the algorithm. A public key that is
// not on its curve is refused with ErrPublicKeyInvalid.
func ParseCertificate(der []byte) (*Certificate, error) {
	cert, err := smx509.ParseCertificate(der)
	if err != nil {
		if perr := diagnosePublicKey(der); perr != nil {
			return nil, perr
		}
		return nil, fmt.Errorf("certs: parse certificate: %w", err)
	}
	if sm2.IsSM2PublicKey(cert.PublicKey) {
		// The parser checks the point already; check again here, where the
		// rule is written down, so that no off-curve key gets further.
		if _, err := sm2Point(cert); err != nil {
			return nil, err
		}
	}
	return cert, nil
}

// ParseCertificatesPEM parses every CERTIFICATE block of a PEM input, in
// order. Other block types are skipped. It fails if there is none, or if any
// certificate does not parse.
func ParseCertificatesPEM(data []byte) ([]*Certificate, error) {
	var out []*Certificate
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(out)+1, err)
		}
		out = append(out, cert)
	}
	if len(out) == 0 {
		return nil, ErrNoCertificate
	}
	return out, nil
}

// LoadCertificates reads the PEM file at path and parses its certificates.
func LoadCertificates(path string) ([]*Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	certs, err := ParseCertificatesPEM(data)
	if err != nil {
		return nil, fmt.Errorf("certs: %s: %w", path, err)
	}
	return certs, nil
}

// LoadCertificate reads a PEM file that must hold exactly one certificate.
func LoadCertificate(path string) (*Certificate, error) {
	certs, err := LoadCertificates(path)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("certs: %s holds %d certificates, want 1", path, len(certs))
	}
	return certs[0], nil
}

// EncodeCertificatePEM returns cert as one PEM CERTIFICATE block.
func EncodeCertificatePEM(cert *Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

// KeyID is the signature key id of a certificate (signing.md): the lowercase
// hex SM3 of its DER encoding.
func KeyID(cert *Certificate) string {
	d := SM3(cert.Raw)
	return hex.EncodeToString(d[:])
}

// IsSM2 reports whether cert carries an SM2 public key (curve sm2p256v1)
// that lies on the curve.
func IsSM2(cert *Certificate) bool {
	_, err := sm2PublicKey(cert)
	return err == nil
}

func sm2PublicKey(cert *Certificate) (*ecdsa.PublicKey, error) {
	if cert == nil {
		return nil, fmt.Errorf("%w: no certificate", ErrPublicKeyInvalid)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || !sm2.IsSM2PublicKey(pub) {
		return nil, fmt.Errorf("%w: %q does not hold an SM2 key", ErrPublicKeyInvalid, cert.Subject.CommonName)
	}
	return pub, nil
}

// sm2Point returns the uncompressed SM2 point (04 ‖ X ‖ Y) of cert's
// SubjectPublicKeyInfo after checking that it lies on sm2p256v1.
func sm2Point(cert *Certificate) ([]byte, error) {
	if _, err := sm2PublicKey(cert); err != nil {
		return nil, err
	}
	spki := cryptobyte.String(cert.RawSubjectPublicKeyInfo)
	var inner cryptobyte.String
	var point []byte
	if !spki.ReadASN1(&inner, cbasn1.SEQUENCE) ||
		!inner.SkipASN1(cbasn1.SEQUENCE) ||
		!inner.ReadASN1BitStringAsBytes(&point) {
		return nil, fmt.Errorf("%w: unreadable SubjectPublicKeyInfo of %q", ErrPublicKeyInvalid, cert.Subject.CommonName)
	}
	if _, err := sm2.NewPublicKey(point); err != nil {
		return nil, fmt.Errorf("%w: the public key of %q is not on the SM2 curve", ErrPublicKeyInvalid, cert.Subject.CommonName)
	}
	return point, nil
}

var (
	oidECPublicKey = []byte{0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01}       // 1.2.840.10045.2.1
	oidSM2         = []byte{0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x82, 0x2d} // 1.2.156.10197.1.301
)

// diagnosePublicKey explains a certificate the X.509 parser refused when the
// reason is an SM2 public key that is not a point of the curve. It returns
// nil when it finds no such reason.
func diagnosePublicKey(der []byte) error {
	in := cryptobyte.String(der)
	var cert, tbs, spki, algo, oid cryptobyte.String
	var bits []byte
	if !in.ReadASN1(&cert, cbasn1.SEQUENCE) || !cert.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		return nil
	}
	if !tbs.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) || // version
		!tbs.SkipASN1(cbasn1.INTEGER) || // serial
		!tbs.SkipASN1(cbasn1.SEQUENCE) || // signature algorithm
		!tbs.SkipASN1(cbasn1.SEQUENCE) || // issuer
		!tbs.SkipASN1(cbasn1.SEQUENCE) || // validity
		!tbs.SkipASN1(cbasn1.SEQUENCE) || // subject
		!tbs.ReadASN1(&spki, cbasn1.SEQUENCE) ||
		!spki.ReadASN1(&algo, cbasn1.SEQUENCE) ||
		!algo.ReadASN1(&oid, cbasn1.OBJECT_IDENTIFIER) {
		return nil
	}
	if !bytes.Equal(oid, oidECPublicKey) && !bytes.Equal(oid, oidSM2) {
		return nil
	}
	var param cryptobyte.String
	if !algo.ReadASN1(&param, cbasn1.OBJECT_IDENTIFIER) || !bytes.Equal(param, oidSM2) {
		return nil
	}
	if !spki.ReadASN1BitStringAsBytes(&bits) {
		return nil
	}
	if len(bits) != 65 || bits[0] != 4 {
		return fmt.Errorf("%w: SM2 public key is not an uncompressed point", ErrPublicKeyInvalid)
	}
	if _, err := sm2.NewPublicKey(bits); err != nil {
		return fmt.Errorf("%w: SM2 public key is not on the sm2p256v1 curve", ErrPublicKeyInvalid)
	}
	return nil
}
