package httpsig

import (
	"net/http"
	"testing"

	"github.com/tongban/tongban/certs"
)

// WithBodyDigest spares SignRequest the hash: a correct digest signs the
// same Content-Digest the body would give and the request verifies; a
// wrong one is signed as given, so the receiver refuses it.
func TestSignRequestWithBodyDigest(t *testing.T) {
	body := []byte(`<CASE>with a precomputed digest</CASE>`)
	tests := []struct {
		name   string
		sum    [certs.SM3Size]byte
		status int
		code   string
	}{
		{"digest of the body", certs.SM3(body), http.StatusNoContent, ""},
		{"digest of other bytes", certs.SM3([]byte("other")), http.StatusBadRequest, "digest_mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := clientRequest(t, pki.Nanhai, http.MethodPost, "/v1/exchanges", "application/xml; charset=GBK", body, WithBodyDigest(tt.sum))
			if got, want := req.Header.Get(HeaderContentDigest), contentDigestOf(tt.sum); got != want {
				t.Fatalf("Content-Digest %q, want %q", got, want)
			}
			rec, p, vf := serve(t, newVerifier(), receivedRequest(req, body))
			expect(t, tt.name, rec, p, tt.status, tt.code)
			if tt.status == http.StatusNoContent && vf.Request.Digest != certs.SM3Hex(body) {
				t.Errorf("verified digest %s, want %s", vf.Request.Digest, certs.SM3Hex(body))
			}
		})
	}
}

// The Signed that SignRequest returns records the body's digest, computed
// once, whether or not it was given.
func TestSignRequestDigestRecorded(t *testing.T) {
	body := make([]byte, 20<<10)
	for _, opts := range [][]Option{nil, {WithBodyDigest(certs.SM3(body))}} {
		req, _ := http.NewRequest(http.MethodPost, publicURL+"/v1/exchanges", nil)
		req.Header.Set("Content-Type", "application/json")
		s, err := SignRequest(req, body, pki.Liwan, opts...)
		if err != nil {
			t.Fatal(err)
		}
		if s.Digest != certs.SM3Hex(body) || req.Header.Get(HeaderContentDigest) != ContentDigest(body) {
			t.Errorf("digest %s / %s, want %s / %s", s.Digest, req.Header.Get(HeaderContentDigest), certs.SM3Hex(body), ContentDigest(body))
		}
	}
}
