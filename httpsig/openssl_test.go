package httpsig

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tongban/tongban/certs"
)

const distid = "distid:1234567812345678"

func mustOpenSSL(t *testing.T, dir string, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// opensslPartner makes, with OpenSSL alone and signing.md's commands, a
// root and a partner key and certificate (k.pem, k.crt), and e.crt: the
// same key certified without -sigopt, that is with an empty SM2 ID.
func opensslPartner(t *testing.T, dir string) {
	mustOpenSSL(t, dir, "genpkey", "-algorithm", "SM2", "-out", "k.pem")
	mustOpenSSL(t, dir, "req", "-x509", "-newkey", "sm2", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
		"-sm3", "-sigopt", distid, "-days", "3650", "-subj", "/C=CN/O=Example/CN=Root",
		"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
	mustOpenSSL(t, dir, "req", "-new", "-key", "k.pem", "-sm3", "-sigopt", distid,
		"-subj", "/O=Example/OU=partner/L=440605/CN=nanhai", "-out", "k.csr")
	mustOpenSSL(t, dir, "x509", "-req", "-in", "k.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
		"-sm3", "-sigopt", distid, "-vfyopt", distid, "-days", "825", "-out", "k.crt")
	mustOpenSSL(t, dir, "req", "-new", "-key", "k.pem", "-sm3", "-subj", "/OU=partner/L=440605/CN=nanhai", "-out", "e.csr")
	mustOpenSSL(t, dir, "x509", "-req", "-in", "e.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
		"-sm3", "-days", "825", "-out", "e.crt")
	mustOpenSSL(t, dir, "pkey", "-in", "k.pem", "-pubout", "-out", "pub.pem")
}

// opensslKeyID is the keyid computed by OpenSSL: SM3 of the DER certificate.
func opensslKeyID(t *testing.T, dir, crt string) string {
	mustOpenSSL(t, dir, "x509", "-in", crt, "-outform", "DER", "-out", crt+".der")
	return strings.Fields(mustOpenSSL(t, dir, "dgst", "-sm3", "-r", crt+".der"))[0]
}

// opensslRequest builds a complete signed POST with OpenSSL doing every
// hash and signature: Content-Digest, the keyid, and the SM2 signature over
// a base written out by hand.
func opensslRequest(t *testing.T, dir, origin, keyID, nonce string, created int64, contentType string, body []byte) *http.Request {
	t.Helper()
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("body.bin", body)
	mustOpenSSL(t, dir, "dgst", "-sm3", "-binary", "-out", "digest.bin", "body.bin")
	digest := strings.TrimSpace(mustOpenSSL(t, dir, "base64", "-A", "-in", "digest.bin"))
	contentDigest := "sm3=:" + digest + ":"
	params := fmt.Sprintf(`("@method" "@target-uri" "content-digest" "content-type");created=%d;nonce="%s";keyid="%s";alg="sm2-sm3"`, created, nonce, keyID)
	base := strings.Join([]string{
		`"@method": POST`,
		`"@target-uri": ` + origin + `/v1/exchanges`,
		`"content-digest": ` + contentDigest,
		`"content-type": ` + contentType,
		`"@signature-params": ` + params,
	}, "\n")
	write("base.txt", []byte(base))
	mustOpenSSL(t, dir, "dgst", "-sm3", "-sign", "k.pem", "-sigopt", distid, "-out", "sig.der", "base.txt")
	sig := strings.TrimSpace(mustOpenSSL(t, dir, "base64", "-A", "-in", "sig.der"))

	req, err := http.NewRequest("POST", origin+"/v1/exchanges", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Content-Digest", contentDigest)
	req.Header.Set("Signature-Input", "tb="+params)
	req.Header.Set("Signature", "tb=:"+sig+":")
	return req
}

func TestOpenSSLSignedRequests(t *testing.T) {
	dir := t.TempDir()
	opensslPartner(t, dir)
	roots, err := certs.LoadCertificates(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	trust := certs.NewTrustStore(roots)
	leaf, _ := certs.LoadCertificate(filepath.Join(dir, "k.crt"))
	if _, err := trust.AddCertificate(leaf); err != nil {
		t.Fatal(err)
	}
	emptyID, _ := certs.LoadCertificate(filepath.Join(dir, "e.crt"))
	trust.AddCertificate(emptyID) // recorded as invalid

	var handled []byte
	srv := httptest.NewUnstartedServer(nil)
	origin := "http://" + srv.Listener.Addr().String()
	v := &Verifier{Trust: trust, Nonces: NewMemoryNonces(100), PublicURL: origin}
	srv.Config.Handler = v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handled, _ = io.ReadAll(r.Body)
		vf, _ := FromContext(r.Context())
		fmt.Fprintf(w, "%s %s", vf.Identity.Partner, vf.Identity.Division)
	}))
	srv.Start()
	defer srv.Close()

	keyID := opensslKeyID(t, dir, "k.crt")
	if keyID != certs.KeyID(leaf) {
		t.Fatalf("keyid: openssl %s, certs %s", keyID, certs.KeyID(leaf))
	}
	body := []byte("<CASE><PROJECT_NO>NH-1</PROJECT_NO></CASE>")
	ct := "application/xml; charset=GBK"
	send := func(req *http.Request) (int, string) {
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code := func(s string) string {
		i := strings.Index(s, `"code":"`)
		if i < 0 {
			return ""
		}
		s = s[i+8:]
		return s[:strings.IndexByte(s, '"')]
	}
	n := 0
	nonce := func() string { n++; return fmt.Sprintf("openssl-nonce-%04d", n) }
	now := time.Now().Unix()

	// The genuine request is accepted, and replaying it is not.
	genuine := opensslRequest(t, dir, origin, keyID, nonce(), now, ct, body)
	if st, b := send(genuine); st != 200 || b != "nanhai 440605" || !bytes.Equal(handled, body) {
		t.Fatalf("OpenSSL-signed request: %d %s", st, b)
	}
	replay := opensslRequest(t, dir, origin, keyID, fmt.Sprintf("openssl-nonce-%04d", n), now, ct, body)
	if st, b := send(replay); st != 401 || code(b) != "replayed" {
		t.Errorf("nonce reuse: %d %s", st, b)
	}

	// Each single-byte tamper is refused with its own code.
	tampers := []struct {
		name   string
		mut    func(r *http.Request, body []byte) []byte
		status int
		code   string
	}{
		{"body byte", func(_ *http.Request, b []byte) []byte { b = bytes.Clone(b); b[3] ^= 0x20; return b }, 400, "digest_mismatch"},
		{"content-type byte", func(r *http.Request, b []byte) []byte {
			r.Header.Set("Content-Type", strings.Replace(ct, "GBK", "GBL", 1))
			return b
		}, 401, "signature_invalid"},
		{"created", func(r *http.Request, b []byte) []byte {
			r.Header.Set("Signature-Input", strings.Replace(r.Header.Get("Signature-Input"), fmt.Sprint(now), fmt.Sprint(now+1), 1))
			return b
		}, 401, "signature_invalid"},
		{"nonce byte", func(r *http.Request, b []byte) []byte {
			r.Header.Set("Signature-Input", strings.Replace(r.Header.Get("Signature-Input"), "openssl-nonce", "openssl-nonCe", 1))
			return b
		}, 401, "signature_invalid"},
		{"signature byte", func(r *http.Request, b []byte) []byte {
			s := r.Header.Get("Signature")
			der, _ := base64.StdEncoding.DecodeString(s[4 : len(s)-1])
			der[12] ^= 1
			r.Header.Set("Signature", "tb=:"+base64.StdEncoding.EncodeToString(der)+":")
			return b
		}, 401, "signature_invalid"},
		{"target path", func(r *http.Request, b []byte) []byte { r.URL.Path = "/v1/exchangeS"; return b }, 401, "signature_invalid"},
	}
	for _, tc := range tampers {
		req := opensslRequest(t, dir, origin, keyID, nonce(), now, ct, body)
		b := tc.mut(req, body)
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.ContentLength = int64(len(b))
		if st, resp := send(req); st != tc.status || code(resp) != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, st, resp, tc.status, tc.code)
		}
	}

	// Signed too long ago.
	if st, b := send(opensslRequest(t, dir, origin, keyID, nonce(), now-301, ct, body)); st != 401 || code(b) != "signature_expired" {
		t.Errorf("old created: %d %s", st, b)
	}
	// A certificate whose CA signature uses the empty ID (OpenSSL without -sigopt).
	emptyKeyID := opensslKeyID(t, dir, "e.crt")
	if st, b := send(opensslRequest(t, dir, origin, emptyKeyID, nonce(), now, ct, body)); st != 401 || code(b) != "certificate_invalid" {
		t.Errorf("empty-ID certificate: %d %s", st, b)
	}

	// And the other way: a request signed here verifies in OpenSSL.
	s, err := certs.NewSigner(leaf, must(os.ReadFile(filepath.Join(dir, "k.pem"))), nil)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", origin+"/v1/exchanges", nil)
	req.Header.Set("Content-Type", ct)
	signed, err := SignRequest(req, body, s)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "mybase.txt"), []byte(signed.SignatureBase), 0o600)
	os.WriteFile(filepath.Join(dir, "mysig.der"), must(base64.StdEncoding.DecodeString(signed.Signature)), 0o600)
	mustOpenSSL(t, dir, "dgst", "-sm3", "-verify", "pub.pem", "-sigopt", distid, "-signature", "mysig.der", "mybase.txt")
	if st, b := send(req); st != 200 {
		t.Errorf("request signed here: %d %s", st, b)
	}
}
