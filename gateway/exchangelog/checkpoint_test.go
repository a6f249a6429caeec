package exchangelog

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tongban/tongban/certs"
)

// splitNote splits a signed checkpoint into body, key name, key ID and DER
// signature, by the C2SP signed-note rules, without the note package.
func splitNote(t *testing.T, n []byte) (body []byte, name string, keyID, sig []byte) {
	t.Helper()
	i := bytes.LastIndex(n, []byte("\n\n"))
	if i < 0 {
		t.Fatalf("no blank line in %q", n)
	}
	body = n[:i+1]
	line := strings.TrimSuffix(string(n[i+2:]), "\n")
	rest, ok := strings.CutPrefix(line, "— ")
	if !ok || strings.Contains(line, "\n") {
		t.Fatalf("bad signature line %q", line)
	}
	name, b64, _ := strings.Cut(rest, " ")
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) < 5 {
		t.Fatalf("bad signature %q", b64)
	}
	return body, name, raw[:4], raw[4:]
}

func TestCheckpointFormatAndOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	f := newFixture(t)
	f.build(3, 100)
	n := f.log.Checkpoint()
	body, name, keyID, sig := splitNote(t, n)

	// Body: origin, size, base64 root of the naive tree over the entries.
	es, _ := f.store.Entries(f.ctx, 0, f.log.Size())
	var raw [][]byte
	for _, e := range es {
		raw = append(raw, e.Bytes)
	}
	want := DefaultOrigin + "\n" + strconv.Itoa(len(es)) + "\n" + base64.StdEncoding.EncodeToString(naiveRoot(raw)) + "\n"
	if string(body) != want {
		t.Fatalf("body %q, want %q", body, want)
	}
	if name != DefaultOrigin {
		t.Errorf("key name %q", name)
	}
	// Key ID: SHA-256(origin ‖ 0x0a ‖ 0xff ‖ "SM2-SM3" ‖ SPKI DER)[:4].
	cert := f.pki.Log.Certificate()
	h := sha256.Sum256(append([]byte(DefaultOrigin+"\n\xffSM2-SM3"), cert.RawSubjectPublicKeyInfo...))
	if !bytes.Equal(keyID, h[:4]) {
		t.Errorf("key ID %x, want %x", keyID, h[:4])
	}

	dir := t.TempDir()
	pub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: cert.RawSubjectPublicKeyInfo})
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pubPath, sigPath := write("pub.pem", pub), write("sig.der", sig)
	verify := func(body []byte) error {
		cmd := exec.Command("openssl", "pkeyutl", "-verify", "-pubin", "-inkey", pubPath, "-rawin", "-digest", "sm3",
			"-pkeyopt", "distid:1234567812345678", "-in", write("body", body), "-sigfile", sigPath)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return errors.New(string(out))
		}
		return nil
	}
	if err := verify(body); err != nil {
		t.Fatalf("openssl refuses the checkpoint signature: %v", err)
	}
	forged := bytes.Replace(body, []byte("\n"+strconv.Itoa(len(es))+"\n"), []byte("\n"+strconv.Itoa(len(es)+1)+"\n"), 1)
	if err := verify(forged); err == nil {
		t.Fatal("openssl accepted a forged body")
	}
}

func TestOpenCheckpointRefuses(t *testing.T) {
	pki := devPKI(t)
	c := Checkpoint{Origin: DefaultOrigin, Size: 5, Root: certs.SM3([]byte("r"))}
	n, err := SignCheckpoint(c, pki.Log)
	if err != nil {
		t.Fatal(err)
	}
	logs := []*certs.Certificate{pki.Log.Certificate()}
	if got, cert, err := OpenCheckpoint(n, DefaultOrigin, logs); err != nil || got != c || !cert.Equal(pki.Log.Certificate()) {
		t.Fatalf("open: %v %v", got, err)
	}
	other, _ := SignCheckpoint(c, pki.Gateway)
	otherSig := other[bytes.LastIndex(other, []byte("\n\n"))+2:]
	cases := []struct {
		name   string
		note   []byte
		origin string
		logs   []*certs.Certificate
		want   error
	}{
		{"wrong key", other, DefaultOrigin, logs, ErrCheckpointSignature},
		{"no log certs", n, DefaultOrigin, nil, ErrCheckpointSignature},
		{"other origin", n, "tongban/other", logs, ErrCheckpointSignature},
		{"second signature", append(bytes.Clone(n), otherSig...), DefaultOrigin, logs, ErrCheckpointMalformed},
		{"extension line", bytes.Replace(n, []byte("\n\n"), []byte("\nextra\n\n"), 1), DefaultOrigin, logs, ErrCheckpointSignature},
		{"no newline at end", n[:len(n)-1], DefaultOrigin, logs, ErrCheckpointMalformed},
	}
	for _, tc := range cases {
		if _, _, err := OpenCheckpoint(tc.note, tc.origin, tc.logs); !errors.Is(err, tc.want) {
			t.Errorf("%s: error %v, want %v", tc.name, err, tc.want)
		}
	}
	// A body with an extension line, properly signed, is still not a checkpoint of this log.
	ext, _ := SignCheckpoint(c, pki.Log)
	body := append(c.Body(), "ext\n"...)
	ext = append(body, ext[len(c.Body()):]...)
	if _, _, err := OpenCheckpoint(ext, DefaultOrigin, logs); err == nil {
		t.Error("accepted a checkpoint with an extension line")
	}
}

func TestLogKeyRotation(t *testing.T) {
	f := newFixture(t)
	start := f.now
	f.build(6, 3)
	oldCert := f.pki.Log.Certificate()
	newKey, err := f.pki.IssueLeaf(certs.Identity{Role: certs.RoleLog, Name: "log2"}, f.now.Add(-time.Hour), f.now.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	f.log.RotateSigner(newKey)
	f.append(&KeyRotatedEntry{Header: Header{Time: f.now}, Role: RoleLog, OldKeyID: certs.KeyID(oldCert), NewKeyID: newKey.KeyID(),
		NewCertificate: base64.StdEncoding.EncodeToString(newKey.Certificate().Raw)})
	for i := 100; i < 106; i++ {
		f.addExchange(i)
		f.sync()
	}
	body, _, keyID, _ := splitNote(t, f.log.Checkpoint())
	if want := LogKeyID(DefaultOrigin, newKey.Certificate()); !bytes.Equal(keyID, want[:]) {
		t.Fatalf("checkpoint %q not signed by the new key", body)
	}
	// A restarted gateway knows the old certificate and verifies the store.
	if _, err := Open(f.ctx, f.store, NewOptions().WithSigner(newKey).WithLogCertificates(oldCert)); err != nil {
		t.Fatal(err)
	}
	b := f.export(start, f.now)
	s, err := verify(t, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.LogKeys) != 2 {
		t.Errorf("log keys %v, want both", s.LogKeys)
	}
	if _, err := verify(t, b, NewVerifyOptions().WithLogCertificates(oldCert, newKey.Certificate())); err != nil {
		t.Errorf("with both keys out of band: %v", err)
	}
	_, err = verify(t, b, NewVerifyOptions().WithLogCertificates(newKey.Certificate()))
	if !errors.Is(err, ErrBundleInvalid) || !strings.Contains(err.Error(), "checkpoints/") {
		t.Errorf("old checkpoints verified without the old key: %v", err)
	}
}
