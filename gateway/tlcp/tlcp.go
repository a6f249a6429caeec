// Package tlcp is tongban's optional second listener speaking TLCP
// (GB/T 38636-2020, "国密 TLS", the GM/T 0024 protocol version 1.1) with
// github.com/tjfoc/gmsm/gmtls: double SM2 certificates (one to sign, one to
// encrypt) and the cipher suite ECC_SM4_CBC_SM3 (0xe013) only — the library's
// ECDHE_SM4_CBC_SM3 panics in its key exchange (measured), so it is never
// offered. Standard TLS stays the default listener; TLCP does not replace
// the message signatures either (contracts/signing.md).
//
// This is the only package of tongban that imports tjfoc/gmsm.
//
// [GB/T 38636-2020]: https://openstd.samr.gov.cn/bzgk/gb/newGbInfo?hcno=778097598DA2761E94A5FF3F77BD66DA
package tlcp

import (
	"crypto/rand"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/tjfoc/gmsm/gmtls"
	"github.com/tjfoc/gmsm/sm2"
	"github.com/tjfoc/gmsm/x509"
)

// CipherSuite is the one suite offered and accepted: ECC_SM4_CBC_SM3.
const CipherSuite = gmtls.GMTLS_SM2_WITH_SM4_SM3

// Files of a TLCP key set, as IssueDev writes them in a directory.
const (
	SignCertFile = "tlcp-sign.pem"
	SignKeyFile  = "tlcp-sign.key"
	EncCertFile  = "tlcp-enc.pem"
	EncKeyFile   = "tlcp-enc.key"
)

// ErrConfig: the certificates or keys do not make a TLCP server.
var ErrConfig = errors.New("tlcp: invalid configuration")

// IssueDev writes into dir a signing and an encryption certificate for a
// TLCP server (SM2 keys, PKCS#8 PEM, mode 0600), issued by the CA whose
// certificate and unencrypted PKCS#8 key are given (the dev PKI's ca.pem
// and ca.key), valid for hosts (IP addresses or DNS names). Existing files
// are left alone.
func IssueDev(dir, caCertPath, caKeyPath string, hosts []string) error {
	if _, err := os.Stat(filepath.Join(dir, SignCertFile)); err == nil {
		return nil
	}
	caPEM, err := os.ReadFile(caCertPath)
	if err != nil {
		return err
	}
	ca, err := x509.ReadCertificateFromPem(caPEM)
	if err != nil {
		return fmt.Errorf("%w: CA certificate: %v", ErrConfig, err)
	}
	keyPEM, err := os.ReadFile(caKeyPath)
	if err != nil {
		return err
	}
	caKey, err := x509.ReadPrivateKeyFromPem(keyPEM, nil)
	if err != nil {
		return fmt.Errorf("%w: CA key: %v", ErrConfig, err)
	}
	now := time.Now()
	for _, c := range []struct {
		cert, key, cn string
		usage         x509.KeyUsage
	}{
		{SignCertFile, SignKeyFile, "tongban TLCP sign", x509.KeyUsageDigitalSignature},
		{EncCertFile, EncKeyFile, "tongban TLCP enc", x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment | x509.KeyUsageKeyAgreement},
	} {
		key, err := sm2.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber:       serial.Add(serial, big.NewInt(1)),
			Subject:            pkix.Name{Country: []string{"CN"}, Organization: []string{"tongban dev"}, CommonName: c.cn},
			NotBefore:          now.Add(-time.Hour),
			NotAfter:           now.Add(825 * 24 * time.Hour),
			KeyUsage:           c.usage,
			ExtKeyUsage:        []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			SignatureAlgorithm: x509.SM2WithSM3,
		}
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
		certPEM, err := x509.CreateCertificateToPem(tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return fmt.Errorf("tlcp: issue %s: %w", c.cn, err)
		}
		keyOut, err := x509.WritePrivateKeyToPem(key, nil)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, c.key), keyOut, 0o600); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, c.cert), certPEM, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// ServerConfig is the TLCP server configuration of a signing and an
// encryption certificate with their keys (PEM files): GM/T 0024 version
// 1.1 only, ECC_SM4_CBC_SM3 only.
func ServerConfig(signCert, signKey, encCert, encKey string) (*gmtls.Config, error) {
	sig, err := gmtls.LoadX509KeyPair(signCert, signKey)
	if err != nil {
		return nil, fmt.Errorf("%w: signing pair: %v", ErrConfig, err)
	}
	enc, err := gmtls.LoadX509KeyPair(encCert, encKey)
	if err != nil {
		return nil, fmt.Errorf("%w: encryption pair: %v", ErrConfig, err)
	}
	return &gmtls.Config{
		GMSupport:    gmtls.NewGMSupport(),
		Certificates: []gmtls.Certificate{sig, enc},
		CipherSuites: []uint16{CipherSuite},
	}, nil
}

// NewListener wraps inner: every accepted connection speaks TLCP as
// configured.
func NewListener(inner net.Listener, cfg *gmtls.Config) net.Listener {
	return gmtls.NewListener(inner, cfg)
}

// ClientConfig trusts the CA certificate at caCertPath (PEM) and offers
// ECC_SM4_CBC_SM3 only; for tests and TLCP partners.
func ClientConfig(caCertPath, serverName string) (*gmtls.Config, error) {
	caPEM, err := os.ReadFile(caCertPath)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%w: no CA certificate in %s", ErrConfig, caCertPath)
	}
	return &gmtls.Config{
		GMSupport:    gmtls.NewGMSupport(),
		RootCAs:      pool,
		ServerName:   serverName,
		CipherSuites: []uint16{CipherSuite},
	}, nil
}

// Dial opens a TLCP connection to addr.
func Dial(network, addr string, cfg *gmtls.Config) (net.Conn, error) {
	return gmtls.Dial(network, addr, cfg)
}

// State reports the protocol version and cipher suite of a TLCP
// connection made by Dial or accepted by a NewListener listener, after
// completing its handshake.
func State(conn net.Conn) (version, suite uint16, ok bool) {
	c, isTLCP := conn.(*gmtls.Conn)
	if !isTLCP {
		return 0, 0, false
	}
	if err := c.Handshake(); err != nil {
		return 0, 0, false
	}
	st := c.ConnectionState()
	return st.Version, st.CipherSuite, st.HandshakeComplete
}
