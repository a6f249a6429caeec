package gateway

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/gateway/exchangelog"
	"github.com/tongban/tongban/gateway/store"
)

// ErrKeyFileMode: a private key file may be read or written by others than
// its owner (its mode is not 0600 or stricter).
var ErrKeyFileMode = errors.New("gateway: private key file readable by others")

// checkPrivateKeyFile refuses a key file whose mode gives any access to
// group or others.
func checkPrivateKeyFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %04o; chmod 600 it", ErrKeyFileMode, path, m)
	}
	return nil
}

// Key roles that can be rotated (exchange-log.md, key_rotated).
const (
	KeyRoleGateway = exchangelog.RoleGateway
	KeyRoleLog     = exchangelog.RoleLog
)

// RetiredDir is where rotated-out certificates and keys are kept:
// keys.retired_dir, by default retired/ beside the log key's certificate.
// Their certificates stay known, so that what they signed keeps verifying.
func (c *Config) RetiredDir() string {
	if c.Keys.RetiredDir != "" {
		return c.Keys.RetiredDir
	}
	return filepath.Join(filepath.Dir(c.Keys.Log.Cert), "retired")
}

// retiredCertificates reads the retired certificates of role from dir
// (files named <role>-<keyid>.pem); a missing directory holds none.
func retiredCertificates(dir, role string) ([]*certs.Certificate, error) {
	paths, err := filepath.Glob(filepath.Join(dir, role+"-*.pem"))
	if err != nil {
		return nil, err
	}
	var out []*certs.Certificate
	for _, p := range paths {
		cs, err := certs.LoadCertificates(p)
		if err != nil {
			return nil, fmt.Errorf("retired certificate %s: %w", p, err)
		}
		out = append(out, cs...)
	}
	return out, nil
}

// KeyRotation is what RotateKey did.
type KeyRotation struct {
	Role     string
	OldKeyID string
	NewKeyID string
	LogIndex uint64 // of the key_rotated entry
	Retired  string // where the old certificate and key were moved
}

// RotateKey replaces the gateway's or the log's key (role KeyRoleGateway
// or KeyRoleLog) and records a key_rotated entry in the exchange log. The
// new certificate and key are newCert and newKey (PEM files, the key
// readable with the configured passphrase), copied to the configured
// paths; when both are empty and the key lives in the dev PKI, a new key
// is issued by the dev CA. The old certificate and key are moved to
// RetiredDir as <role>-<keyid>.pem/.key, and the gateway keeps trusting
// the old certificate for what it signed: old checkpoints keep verifying.
// Run it while the gateway is stopped (or restart it after), so that the
// new key is the one loaded.
func RotateKey(ctx context.Context, cfg *Config, role, newCert, newKey string) (*KeyRotation, error) {
	if err := cfg.ApplyDefaults(); err != nil {
		return nil, err
	}
	var pair *KeyPair
	switch role {
	case KeyRoleGateway:
		pair = &cfg.Keys.Gateway
	case KeyRoleLog:
		pair = &cfg.Keys.Log
	default:
		return nil, fmt.Errorf("role %q: rotate %q or %q", role, KeyRoleGateway, KeyRoleLog)
	}
	if (newCert == "") != (newKey == "") {
		return nil, errors.New("give both the new certificate and the new key, or neither")
	}
	pass, err := cfg.passphrase()
	if err != nil {
		return nil, err
	}
	old, err := certs.LoadSigner(pair.Cert, pair.Key, pass)
	if err != nil {
		return nil, fmt.Errorf("current %s key: %w", role, err)
	}
	if newCert != "" {
		// Check the new pair before anything moves.
		if _, err := certs.LoadSigner(newCert, newKey, pass); err != nil {
			return nil, fmt.Errorf("new %s key: %w", role, err)
		}
		if err := checkPrivateKeyFile(newKey); err != nil {
			return nil, err
		}
	} else if dev := cfg.DevCertsDir(); filepath.Dir(pair.Key) != filepath.Clean(dev) {
		return nil, fmt.Errorf("the %s key is not in the dev PKI (%s): give the new certificate and key", role, dev)
	}

	st, err := store.Open(ctx, cfg.Store.Driver, cfg.Store.DSN)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer st.Close()

	retired := cfg.RetiredDir()
	if err := os.MkdirAll(retired, 0o700); err != nil {
		return nil, err
	}
	base := filepath.Join(retired, role+"-"+old.KeyID())
	if err := copyFile(pair.Cert, base+".pem", 0o644); err != nil {
		return nil, err
	}
	if err := copyFile(pair.Key, base+".key", 0o600); err != nil {
		return nil, err
	}
	if newCert != "" {
		if err := copyFile(newCert, pair.Cert, 0o644); err != nil {
			return nil, err
		}
		if err := copyFile(newKey, pair.Key, 0o600); err != nil {
			return nil, err
		}
	} else {
		// InitDevPKI issues what is missing and never overwrites a key.
		for _, p := range []string{pair.Cert, pair.Key} {
			if err := os.Remove(p); err != nil {
				return nil, err
			}
		}
		if err := certs.InitDevPKI(cfg.DevCertsDir()); err != nil {
			return nil, err
		}
	}
	fresh, err := certs.LoadSigner(pair.Cert, pair.Key, pass)
	if err != nil {
		return nil, fmt.Errorf("new %s key: %w", role, err)
	}
	now := time.Now()
	entry, err := store.NewLogAppend(&exchangelog.KeyRotatedEntry{
		Header: exchangelog.Header{Time: now}, Role: role, OldKeyID: old.KeyID(), NewKeyID: fresh.KeyID(),
		NewCertificate: base64.StdEncoding.EncodeToString(fresh.Certificate().Raw),
	}, now)
	if err != nil {
		return nil, err
	}
	pos, err := st.AppendEntry(ctx, entry)
	if err != nil {
		return nil, fmt.Errorf("key_rotated entry: %w", err)
	}
	return &KeyRotation{Role: role, OldKeyID: old.KeyID(), NewKeyID: fresh.KeyID(), LogIndex: pos.Index, Retired: retired}, nil
}

// copyFile writes src's bytes to dst (atomically, by rename) with mode.
func copyFile(src, dst string, mode fs.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// loadRetired adds the retired gateway and log certificates to the trust
// store (so that exports carry them and what they signed verifies) and
// returns the retired log certificates, for the log to verify its earlier
// checkpoints.
func (s *Server) loadRetired() ([]*certs.Certificate, error) {
	dir := s.Config.RetiredDir()
	var logCerts []*certs.Certificate
	for _, r := range []struct {
		role string
		id   certs.Identity
	}{
		{KeyRoleGateway, certs.Identity{Role: certs.RoleGateway, Name: "gateway (retired)"}},
		{KeyRoleLog, certs.Identity{Role: certs.RoleLog, Name: "log (retired)"}},
	} {
		cs, err := retiredCertificates(dir, r.role)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			if err := s.Trust.Add(c, r.id); err != nil {
				return nil, fmt.Errorf("retired certificate: %w", err)
			}
		}
		if r.role == KeyRoleLog {
			logCerts = cs
		}
	}
	return logCerts, nil
}
