package httpsig

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tongban/tongban/certs"
)

func TestContractExampleBase(t *testing.T) {
	t.Parallel()
	if got := ContentDigest([]byte("abc")); got != "sm3=:Zsfw9GLu7dnR8tRr3BDk4kFnxIdc8veiKX2gK49LqOA=:" {
		t.Fatalf("ContentDigest(abc) = %s", got)
	}
	req, _ := http.NewRequest("POST", "HTTPS://127.0.0.1:8443/v1/exchanges", nil)
	req.Header.Set("Content-Type", "application/xml; charset=GBK")
	created := time.Unix(1795746600, 0)
	signed, err := SignRequest(req, []byte("abc"), pki.Nanhai, WithClock(func() time.Time { return created }), WithNonce("k3Jx9d0sQm2Lw7Vb"))
	if err != nil {
		t.Fatal(err)
	}
	keyID := pki.Nanhai.KeyID()
	want := `"@method": POST
"@target-uri": https://127.0.0.1:8443/v1/exchanges
"content-digest": sm3=:Zsfw9GLu7dnR8tRr3BDk4kFnxIdc8veiKX2gK49LqOA=:
"content-type": application/xml; charset=GBK
"@signature-params": ("@method" "@target-uri" "content-digest" "content-type");created=1795746600;nonce="k3Jx9d0sQm2Lw7Vb";keyid="` + keyID + `";alg="sm2-sm3"`
	if signed.SignatureBase != want {
		t.Fatalf("base:\n%s\nwant:\n%s", signed.SignatureBase, want)
	}
	if got := req.Header.Get("Signature-Input"); got != `tb=("@method" "@target-uri" "content-digest" "content-type");created=1795746600;nonce="k3Jx9d0sQm2Lw7Vb";keyid="`+keyID+`";alg="sm2-sm3"` {
		t.Errorf("Signature-Input = %s", got)
	}
	sigField := req.Header.Get("Signature")
	if !strings.HasPrefix(sigField, "tb=:") || !strings.HasSuffix(sigField, ":") || sigField[4:len(sigField)-1] != signed.Signature {
		t.Errorf("Signature = %s", sigField)
	}
	if signed.Digest != certs.SM3Hex([]byte("abc")) || signed.KeyID != keyID {
		t.Errorf("signed = %+v", signed)
	}
	if err := VerifySigned(signed, pki.Nanhai.Certificate()); err != nil {
		t.Errorf("VerifySigned: %v", err)
	}
	if b, _ := io.ReadAll(req.Body); string(b) != "abc" || req.ContentLength != 3 {
		t.Errorf("request body %q length %d", b, req.ContentLength)
	}
}

func TestTargetURI(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://127.0.0.1:8443/v1/exchanges":     "https://127.0.0.1:8443/v1/exchanges",
		"HTTPS://Example.COM:443/a/B?x=1&Y=2":     "https://example.com/a/B?x=1&Y=2",
		"http://example.com:80":                   "http://example.com/",
		"http://example.com:8080/p%2Fq?":          "http://example.com:8080/p%2Fq?", // as sent
		"https://[::1]:8443/v1/cases/A%20B?q=%E4": "https://[::1]:8443/v1/cases/A%20B?q=%E4",
		"https://[::1]:443/":                      "https://[::1]/",
		"http://localhost:443/":                   "http://localhost:443/",
	} {
		u, err := http.NewRequest("GET", in, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := TargetURI(u.URL); err != nil || got != want {
			t.Errorf("TargetURI(%s) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"ftp://x/", "https:///nohost", "https://x/path", "https://x/?q", "https://u@x"} {
		if got, err := NormalizeBaseURL(bad); err == nil {
			t.Errorf("NormalizeBaseURL(%s) = %s, want an error", bad, got)
		}
	}
	if got, _ := NormalizeBaseURL("HTTPS://GW.example:443/"); got != "https://gw.example" {
		t.Errorf("NormalizeBaseURL = %s", got)
	}
}

func TestVerifyAccepts(t *testing.T) {
	t.Parallel()
	v := newVerifier()
	type tc struct {
		name, method, ct string
		body             []byte
		opts             []Option
		signer           *certs.Signer
	}
	for _, c := range []tc{
		{"post", "POST", "application/xml; charset=GBK", []byte("<a/>"), nil, pki.Nanhai},
		{"post empty body", "POST", "application/json", nil, nil, pki.Liwan},
		{"put", "PUT", "application/json", []byte("{}"), nil, pki.Admin},
		{"patch", "PATCH", "application/json", []byte("{}"), nil, pki.Admin},
		{"get", "GET", "", nil, nil, pki.Auditor},
		{"delete", "DELETE", "", nil, nil, pki.Admin},
		{"idempotency key", "POST", "application/json", []byte(`{"a":1}`), []Option{WithIdempotencyKey()}, pki.Gateway},
	} {
		req, _ := http.NewRequest(c.method, publicURL+"/v1/x?y=1", nil)
		if c.ct != "" {
			req.Header.Set("Content-Type", c.ct)
		}
		req.Header.Set("Idempotency-Key", "01JD0000000000000000000000.1")
		signed, err := SignRequest(req, c.body, c.signer, append(c.opts, WithClock(func() time.Time { return testNow }))...)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		rec, p, got := serve(t, v, receivedRequest(req, c.body))
		if rec.Code != http.StatusNoContent {
			t.Errorf("%s: refused %d %s: %s", c.name, rec.Code, p.Code, p.Detail)
			continue
		}
		if got.Identity.KeyID != c.signer.KeyID() || !bytes.Equal(got.Body, c.body) || got.Request != *signed {
			t.Errorf("%s: verified %+v, signed %+v", c.name, got.Request, signed)
		}
		if (len(c.opts) > 0) != (got.IdempotencyKey != "") {
			t.Errorf("%s: idempotency key %q", c.name, got.IdempotencyKey)
		}
		if err := VerifySigned(&got.Request, c.signer.Certificate()); err != nil {
			t.Errorf("%s: VerifySigned of the verified request: %v", c.name, err)
		}
	}
}

func TestVerifyBodyIsReplaced(t *testing.T) {
	t.Parallel()
	v := newVerifier()
	body := []byte("<case>1</case>")
	r := receivedRequest(clientRequest(t, pki.Nanhai, "POST", "/v1/exchanges", "application/xml", body), body)
	var seen []byte
	h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = io.ReadAll(r.Body)
		vf, _ := FromContext(r.Context())
		if vf.Identity.Partner != "nanhai" || vf.Identity.Division != "440605" || vf.Identity.Role != certs.RolePartner {
			t.Errorf("identity %+v", vf.Identity)
		}
		if vf.Components.TargetURI != publicURL+"/v1/exchanges" || vf.Components.Method != "POST" || vf.Components.ContentDigest != ContentDigest(body) {
			t.Errorf("components %+v", vf.Components)
		}
	}))
	h.ServeHTTP(httptestRecorder(), r)
	if !bytes.Equal(seen, body) {
		t.Fatalf("handler read %q", seen)
	}
}

// mutation changes a signed client request (and its body) before sending.
type mutation func(r *http.Request, body *[]byte)

func setHeader(name, value string) mutation {
	return func(r *http.Request, _ *[]byte) { r.Header.Set(name, value) }
}

func editHeader(name string, f func(string) string) mutation {
	return func(r *http.Request, _ *[]byte) { r.Header.Set(name, f(r.Header.Get(name))) }
}

func TestVerifyRefusals(t *testing.T) {
	t.Parallel()
	body := []byte(`{"caseId":"LW-1"}`)
	kid := pki.Liwan.KeyID()
	params := func(created int64, nonce, keyid, alg string) string {
		return `tb=("@method" "@target-uri" "content-digest" "content-type");created=` + strconv.FormatInt(created, 10) +
			`;nonce="` + nonce + `";keyid="` + keyid + `";alg="` + alg + `"`
	}
	goodNonce := "AAAAAAAAAAAAAAAAAAAAAA"
	expired, err := pki.IssueLeaf(certs.Identity{Role: certs.RolePartner, Partner: "liwan", Division: "440103"}, testNow.Add(-48*time.Hour), testNow.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	trust := pki.TrustStore()
	if err := trust.Add(expired.Certificate(), certs.Identity{Role: certs.RolePartner, Partner: "liwan", Division: "440103"}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		signer *certs.Signer
		opts   []Option
		mut    mutation
		status int
		code   string
	}{
		{"no signature at all", nil, nil, func(r *http.Request, _ *[]byte) {
			r.Header.Del("Signature")
			r.Header.Del("Signature-Input")
		}, 401, "signature_missing"},
		{"no Signature", nil, nil, func(r *http.Request, _ *[]byte) { r.Header.Del("Signature") }, 401, "signature_missing"},
		{"no Signature-Input", nil, nil, func(r *http.Request, _ *[]byte) { r.Header.Del("Signature-Input") }, 401, "signature_missing"},
		{"other label only", nil, nil, func(r *http.Request, _ *[]byte) {
			r.Header.Set("Signature-Input", strings.Replace(r.Header.Get("Signature-Input"), "tb=", "sig1=", 1))
			r.Header.Set("Signature", strings.Replace(r.Header.Get("Signature"), "tb=", "sig1=", 1))
		}, 401, "signature_missing"},
		{"other labels ignored", nil, nil, func(r *http.Request, _ *[]byte) {
			r.Header.Set("Signature-Input", `sig1=("@method");created=1;alg="x", `+r.Header.Get("Signature-Input"))
			r.Header.Add("Signature", `sig1=:AAAA:`)
		}, 204, ""},
		{"tb only in Signature-Input", nil, nil, editHeader("Signature", func(s string) string { return strings.Replace(s, "tb=", "xx=", 1) }), 401, "signature_malformed"},
		{"not a dictionary", nil, nil, setHeader("Signature-Input", "tb=(("), 401, "signature_malformed"},
		{"trailing comma", nil, nil, editHeader("Signature-Input", func(s string) string { return s + "," }), 401, "signature_malformed"},
		{"tb repeated", nil, nil, editHeader("Signature-Input", func(s string) string { return s + ", " + s }), 401, "signature_malformed"},
		{"alg ed25519", nil, nil, setHeader("Signature-Input", params(testNow.Unix(), goodNonce, kid, "ed25519")), 401, "signature_malformed"},
		{"params out of order", nil, nil, setHeader("Signature-Input",
			`tb=("@method" "@target-uri" "content-digest" "content-type");nonce="`+goodNonce+`";created=`+strconv.FormatInt(testNow.Unix(), 10)+`;keyid="`+kid+`";alg="sm2-sm3"`), 401, "signature_malformed"},
		{"extra param", nil, nil, editHeader("Signature-Input", func(s string) string { return s + `;expires=1` }), 401, "signature_malformed"},
		{"missing alg", nil, nil, editHeader("Signature-Input", func(s string) string { return strings.TrimSuffix(s, `;alg="sm2-sm3"`) }), 401, "signature_malformed"},
		{"created as string", nil, nil, editHeader("Signature-Input", func(s string) string {
			return strings.Replace(s, "created="+strconv.FormatInt(testNow.Unix(), 10), `created="`+strconv.FormatInt(testNow.Unix(), 10)+`"`, 1)
		}), 401, "signature_malformed"},
		{"non-canonical spacing", nil, nil, editHeader("Signature-Input", func(s string) string { return strings.Replace(s, "tb=(", "tb=( ", 1) }), 401, "signature_malformed"},
		{"components missing content-type", nil, nil, editHeader("Signature-Input", func(s string) string { return strings.Replace(s, ` "content-type"`, "", 1) }), 401, "signature_malformed"},
		{"components reordered", nil, nil, editHeader("Signature-Input", func(s string) string {
			return strings.Replace(s, `"@method" "@target-uri"`, `"@target-uri" "@method"`, 1)
		}), 401, "signature_malformed"},
		{"component with ;req on a request", nil, nil, editHeader("Signature-Input", func(s string) string { return strings.Replace(s, `"@method"`, `"@method";req`, 1) }), 401, "signature_malformed"},
		{"nonce too short", nil, []Option{WithNonce("0123456789abcdef")}, editHeader("Signature-Input", func(s string) string {
			return strings.Replace(s, `nonce="0123456789abcdef"`, `nonce="0123456789abcde"`, 1)
		}), 401, "signature_malformed"},
		{"nonce with a dot", nil, []Option{WithNonce("0123456789abcdef")}, editHeader("Signature-Input", func(s string) string {
			return strings.Replace(s, `nonce="0123456789abcdef"`, `nonce="0123456789abcde."`, 1)
		}), 401, "signature_malformed"},
		{"Content-Digest two members", nil, nil, editHeader("Content-Digest", func(s string) string { return s + ", sha-256=:AAAA:" }), 401, "signature_malformed"},
		{"Content-Digest sha-256", nil, nil, editHeader("Content-Digest", func(s string) string { return strings.Replace(s, "sm3=", "sha-256=", 1) }), 401, "signature_malformed"},
		{"Content-Digest 31 bytes", nil, nil, setHeader("Content-Digest", "sm3=:"+base64.StdEncoding.EncodeToString(make([]byte, 31))+":"), 401, "signature_malformed"},
		{"Content-Digest missing", nil, nil, func(r *http.Request, _ *[]byte) { r.Header.Del("Content-Digest") }, 401, "signature_malformed"},
		{"Content-Type missing", nil, nil, func(r *http.Request, _ *[]byte) { r.Header.Del("Content-Type") }, 401, "signature_malformed"},
		{"signature DER with a trailing byte", nil, nil, editHeader("Signature", func(s string) string {
			der, _ := base64.StdEncoding.DecodeString(s[4 : len(s)-1])
			return "tb=:" + base64.StdEncoding.EncodeToString(append(der, 0)) + ":"
		}), 401, "signature_malformed"},
		{"signature not DER", nil, nil, setHeader("Signature", "tb=:"+base64.StdEncoding.EncodeToString(make([]byte, 64))+":"), 401, "signature_malformed"},
		{"huge Signature-Input", nil, nil, editHeader("Signature-Input", func(s string) string { return `x="` + strings.Repeat("a", 100<<10) + `", ` + s }), 401, "signature_malformed"},
		{"HEAD not covered", nil, nil, func(r *http.Request, _ *[]byte) { r.Method = "HEAD" }, 401, "signature_malformed"},
		{"keyid unknown", nil, nil, func(r *http.Request, _ *[]byte) {
			r.Header.Set("Signature-Input", strings.Replace(r.Header.Get("Signature-Input"), kid, certs.SM3Hex([]byte("x")), 1))
		}, 401, "key_unknown"},
		{"certificate expired", expired, nil, nil, 401, "certificate_invalid"},
		{"created too old", nil, []Option{WithClock(func() time.Time { return testNow.Add(-301 * time.Second) })}, nil, 401, "signature_expired"},
		{"created in the future", nil, []Option{WithClock(func() time.Time { return testNow.Add(301 * time.Second) })}, nil, 401, "signature_expired"},
		{"created at the edge", nil, []Option{WithClock(func() time.Time { return testNow.Add(-300 * time.Second) })}, nil, 204, ""},
		{"body tampered", nil, nil, func(_ *http.Request, b *[]byte) { (*b)[0] ^= 1 }, 400, "digest_mismatch"},
		{"body truncated", nil, nil, func(_ *http.Request, b *[]byte) { *b = (*b)[:len(*b)-1] }, 400, "digest_mismatch"},
		{"body and digest tampered", nil, nil, func(r *http.Request, b *[]byte) {
			(*b)[0] ^= 1
			r.Header.Set("Content-Digest", ContentDigest(*b))
		}, 401, "signature_invalid"},
		{"content-type tampered", nil, nil, editHeader("Content-Type", func(s string) string { return s + "x" }), 401, "signature_invalid"},
		{"content-type case changed", nil, nil, setHeader("Content-Type", "Application/JSON"), 401, "signature_invalid"},
		{"path tampered", nil, nil, func(r *http.Request, _ *[]byte) { r.URL.Path = "/v1/status" }, 401, "signature_invalid"},
		{"created tampered", nil, nil, editHeader("Signature-Input", func(s string) string {
			return strings.Replace(s, strconv.FormatInt(testNow.Unix(), 10), strconv.FormatInt(testNow.Unix()-1, 10), 1)
		}), 401, "signature_invalid"},
		{"signed by another key", pki.Nanhai, nil, editHeader("Signature-Input", func(s string) string {
			return strings.Replace(s, pki.Nanhai.KeyID(), kid, 1)
		}), 401, "signature_invalid"},
		{"Content-Length over the limit", nil, nil, func(r *http.Request, _ *[]byte) { r.ContentLength = DefaultMaxBody + 1 }, 413, "too_large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := tc.signer
			if s == nil {
				s = pki.Liwan
			}
			req := clientRequest(t, s, "POST", "/v1/exchanges", "application/json", body, tc.opts...)
			b := bytes.Clone(body)
			if tc.mut != nil {
				tc.mut(req, &b)
			}
			sr := receivedRequest(req, b)
			if cl := req.ContentLength; cl > DefaultMaxBody {
				sr.ContentLength = cl
			}
			sr.Method = req.Method
			v := newVerifier()
			v.Trust = trust
			rec, p, _ := serve(t, v, sr)
			expect(t, tc.name, rec, p, tc.status, tc.code)
		})
	}
}

func httptestRecorder() http.ResponseWriter { return &discard{h: http.Header{}} }

type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// TestVerifyOrder checks that when several checks would fail, the one
// signing.md lists first decides.
func TestVerifyOrder(t *testing.T) {
	t.Parallel()
	body := []byte("x")
	old := []Option{WithClock(func() time.Time { return testNow.Add(-time.Hour) })}
	for _, tc := range []struct {
		name   string
		opts   []Option
		mut    mutation
		status int
		code   string
	}{
		{"too large before missing", nil, func(r *http.Request, _ *[]byte) {
			r.Header.Del("Signature")
			r.ContentLength = DefaultMaxBody + 1
		}, 413, "too_large"},
		{"malformed before unknown key", nil, editHeader("Signature-Input", func(s string) string {
			return strings.Replace(strings.Replace(s, pki.Liwan.KeyID(), "nobody", 1), "sm2-sm3", "x", 1)
		}), 401, "signature_malformed"},
		{"unknown key before expired", old, editHeader("Signature-Input", func(s string) string { return strings.Replace(s, pki.Liwan.KeyID(), "nobody", 1) }), 401, "key_unknown"},
		{"expired before digest", old, func(_ *http.Request, b *[]byte) { (*b)[0] ^= 1 }, 401, "signature_expired"},
		{"digest before signature", nil, func(r *http.Request, b *[]byte) {
			(*b)[0] ^= 1
			r.Header.Set("Content-Type", "text/plain")
		}, 400, "digest_mismatch"},
	} {
		req := clientRequest(t, pki.Liwan, "POST", "/v1/exchanges", "application/json", body, tc.opts...)
		b := bytes.Clone(body)
		tc.mut(req, &b)
		sr := receivedRequest(req, b)
		if req.ContentLength > DefaultMaxBody {
			sr.ContentLength = req.ContentLength
		}
		rec, p, _ := serve(t, newVerifier(), sr)
		expect(t, tc.name, rec, p, tc.status, tc.code)
	}

	// Replay: the nonce check comes before the digest check.
	v := newVerifier()
	req := clientRequest(t, pki.Liwan, "POST", "/v1/exchanges", "application/json", body)
	rec, p, _ := serve(t, v, receivedRequest(req, body))
	expect(t, "first", rec, p, 204, "")
	rec, p, _ = serve(t, v, receivedRequest(req, body))
	expect(t, "replay", rec, p, 401, "replayed")
	rec, p, _ = serve(t, v, receivedRequest(req, []byte("y")))
	expect(t, "replay with another body", rec, p, 401, "replayed")
}

// A nonce is remembered only once its signature verified: a forged request
// cannot burn a legitimate client's nonce.
func TestNonceRememberedOnlyAfterVerification(t *testing.T) {
	t.Parallel()
	v := newVerifier()
	nonce := WithNonce("the-nonce-of-a-real-client")
	body := []byte("{}")
	forged := clientRequest(t, pki.Liwan, "POST", "/v1/exchanges", "application/json", body, nonce)
	forged.Header.Set("Content-Type", "text/plain")
	rec, p, _ := serve(t, v, receivedRequest(forged, body))
	expect(t, "forged", rec, p, 401, "signature_invalid")
	real := clientRequest(t, pki.Liwan, "POST", "/v1/exchanges", "application/json", body, nonce)
	rec, p, _ = serve(t, v, receivedRequest(real, body))
	expect(t, "real after forged", rec, p, 204, "")
	// The same nonce under another key is another pair.
	other := clientRequest(t, pki.Nanhai, "POST", "/v1/exchanges", "application/json", body, nonce)
	rec, p, _ = serve(t, v, receivedRequest(other, body))
	expect(t, "same nonce, other key", rec, p, 204, "")
}

func TestVerifyBodies(t *testing.T) {
	t.Parallel()
	// A chunked body (no Content-Length) over the limit is cut off.
	v := newVerifier()
	v.MaxBody = 1024
	big := bytes.Repeat([]byte("a"), 4096)
	req := clientRequest(t, pki.Liwan, "POST", "/v1/exchanges", "application/json", big)
	sr := receivedRequest(req, nil)
	counter := &countingReader{r: bytes.NewReader(big)}
	sr.Body = io.NopCloser(counter)
	sr.ContentLength = -1
	rec, p, _ := serve(t, v, sr)
	expect(t, "chunked over the limit", rec, p, 413, "too_large")
	if counter.n > 2048 {
		t.Errorf("read %d bytes of an oversized body", counter.n)
	}

	// Exactly the limit passes.
	v2 := newVerifier()
	v2.MaxBody = 4096
	req = clientRequest(t, pki.Liwan, "POST", "/v1/exchanges", "application/json", big)
	rec, p, _ = serve(t, v2, receivedRequest(req, big))
	expect(t, "at the limit", rec, p, 204, "")

	// GET must have no body: it is not covered.
	req = clientRequest(t, pki.Auditor, "GET", "/audit/v1/checkpoint", "", nil)
	rec, p, _ = serve(t, newVerifier(), receivedRequest(req, []byte("smuggled")))
	expect(t, "GET with a body", rec, p, 400, "digest_mismatch")

	// The body-less components on a POST are refused.
	req = clientRequest(t, pki.Auditor, "GET", "/v1/exchanges", "", nil)
	sr = receivedRequest(req, nil)
	sr.Method = "POST"
	rec, p, _ = serve(t, newVerifier(), sr)
	expect(t, "GET components on a POST", rec, p, 401, "signature_malformed")
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestRepeatedFieldLinesAndWhitespace(t *testing.T) {
	t.Parallel()
	body := []byte("{}")
	// The client signs a Content-Type sent on two field lines; the base
	// joins them with ", ".
	req, _ := http.NewRequest("POST", publicURL+"/v1/exchanges", nil)
	req.Header.Add("Content-Type", "application/json")
	req.Header.Add("Content-Type", " charset=utf-8 ")
	signed, err := SignRequest(req, body, pki.Liwan, WithClock(func() time.Time { return testNow }))
	if err != nil {
		t.Fatal(err)
	}
	lines, _ := ParseBase(signed.SignatureBase)
	if lines["content-type"] != "application/json, charset=utf-8" {
		t.Errorf("content-type line %q", lines["content-type"])
	}
	rec, p, _ := serve(t, newVerifier(), receivedRequest(req, body))
	expect(t, "repeated lines", rec, p, 204, "")
}

func TestRequireRole(t *testing.T) {
	t.Parallel()
	v := newVerifier()
	h := v.Middleware(RequireRole(certs.RoleAdmin)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })))
	for _, tc := range []struct {
		s    *certs.Signer
		want int
	}{{pki.Admin, 204}, {pki.Nanhai, 403}, {pki.Auditor, 403}} {
		req := clientRequest(t, tc.s, "GET", "/admin/v1/policy", "", nil)
		rec := httptestNewRecorder()
		h.ServeHTTP(rec, receivedRequest(req, nil))
		if rec.Code != tc.want {
			t.Errorf("%s: %d, want %d", tc.s.Certificate().Subject.CommonName, rec.Code, tc.want)
		}
		if tc.want == 403 && !strings.Contains(rec.Body.String(), `"code":"forbidden"`) {
			t.Errorf("403 body %s", rec.Body.String())
		}
	}
	rec := httptestNewRecorder()
	RequireRole(certs.RoleAdmin)(http.NotFoundHandler()).ServeHTTP(rec, receivedRequest(must(http.NewRequest("GET", publicURL+"/x", nil)), nil))
	if rec.Code != 401 {
		t.Errorf("no verified signature: %d", rec.Code)
	}
}

func TestErrorsCompareByCode(t *testing.T) {
	t.Parallel()
	err := error(ErrSignatureInvalid.WithDetail("x"))
	if !errors.Is(err, ErrSignatureInvalid) || errors.Is(err, ErrSignatureMalformed) {
		t.Error("errors.Is by code")
	}
	var e *Error
	if !errors.As(err, &e) || e.Status != 401 {
		t.Error("errors.As")
	}
	rec := httptestNewRecorder()
	WriteProblem(rec, must(http.NewRequest("POST", "https://x/v1/exchanges", nil)), 422, "validation_failed", "Validation failed", "",
		map[string]any{"errors": []map[string]string{{"field": "caseId", "code": "required", "message": "m"}}, "code": "override"})
	want := `{"type":"urn:tongban:problem:validation_failed","title":"Validation failed","status":422,"code":"validation_failed","instance":"/v1/exchanges","errors":[{"code":"required","field":"caseId","message":"m"}]}`
	if rec.Body.String() != want || rec.Code != 422 || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Errorf("WriteProblem wrote %d %s", rec.Code, rec.Body.String())
	}
	rec = httptestNewRecorder()
	WriteError(rec, nil, errors.New("database on fire"))
	if rec.Code != 500 || strings.Contains(rec.Body.String(), "fire") || !strings.Contains(rec.Body.String(), `"code":"internal"`) {
		t.Errorf("internal error leaked or mis-shaped: %s", rec.Body.String())
	}
}

func TestParseContentType(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][2]string{
		"application/xml; charset=GBK":     {"application/xml", "gbk"},
		"Application/XML; Charset=\"gbk\"": {"application/xml", "gbk"},
		"application/json":                 {"application/json", ""},
	} {
		mt, cs, err := ParseContentType(in)
		if err != nil || mt != want[0] || cs != want[1] {
			t.Errorf("ParseContentType(%q) = %q, %q, %v", in, mt, cs, err)
		}
	}
	if _, _, err := ParseContentType("no slash;;"); err == nil {
		t.Error("bad Content-Type accepted")
	}
}

// TestDeferredNonce: for a request Defer selects, Verify checks the nonce
// is not recorded but leaves recording it to the handler (Pending); the
// middleware records what the handler did not before the answer goes out,
// and when that finds the nonce used meanwhile (a concurrent copy of the
// request), the handler's answer is replaced by 401 replayed.
func TestDeferredNonce(t *testing.T) {
	body := []byte(`{"caseId":"LW2026110200001"}`)
	nonces := NewMemoryNonces(0)
	v := newVerifier()
	v.Nonces = nonces
	v.Defer = func(r *http.Request) bool { return r.URL.Path == "/v1/exchanges" }

	answer := func(handler http.HandlerFunc, r *http.Request) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		v.Middleware(handler).ServeHTTP(rec, r)
		return rec
	}
	ok := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Handler", "1")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "accepted")
	}

	// The handler records it (as the gateway does with its write): Verify
	// left it pending, and the middleware does not record it again.
	req := clientRequest(t, pki.Liwan, "POST", "/v1/exchanges", "application/json", body)
	rec := answer(func(w http.ResponseWriter, r *http.Request) {
		vf, _ := FromContext(r.Context())
		if vf.Pending == nil || vf.Pending.Nonce != vf.Nonce || nonces.Len() != 0 {
			t.Fatalf("pending %+v with %d nonces recorded, want the nonce pending and none recorded", vf.Pending, nonces.Len())
		}
		if fresh, err := nonces.Remember(r.Context(), vf.Pending.KeyID, vf.Pending.Nonce, vf.Pending.Until); !fresh || err != nil {
			t.Fatalf("handler's record: %v %v", fresh, err)
		}
		vf.Pending.Settle()
		ok(w, r)
	}, receivedRequest(req, body))
	if rec.Code != http.StatusAccepted || nonces.Len() != 1 {
		t.Fatalf("settled by the handler: %d with %d nonces", rec.Code, nonces.Len())
	}
	// Its replay is refused before the body is read.
	rec, p, _ := serve(t, v, receivedRequest(req, []byte("other")))
	expect(t, "replay of a settled request", rec, p, 401, "replayed")

	// The handler leaves it: recorded before the answer, and replayed after.
	req = clientRequest(t, pki.Liwan, "POST", "/v1/exchanges", "application/json", body)
	if rec := answer(ok, receivedRequest(req, body)); rec.Code != http.StatusAccepted || nonces.Len() != 2 {
		t.Fatalf("left to the middleware: %d with %d nonces, want 202 and 2", rec.Code, nonces.Len())
	}
	rec, p, _ = serve(t, v, receivedRequest(req, body))
	expect(t, "replay of a request the middleware settled", rec, p, 401, "replayed")

	// Recorded meanwhile by a concurrent copy: the handler's answer, its
	// headers included, gives way to the refusal.
	req = clientRequest(t, pki.Liwan, "POST", "/v1/exchanges", "application/json", body)
	rec = answer(func(w http.ResponseWriter, r *http.Request) {
		vf, _ := FromContext(r.Context())
		nonces.Remember(r.Context(), vf.Pending.KeyID, vf.Pending.Nonce, vf.Pending.Until)
		ok(w, r)
	}, receivedRequest(req, body))
	if rec.Code != 401 || rec.Header().Get("X-Handler") != "" || strings.Contains(rec.Body.String(), "accepted") ||
		!strings.Contains(rec.Body.String(), `"replayed"`) {
		t.Errorf("concurrent copy: %d %v %s, want 401 replayed alone", rec.Code, rec.Header(), rec.Body)
	}

	// A handler that writes nothing still has the nonce recorded.
	req = clientRequest(t, pki.Liwan, "POST", "/v1/exchanges", "application/json", body)
	answer(func(http.ResponseWriter, *http.Request) {}, receivedRequest(req, body))
	rec, p, _ = serve(t, v, receivedRequest(req, body))
	expect(t, "replay of a request answered with nothing", rec, p, 401, "replayed")

	// Routes Defer does not select record it in Verify, as before.
	req = clientRequest(t, pki.Liwan, "POST", "/v1/status", "application/json", body)
	_, _, vf := serve(t, v, receivedRequest(req, body))
	if vf == nil || vf.Pending != nil {
		t.Errorf("undeferred route: %+v, want a Verified with nothing pending", vf)
	}

	// Defer needs a store that can check without recording.
	bad := newVerifier()
	bad.Nonces, bad.Defer = rememberOnly{}, v.Defer
	if _, err := bad.Verify(receivedRequest(clientRequest(t, pki.Liwan, "POST", "/v1/exchanges", "application/json", body), body)); err == nil {
		t.Error("Defer without a NonceChecker was accepted")
	}
}

type rememberOnly struct{}

func (rememberOnly) Remember(context.Context, string, string, time.Time) (bool, error) {
	return true, nil
}
