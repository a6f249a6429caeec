package httpsig

import (
	"bytes"
	"net/http"
	"testing"
	"time"
)

// FuzzParseSignatureFields: hostile Signature-Input, Signature and
// Content-Digest values never panic, every refusal is a 401 *Error, and
// whatever is accepted is in its canonical serialization.
func FuzzParseSignatureFields(f *testing.F) {
	req := clientRequest(f, pki.Nanhai, "POST", "/v1/exchanges", "application/json", []byte("{}"))
	f.Add(req.Header.Get("Signature-Input"), req.Header.Get("Signature"), req.Header.Get("Content-Digest"))
	f.Add(`tb=("@status" "content-digest";req);created=1;nonce="aaaaaaaaaaaaaaaa";keyid="k";alg="sm2-sm3"`, `tb=:MAYCAQECAQE=:`, `sm3=:AAAA:, x=?1;a=1.5`)
	f.Add(`a=1, b=?0, c=-1.25, d=tok/en:x, e=("x";p=1 y);q="s\"", f`, `tb=:YWJj:;x`, `sm3=(1 2)`)
	f.Fuzz(func(t *testing.T, input, signature, digest string) {
		h := http.Header{}
		h.Set("Signature-Input", input)
		h.Set("Signature", signature)
		rc, err := parseSignatureFields(h)
		if err != nil {
			e, ok := err.(*Error)
			if !ok || e.Status != 401 {
				t.Fatalf("refusal %v is not a 401 *Error", err)
			}
		} else if "tb="+rc.params.serialize() != findTB(t, input) {
			t.Fatalf("accepted a non-canonical member %q", input)
		}
		if d, err := parseContentDigest(digest); err == nil && len(d) != 32 {
			t.Fatalf("accepted a %d-byte digest", len(d))
		}
	})
}

func findTB(t *testing.T, field string) string {
	ms, err := parseDictionary(field)
	if err != nil {
		t.Fatal(err)
	}
	return "tb=" + findMember(ms, "tb").raw
}

// FuzzVerify: a whole request with hostile headers and body never panics
// the verifier, and is never accepted unless genuinely signed.
func FuzzVerify(f *testing.F) {
	body := []byte(`{"a":1}`)
	req := clientRequest(f, pki.Liwan, "POST", "/v1/exchanges", "application/json", body)
	f.Add("POST", "/v1/exchanges", req.Header.Get("Content-Type"), req.Header.Get("Content-Digest"),
		req.Header.Get("Signature-Input"), req.Header.Get("Signature"), body)
	f.Add("GET", "/v1/cases/1?x", "", "", `tb=("@method" "@target-uri");created=1;nonce="0123456789abcdef";keyid="x";alg="sm2-sm3"`, "tb=:MAYCAQECAQE=:", []byte{})
	f.Fuzz(func(t *testing.T, method, target, ct, cd, input, signature string, body []byte) {
		r, err := http.NewRequest(method, "http://127.0.0.1:8443"+target, bytes.NewReader(body))
		if err != nil {
			return
		}
		r.RequestURI = r.URL.RequestURI()
		for k, v := range map[string]string{"Content-Type": ct, "Content-Digest": cd, "Signature-Input": input, "Signature": signature} {
			if v != "" {
				r.Header.Set(k, v)
			}
		}
		v := &Verifier{Trust: pki.TrustStore(), PublicURL: publicURL, MaxBody: 1 << 16, Now: func() time.Time { return testNow }}
		vf, err := v.Verify(r)
		if err == nil {
			// Only the seed itself carries a genuine signature.
			if vf.Identity.KeyID != pki.Liwan.KeyID() || !bytes.Equal(vf.Body, body) {
				t.Fatalf("accepted %+v", vf.Request)
			}
			return
		}
		if _, ok := err.(*Error); !ok {
			t.Fatalf("error %v is not an *Error", err)
		}
	})
}
