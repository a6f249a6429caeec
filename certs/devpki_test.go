package certs

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

var devFiles = []string{
	"ca.pem", "ca.key", "gateway.pem", "gateway.key", "log.pem", "log.key",
	"nanhai.pem", "nanhai.key", "liwan.pem", "liwan.key", "admin.pem", "admin.key",
	"auditor.pem", "auditor.key", "tls.pem", "tls.key",
}

func newDevPKI(t testing.TB) *DevPKI {
	t.Helper()
	dir := t.TempDir()
	if err := InitDevPKI(dir); err != nil {
		t.Fatal(err)
	}
	p, err := LoadDevPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

func TestInitDevPKIFiles(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "certs")
	if err := InitDevPKI(dir); err != nil {
		t.Fatal(err)
	}
	got := snapshot(t, dir)
	var names []string
	for n := range got {
		names = append(names, n)
	}
	sort.Strings(names)
	want := append([]string(nil), devFiles...)
	sort.Strings(want)
	if !equalStrings(names, want) {
		t.Fatalf("files = %v, want exactly %v", names, want)
	}
	for _, n := range devFiles {
		fi, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Ext(n) == ".key" {
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s mode = %v, want 0600", n, fi.Mode().Perm())
			}
			if block, _ := pem.Decode(got[n]); block == nil || block.Type != "PRIVATE KEY" {
				t.Errorf("%s is not a PKCS#8 PEM key", n)
			}
		}
	}

	p, err := LoadDevPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !p.CA.IsCA || p.CA.NotAfter.Sub(p.CA.NotBefore) < 9*365*24*time.Hour {
		t.Errorf("CA: IsCA=%v validity %v", p.CA.IsCA, p.CA.NotAfter.Sub(p.CA.NotBefore))
	}
	ts := p.TrustStore()
	now := time.Now()
	for _, tc := range []struct {
		s                       *Signer
		role                    Role
		partner, division, name string
	}{
		{p.Nanhai, RolePartner, "nanhai", "440605", "nanhai"},
		{p.Liwan, RolePartner, "liwan", "440103", "liwan"},
		{p.Admin, RoleAdmin, "", "", "admin"},
		{p.Auditor, RoleAuditor, "", "", "auditor"},
		{p.Gateway, RoleGateway, "", "", "gateway"},
		{p.Log, RoleLog, "", "", "log"},
	} {
		id, err := ts.Lookup(tc.s.KeyID(), now)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if id.Role != tc.role || id.Partner != tc.partner || id.Division != tc.division || id.Name != tc.name || id.KeyID != tc.s.KeyID() {
			t.Errorf("%s: identity %+v", tc.name, id)
		}
		// The subject reads back to the same identity.
		fromCert, err := IdentityFromCertificate(tc.s.Certificate())
		if err != nil || fromCert.Role != tc.role || fromCert.Partner != tc.partner || fromCert.Division != tc.division {
			t.Errorf("%s: IdentityFromCertificate = %+v, %v", tc.name, fromCert, err)
		}
		if v := tc.s.Certificate().NotAfter.Sub(now); v < 824*24*time.Hour || v > 826*24*time.Hour {
			t.Errorf("%s: remaining validity %v, want 825 days", tc.name, v)
		}
		if !bytes.Equal(tc.s.PublicKeyDER(), tc.s.Certificate().RawSubjectPublicKeyInfo) {
			t.Errorf("%s: PublicKeyDER differs from the certificate's SPKI", tc.name)
		}
	}
	if n := len(ts.Identities()); n != 6 {
		t.Errorf("Identities() has %d entries, want 6", n)
	}

	// tls.pem: ECDSA P-256, self-signed, for the loopback names.
	block, _ := pem.Decode(got["tls.pem"])
	tlsCert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if tlsCert.PublicKeyAlgorithm != x509.ECDSA || tlsCert.SignatureAlgorithm != x509.ECDSAWithSHA256 {
		t.Errorf("tls.pem: %v / %v", tlsCert.PublicKeyAlgorithm, tlsCert.SignatureAlgorithm)
	}
	pool := x509.NewCertPool()
	pool.AddCert(tlsCert)
	for _, host := range []string{"127.0.0.1", "::1", "localhost"} {
		if _, err := tlsCert.Verify(x509.VerifyOptions{DNSName: host, Roots: pool}); err != nil {
			t.Errorf("tls.pem for %s: %v", host, err)
		}
	}
}

func TestInitDevPKINeverOverwritesKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := InitDevPKI(dir); err != nil {
		t.Fatal(err)
	}
	first := snapshot(t, dir)
	mtimes := map[string]time.Time{}
	for n := range first {
		fi, _ := os.Stat(filepath.Join(dir, n))
		mtimes[n] = fi.ModTime()
	}
	time.Sleep(10 * time.Millisecond)

	// A second run over a complete directory writes nothing.
	if err := InitDevPKI(dir); err != nil {
		t.Fatal(err)
	}
	second := snapshot(t, dir)
	for n, b := range first {
		if !bytes.Equal(second[n], b) {
			t.Errorf("second run changed %s", n)
		}
		fi, _ := os.Stat(filepath.Join(dir, n))
		if !fi.ModTime().Equal(mtimes[n]) {
			t.Errorf("second run rewrote %s", n)
		}
	}
	if len(second) != len(first) {
		t.Errorf("second run left %d files, want %d", len(second), len(first))
	}

	// A missing leaf certificate is issued again by the existing CA, for the
	// existing key; nothing else changes.
	if err := os.Remove(filepath.Join(dir, "nanhai.pem")); err != nil {
		t.Fatal(err)
	}
	// A missing leaf key is created, and its certificate reissued.
	if err := os.Remove(filepath.Join(dir, "liwan.key")); err != nil {
		t.Fatal(err)
	}
	if err := InitDevPKI(dir); err != nil {
		t.Fatal(err)
	}
	third := snapshot(t, dir)
	for n, b := range first {
		changed := !bytes.Equal(third[n], b)
		want := n == "nanhai.pem" || n == "liwan.key" || n == "liwan.pem"
		if changed != want {
			t.Errorf("third run: %s changed = %v, want %v", n, changed, want)
		}
	}
	p, err := LoadDevPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	ts := p.TrustStore()
	for _, s := range []*Signer{p.Nanhai, p.Liwan} {
		if _, err := ts.Lookup(s.KeyID(), time.Now()); err != nil {
			t.Errorf("%s after reissue: %v", s.Certificate().Subject.CommonName, err)
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, "liwan.key")); fi.Mode().Perm() != 0o600 {
		t.Errorf("recreated liwan.key mode %v", fi.Mode().Perm())
	}
}

func TestInitDevPKIRefusesUnreadableKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	garbage := []byte("not a key\n")
	if err := os.WriteFile(filepath.Join(dir, "ca.key"), garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := InitDevPKI(dir); !errors.Is(err, ErrPrivateKey) {
		t.Fatalf("InitDevPKI over a garbage ca.key: %v, want ErrPrivateKey", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "ca.key")); !bytes.Equal(b, garbage) {
		t.Fatal("the unreadable key was overwritten")
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
