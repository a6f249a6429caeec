package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/smx509"
)

// Validity periods of the development PKI.
const (
	DevCAValidity   = 10 * 365 * 24 * time.Hour
	DevLeafValidity = 825 * 24 * time.Hour
)

// devOrganization is the O of every development certificate.
const devOrganization = "tongban dev"

// devLeaf describes one SM2 leaf of the development PKI.
type devLeaf struct {
	file     string // base name: <file>.pem, <file>.key
	role     Role
	division string // partners only
}

// devLeaves are the SM2 leaves cli.md lists, in the order they are issued.
var devLeaves = []devLeaf{
	{"gateway", RoleGateway, ""},
	{"log", RoleLog, ""},
	{"nanhai", RolePartner, "440605"},
	{"liwan", RolePartner, "440103"},
	{"admin", RoleAdmin, ""},
	{"auditor", RoleAuditor, ""},
}

// DevPKI is a development PKI as InitDevPKI lays it out and LoadDevPKI reads
// it back.
type DevPKI struct {
	Dir string
	CA  *Certificate
	// CASigner holds the CA's key, for tests and tools that issue more
	// certificates (IssueLeaf).
	CASigner *Signer

	Gateway, Log, Nanhai, Liwan, Admin, Auditor *Signer

	// TLSCert and TLSKey are the paths of the listener's ECDSA P-256
	// certificate and key (standard TLS cannot use SM2).
	TLSCert, TLSKey string
}

// InitDevPKI writes a development PKI into dir (created 0700 if missing):
// ca.pem/ca.key (SM2 root, 10 years), gateway, log, nanhai, liwan, admin and
// auditor .pem/.key (SM2 leaves signed SM2-with-SM3 with the default ID by
// the CA, 825 days), and tls.pem/tls.key (ECDSA P-256, self-signed, SANs
// 127.0.0.1, ::1 and localhost). Keys are PKCS#8 PEM with mode 0600.
//
// It never overwrites a key: an existing key is reused, and a certificate is
// (re)issued only when it is missing, does not match its key, or (for a
// leaf) was not issued by the current CA. A second run over a complete
// directory writes nothing. Key material is never logged.
func InitDevPKI(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	now := time.Now()

	caKey, err := loadOrCreateSM2Key(filepath.Join(dir, "ca.key"))
	if err != nil {
		return err
	}
	caPath := filepath.Join(dir, "ca.pem")
	ca, err := loadMatchingCert(caPath, &caKey.PublicKey, nil)
	if err != nil {
		return err
	}
	if ca == nil {
		ca, err = createSM2Cert(caTemplate(now), nil, &caKey.PublicKey, caKey)
		if err != nil {
			return err
		}
		if err := writeFileAtomic(caPath, EncodeCertificatePEM(ca), 0o644); err != nil {
			return err
		}
	}

	for _, l := range devLeaves {
		key, err := loadOrCreateSM2Key(filepath.Join(dir, l.file+".key"))
		if err != nil {
			return err
		}
		path := filepath.Join(dir, l.file+".pem")
		cert, err := loadMatchingCert(path, &key.PublicKey, ca)
		if err != nil {
			return err
		}
		if cert != nil {
			continue
		}
		tmpl := leafTemplate(l.file, l.role, l.division, now, now.Add(DevLeafValidity))
		cert, err = createSM2Cert(tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		if err := writeFileAtomic(path, EncodeCertificatePEM(cert), 0o644); err != nil {
			return err
		}
	}
	return initTLS(dir, now)
}

func caTemplate(now time.Time) *Certificate {
	return &Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{Country: []string{"CN"}, Organization: []string{devOrganization}, CommonName: "tongban dev CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(DevCAValidity),
		KeyUsage:              smx509.KeyUsageCertSign | smx509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SignatureAlgorithm:    smx509.SM2WithSM3,
	}
}

func leafTemplate(name string, role Role, division string, notBefore, notAfter time.Time) *Certificate {
	subject := pkix.Name{
		Country:            []string{"CN"},
		Organization:       []string{devOrganization},
		OrganizationalUnit: []string{string(role)},
		CommonName:         name,
	}
	if division != "" {
		subject.Locality = []string{division}
	}
	return &Certificate{
		SerialNumber:          randomSerial(),
		Subject:               subject,
		NotBefore:             notBefore.Add(-time.Hour),
		NotAfter:              notAfter,
		KeyUsage:              smx509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		SignatureAlgorithm:    smx509.SM2WithSM3,
	}
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return n.Add(n, big.NewInt(1))
}

// createSM2Cert signs tmpl by signer (the CA key) with SM2-with-SM3 and the
// default ID; parent nil means self-signed.
func createSM2Cert(tmpl, parent *Certificate, pub *ecdsa.PublicKey, signer *sm2.PrivateKey) (*Certificate, error) {
	if parent == nil {
		parent = tmpl
	}
	der, err := smx509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, fmt.Errorf("certs: issue %q: %w", tmpl.Subject.CommonName, err)
	}
	return ParseCertificate(der)
}

// loadOrCreateSM2Key reads an SM2 PKCS#8 key, or creates one with mode 0600
// if the file does not exist. It never replaces an existing file.
func loadOrCreateSM2Key(path string) (*sm2.PrivateKey, error) {
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		key, err := parsePrivateKeyPEM(data, nil)
		if err != nil {
			return nil, fmt.Errorf("certs: %s: %w", path, err)
		}
		return key, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("certs: %w", err)
	}
	key, err := sm2.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: generate key: %w", err)
	}
	der, err := smx509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("certs: encode key: %w", err)
	}
	if err := writeKeyFile(path, der); err != nil {
		return nil, err
	}
	return key, nil
}

// writeKeyFile creates path exclusively with mode 0600: a key that appeared
// meanwhile is not overwritten.
func writeKeyFile(path string, der []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	werr := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := f.Close(); werr == nil {
		werr = err
	}
	if werr != nil {
		os.Remove(path)
		return fmt.Errorf("certs: write %s: %w", path, werr)
	}
	return nil
}

// loadMatchingCert reads the certificate at path and returns it if it holds
// pub and, when issuer is not nil, verifies as issued by issuer with the
// default ID. It returns nil, nil when the certificate must be (re)issued.
func loadMatchingCert(path string, pub *ecdsa.PublicKey, issuer *Certificate) (*Certificate, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	certs, err := ParseCertificatesPEM(data)
	if err != nil || len(certs) != 1 {
		return nil, nil
	}
	cert := certs[0]
	got, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || !got.Equal(pub) {
		return nil, nil
	}
	if issuer != nil && cert.CheckSignatureFrom(issuer) != nil {
		return nil, nil
	}
	return cert, nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	_, werr := tmp.Write(data)
	if err := tmp.Chmod(mode); werr == nil {
		werr = err
	}
	if err := tmp.Close(); werr == nil {
		werr = err
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("certs: write %s: %w", path, werr)
	}
	return nil
}

// initTLS writes tls.key (ECDSA P-256) and a self-signed tls.pem for
// 127.0.0.1, ::1 and localhost, under the same never-overwrite-a-key rule.
func initTLS(dir string, now time.Time) error {
	keyPath, certPath := filepath.Join(dir, "tls.key"), filepath.Join(dir, "tls.pem")
	var key *ecdsa.PrivateKey
	data, err := os.ReadFile(keyPath)
	switch {
	case err == nil:
		block, _ := pem.Decode(data)
		if block == nil {
			return fmt.Errorf("certs: %s: %w: no PEM block", keyPath, ErrPrivateKey)
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return fmt.Errorf("certs: %s: %w: %v", keyPath, ErrPrivateKey, err)
		}
		var ok bool
		if key, ok = k.(*ecdsa.PrivateKey); !ok {
			return fmt.Errorf("certs: %s: %w: not an ECDSA key", keyPath, ErrPrivateKey)
		}
	case errors.Is(err, fs.ErrNotExist):
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return fmt.Errorf("certs: generate TLS key: %w", err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return fmt.Errorf("certs: encode TLS key: %w", err)
		}
		if err := writeKeyFile(keyPath, der); err != nil {
			return err
		}
	default:
		return fmt.Errorf("certs: %w", err)
	}

	if data, err := os.ReadFile(certPath); err == nil {
		if block, _ := pem.Decode(data); block != nil && block.Type == "CERTIFICATE" {
			if c, err := x509.ParseCertificate(block.Bytes); err == nil {
				if pub, ok := c.PublicKey.(*ecdsa.PublicKey); ok && pub.Equal(&key.PublicKey) {
					return nil
				}
			}
		}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{Organization: []string{devOrganization}, CommonName: "localhost"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(DevLeafValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("certs: issue TLS certificate: %w", err)
	}
	return writeFileAtomic(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// LoadDevPKI reads a development PKI written by InitDevPKI.
func LoadDevPKI(dir string) (*DevPKI, error) {
	p := &DevPKI{
		Dir:     dir,
		TLSCert: filepath.Join(dir, "tls.pem"),
		TLSKey:  filepath.Join(dir, "tls.key"),
	}
	var err error
	if p.CASigner, err = LoadSigner(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca.key"), nil); err != nil {
		return nil, err
	}
	p.CA = p.CASigner.Certificate()
	for _, s := range []struct {
		file string
		dst  **Signer
	}{
		{"gateway", &p.Gateway}, {"log", &p.Log}, {"nanhai", &p.Nanhai},
		{"liwan", &p.Liwan}, {"admin", &p.Admin}, {"auditor", &p.Auditor},
	} {
		if *s.dst, err = LoadSigner(filepath.Join(dir, s.file+".pem"), filepath.Join(dir, s.file+".key"), nil); err != nil {
			return nil, err
		}
	}
	for _, f := range []string{p.TLSCert, p.TLSKey} {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("certs: %w", err)
		}
	}
	return p, nil
}

// TrustStore returns a store trusting the dev CA and holding the six
// identities: nanhai (partner, 440605), liwan (partner, 440103), admin,
// auditor, gateway and log. A certificate that does not chain is recorded
// as invalid (see TrustStore.Add).
func (p *DevPKI) TrustStore() *TrustStore {
	ts := NewTrustStore([]*Certificate{p.CA})
	for _, e := range []struct {
		s  *Signer
		id Identity
	}{
		{p.Nanhai, Identity{Role: RolePartner, Partner: "nanhai", Division: "440605", Name: "nanhai"}},
		{p.Liwan, Identity{Role: RolePartner, Partner: "liwan", Division: "440103", Name: "liwan"}},
		{p.Admin, Identity{Role: RoleAdmin, Name: "admin"}},
		{p.Auditor, Identity{Role: RoleAuditor, Name: "auditor"}},
		{p.Gateway, Identity{Role: RoleGateway, Name: "gateway"}},
		{p.Log, Identity{Role: RoleLog, Name: "log"}},
	} {
		_ = ts.Add(e.s.Certificate(), e.id) // recorded as invalid on error
	}
	return ts
}

// IssueLeaf issues, in memory only, a new SM2 key and a certificate for id
// signed by the dev CA and valid from notBefore to notAfter; for tests
// (expired or future certificates, more partners) and tools. The subject is
// laid out as IdentityFromCertificate reads it.
func (p *DevPKI) IssueLeaf(id Identity, notBefore, notAfter time.Time) (*Signer, error) {
	if err := validIdentity(id); err != nil {
		return nil, err
	}
	name := id.Name
	if id.Role == RolePartner {
		name = id.Partner
	}
	key, err := sm2.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: generate key: %w", err)
	}
	tmpl := leafTemplate(name, id.Role, id.Division, notBefore, notAfter)
	tmpl.NotBefore = notBefore
	cert, err := createSM2Cert(tmpl, p.CA, &key.PublicKey, p.CASigner.key)
	if err != nil {
		return nil, err
	}
	return newSigner(cert, key)
}
