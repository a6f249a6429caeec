package certs

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const distid = "distid:" + DefaultSignerID

// openssl runs the OpenSSL 3 command line in dir and returns its combined
// output; the test is skipped when openssl is not installed.
func openssl(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustOpenSSL(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := openssl(t, dir, args...)
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// opensslCA makes a root and a leaf exactly as signing.md's commands do.
func opensslCA(t *testing.T, dir string) {
	t.Helper()
	mustOpenSSL(t, dir, "genpkey", "-algorithm", "SM2", "-out", "k.pem")
	mustOpenSSL(t, dir, "req", "-x509", "-newkey", "sm2", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
		"-sm3", "-sigopt", distid, "-days", "3650", "-subj", "/C=CN/O=Example/CN=Root",
		"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
	mustOpenSSL(t, dir, "req", "-new", "-key", "k.pem", "-sm3", "-sigopt", distid,
		"-subj", "/C=CN/O=tongban dev/OU=partner/L=440605/CN=nanhai", "-out", "k.csr")
	mustOpenSSL(t, dir, "x509", "-req", "-in", "k.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
		"-sm3", "-sigopt", distid, "-vfyopt", distid, "-days", "825", "-out", "k.crt")
	mustOpenSSL(t, dir, "verify", "-CAfile", "ca.pem", "-vfyopt", distid, "k.crt")
	mustOpenSSL(t, dir, "pkey", "-in", "k.pem", "-pubout", "-out", "pub.pem")
}

func TestOpenSSLMaterialLoadsAndVerifies(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opensslCA(t, dir)

	roots, err := LoadCertificates(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := LoadSigner(filepath.Join(dir, "k.crt"), filepath.Join(dir, "k.pem"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := NewTrustStore(roots)
	id, err := ts.AddCertificate(signer.Certificate())
	if err != nil {
		t.Fatalf("OpenSSL-issued certificate refused: %v", err)
	}
	if id.Partner != "nanhai" || id.Division != "440605" {
		t.Errorf("identity read from the OpenSSL subject: %+v", id)
	}
	if _, err := ts.Lookup(signer.KeyID(), time.Now()); err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	// The key id is the SM3 of the DER, as `openssl x509 -outform DER | openssl dgst -sm3` says.
	mustOpenSSL(t, dir, "x509", "-in", "k.crt", "-outform", "DER", "-out", "k.der")
	out := mustOpenSSL(t, dir, "dgst", "-sm3", "-r", "k.der")
	if got := strings.Fields(out)[0]; got != signer.KeyID() {
		t.Errorf("KeyID = %s, openssl says %s", signer.KeyID(), got)
	}

	base := []byte("\"@method\": POST\n\"@signature-params\": (\"@method\");created=1")
	if err := os.WriteFile(filepath.Join(dir, "base.txt"), base, 0o600); err != nil {
		t.Fatal(err)
	}

	// Signed by OpenSSL, verified here.
	mustOpenSSL(t, dir, "dgst", "-sm3", "-sign", "k.pem", "-sigopt", distid, "-out", "sig.der", "base.txt")
	sig, err := os.ReadFile(filepath.Join(dir, "sig.der"))
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifySignature(signer.Certificate(), base, sig); err != nil {
		t.Errorf("OpenSSL signature does not verify here: %v", err)
	}
	if err := VerifySignature(signer.Certificate(), append(bytes.Clone(base), 'x'), sig); !errors.Is(err, ErrSignatureInvalid) {
		t.Errorf("OpenSSL signature over another message: %v, want ErrSignatureInvalid", err)
	}

	// Signed here, verified by OpenSSL — and not with OpenSSL's empty ID.
	mine, err := signer.Sign(base)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mine.der"), mine, 0o600); err != nil {
		t.Fatal(err)
	}
	mustOpenSSL(t, dir, "dgst", "-sm3", "-verify", "pub.pem", "-sigopt", distid, "-signature", "mine.der", "base.txt")
	if out, err := openssl(t, dir, "dgst", "-sm3", "-verify", "pub.pem", "-signature", "mine.der", "base.txt"); err == nil {
		t.Errorf("OpenSSL verified our signature with its empty ID:\n%s", out)
	}

	// The empty message, both ways.
	if err := os.WriteFile(filepath.Join(dir, "empty.txt"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	emptySig, err := signer.Sign(nil)
	if err != nil {
		t.Fatalf("Sign(empty): %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "empty.der"), emptySig, 0o600); err != nil {
		t.Fatal(err)
	}
	mustOpenSSL(t, dir, "dgst", "-sm3", "-verify", "pub.pem", "-sigopt", distid, "-signature", "empty.der", "empty.txt")
	mustOpenSSL(t, dir, "dgst", "-sm3", "-sign", "k.pem", "-sigopt", distid, "-out", "empty2.der", "empty.txt")
	emptySig2, _ := os.ReadFile(filepath.Join(dir, "empty2.der"))
	if err := VerifySignature(signer.Certificate(), nil, emptySig2); err != nil {
		t.Errorf("OpenSSL signature of the empty message: %v", err)
	}
}

func TestOpenSSLEncryptedKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opensslCA(t, dir)
	mustOpenSSL(t, dir, "pkcs8", "-topk8", "-in", "k.pem", "-out", "k.enc.pem", "-v2", "aes-256-cbc", "-passout", "pass:s3cret")
	if b, _ := os.ReadFile(filepath.Join(dir, "k.enc.pem")); !bytes.Contains(b, []byte("ENCRYPTED PRIVATE KEY")) {
		t.Fatal("openssl did not write an encrypted key")
	}
	s, err := LoadSigner(filepath.Join(dir, "k.crt"), filepath.Join(dir, "k.enc.pem"), []byte("s3cret"))
	if err != nil {
		t.Fatalf("encrypted key: %v", err)
	}
	sig, err := s.Sign([]byte("x"))
	if err != nil || VerifySignature(s.Certificate(), []byte("x"), sig) != nil {
		t.Fatalf("signing with the encrypted key: %v", err)
	}
	for _, pass := range [][]byte{[]byte("wrong"), nil} {
		if _, err := LoadSigner(filepath.Join(dir, "k.crt"), filepath.Join(dir, "k.enc.pem"), pass); !errors.Is(err, ErrPrivateKey) {
			t.Errorf("passphrase %q: %v, want ErrPrivateKey", pass, err)
		}
	}
	// A key that is not the certificate's.
	mustOpenSSL(t, dir, "genpkey", "-algorithm", "SM2", "-out", "other.pem")
	if _, err := LoadSigner(filepath.Join(dir, "k.crt"), filepath.Join(dir, "other.pem"), nil); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("mismatched key: %v, want ErrKeyMismatch", err)
	}
}

func TestDevPKIChainVerifiesInOpenSSL(t *testing.T) {
	t.Parallel()
	p := newDevPKI(t)
	for _, leaf := range []string{"gateway", "log", "nanhai", "liwan", "admin", "auditor"} {
		mustOpenSSL(t, p.Dir, "verify", "-CAfile", "ca.pem", "-vfyopt", distid, leaf+".pem")
		// Without the distid OpenSSL uses the empty ID, and must fail: this
		// shows our certificates really carry default-ID signatures.
		if out, err := openssl(t, p.Dir, "verify", "-CAfile", "ca.pem", leaf+".pem"); err == nil {
			t.Errorf("%s verified in OpenSSL with the empty ID:\n%s", leaf, out)
		}
	}
	// Our keys load in OpenSSL, and OpenSSL signatures by them verify here.
	if err := os.WriteFile(filepath.Join(p.Dir, "m.txt"), []byte("m"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustOpenSSL(t, p.Dir, "dgst", "-sm3", "-sign", "nanhai.key", "-sigopt", distid, "-out", "m.sig", "m.txt")
	sig, _ := os.ReadFile(filepath.Join(p.Dir, "m.sig"))
	if err := VerifySignature(p.Nanhai.Certificate(), []byte("m"), sig); err != nil {
		t.Errorf("OpenSSL signature with the dev key: %v", err)
	}
}

func TestEmptyIDCertificateRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opensslCA(t, dir)
	// The same CA issues a certificate but the -sigopt is forgotten: OpenSSL
	// signs with its default, empty, SM2 ID.
	mustOpenSSL(t, dir, "req", "-new", "-key", "k.pem", "-sm3", "-subj", "/OU=partner/L=440605/CN=nanhai", "-out", "e.csr")
	mustOpenSSL(t, dir, "x509", "-req", "-in", "e.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
		"-sm3", "-days", "825", "-out", "e.crt")
	// OpenSSL accepts it when verifying with its own empty default…
	mustOpenSSL(t, dir, "verify", "-CAfile", "ca.pem", "e.crt")
	// …and refuses it with the default ID, as we must.
	if out, err := openssl(t, dir, "verify", "-CAfile", "ca.pem", "-vfyopt", distid, "e.crt"); err == nil {
		t.Fatalf("OpenSSL accepted the empty-ID certificate with the default ID:\n%s", out)
	}

	roots, _ := LoadCertificates(filepath.Join(dir, "ca.pem"))
	leaf, err := LoadCertificate(filepath.Join(dir, "e.crt"))
	if err != nil {
		t.Fatal(err)
	}
	ts := NewTrustStore(roots)
	if _, err := ts.AddCertificate(leaf); !errors.Is(err, ErrCertificateInvalid) {
		t.Fatalf("Add: %v, want ErrCertificateInvalid", err)
	}
	_, err = ts.Lookup(KeyID(leaf), time.Now())
	if !errors.Is(err, ErrCertificateInvalid) || !strings.Contains(err.Error(), "empty SM2 ID") {
		t.Fatalf("Lookup: %v, want ErrCertificateInvalid naming the empty ID", err)
	}

	// A root self-signed with the empty ID is no trust anchor either.
	mustOpenSSL(t, dir, "req", "-x509", "-newkey", "sm2", "-nodes", "-keyout", "ca2.key", "-out", "ca2.pem",
		"-sm3", "-days", "3650", "-subj", "/CN=Root2",
		"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
	mustOpenSSL(t, dir, "x509", "-req", "-in", "k.csr", "-CA", "ca2.pem", "-CAkey", "ca2.key", "-CAcreateserial",
		"-sm3", "-sigopt", distid, "-vfyopt", distid, "-days", "825", "-out", "k2.crt")
	roots2, _ := LoadCertificates(filepath.Join(dir, "ca2.pem"))
	leaf2, _ := LoadCertificate(filepath.Join(dir, "k2.crt"))
	ts2 := NewTrustStore(roots2)
	if _, err := ts2.AddCertificate(leaf2); !errors.Is(err, ErrCertificateInvalid) || !strings.Contains(err.Error(), "empty SM2 ID") {
		t.Fatalf("leaf of an empty-ID root: %v, want ErrCertificateInvalid naming the empty ID", err)
	}
}
