package certs

import (
	"crypto"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/emmansun/gmsm/pkcs8"
	"github.com/emmansun/gmsm/sm2"
)

// ErrPrivateKey means a private key file could not be read as an SM2
// PKCS#8 key (wrong format, wrong passphrase, another algorithm).
var ErrPrivateKey = errors.New("certs: unusable private key")

// Signer signs with an SM2 private key and the certificate that names it:
// SM2 with SM3, default signer ID, DER output. It is safe for concurrent
// use.
type Signer struct {
	key   *sm2.PrivateKey
	cert  *Certificate
	keyID string
}

// LoadSigner reads a PEM certificate and its PKCS#8 PEM private key. The key
// may be plain ("PRIVATE KEY", passphrase nil) or encrypted ("ENCRYPTED
// PRIVATE KEY", PBES2 as OpenSSL writes it). The key must match the
// certificate's public key.
func LoadSigner(certPath, keyPath string, passphrase []byte) (*Signer, error) {
	cert, err := LoadCertificate(certPath)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	s, err := NewSigner(cert, keyPEM, passphrase)
	if err != nil {
		return nil, fmt.Errorf("certs: %s: %w", keyPath, err)
	}
	return s, nil
}

// NewSigner makes a Signer from a parsed certificate and a PKCS#8 PEM private
// key (plain or encrypted, see LoadSigner).
func NewSigner(cert *Certificate, keyPEM, passphrase []byte) (*Signer, error) {
	key, err := parsePrivateKeyPEM(keyPEM, passphrase)
	if err != nil {
		return nil, err
	}
	return newSigner(cert, key)
}

func newSigner(cert *Certificate, key *sm2.PrivateKey) (*Signer, error) {
	pub, err := sm2PublicKey(cert)
	if err != nil {
		return nil, err
	}
	if !pub.Equal(&key.PublicKey) {
		return nil, fmt.Errorf("%w (%q)", ErrKeyMismatch, cert.Subject.CommonName)
	}
	return &Signer{key: key, cert: cert, keyID: KeyID(cert)}, nil
}

func parsePrivateKeyPEM(keyPEM, passphrase []byte) (*sm2.PrivateKey, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrPrivateKey)
	}
	switch block.Type {
	case "PRIVATE KEY":
		if len(passphrase) != 0 {
			// A passphrase given for a plain key is a configuration
			// mistake worth reporting rather than ignoring.
			return nil, fmt.Errorf("%w: a passphrase was given but the key is not encrypted", ErrPrivateKey)
		}
	case "ENCRYPTED PRIVATE KEY":
		if len(passphrase) == 0 {
			return nil, fmt.Errorf("%w: the key is encrypted and no passphrase was given", ErrPrivateKey)
		}
	default:
		return nil, fmt.Errorf("%w: PEM block %q is not PKCS#8", ErrPrivateKey, block.Type)
	}
	key, err := pkcs8.ParsePKCS8PrivateKeySM2(block.Bytes, passphrase)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPrivateKey, err)
	}
	return key, nil
}

// Sign returns the SM2-with-SM3 signature (default signer ID) of msg, DER
// encoded. msg may be empty.
func (s *Signer) Sign(msg []byte) ([]byte, error) {
	// Compute e = SM3(Z_A ‖ M) here rather than passing msg with
	// sm2.DefaultSM2SignerOpts: the library refuses an empty input.
	e, err := sm2.CalculateSM2Hash(&s.key.PublicKey, msg, []byte(DefaultSignerID))
	if err != nil {
		return nil, fmt.Errorf("certs: sign: %w", err)
	}
	sig, err := sm2.SignASN1(rand.Reader, s.key, e, nil)
	if err != nil {
		return nil, fmt.Errorf("certs: sign: %w", err)
	}
	return sig, nil
}

// KeyID is the key id of the signer's certificate (see KeyID).
func (s *Signer) KeyID() string { return s.keyID }

// Certificate is the signer's certificate.
func (s *Signer) Certificate() *Certificate { return s.cert }

// PublicKeyDER is the DER SubjectPublicKeyInfo exactly as it appears in the
// signer's certificate (the checkpoint key ID is computed over these bytes).
func (s *Signer) PublicKeyDER() []byte { return s.cert.RawSubjectPublicKeyInfo }

// Public returns the signer's public key (an *ecdsa.PublicKey on sm2p256v1).
func (s *Signer) Public() crypto.PublicKey { return &s.key.PublicKey }

// Verify checks sig over msg with the signer's own certificate; a
// convenience for callers that hold a Signer.
func (s *Signer) Verify(msg, sig []byte) error { return VerifySignature(s.cert, msg, sig) }
