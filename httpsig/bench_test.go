package httpsig

import (
	"net/http"
	"testing"
	"time"

	"github.com/tongban/tongban/certs"
)

func BenchmarkSignRequest(b *testing.B) {
	body := make([]byte, 4096)
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest("POST", publicURL+"/v1/exchanges", nil)
		req.Header.Set("Content-Type", "application/xml; charset=GBK")
		if _, err := SignRequest(req, body, pki.Nanhai); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignRequest20KiB signs a delivery-sized body (20 KiB, the load
// test's case size), hashing it, and with the digest given (WithBodyDigest,
// as the delivery worker does with the digest stored with its row).
func BenchmarkSignRequest20KiB(b *testing.B) {
	body := make([]byte, 20<<10)
	sign := func(b *testing.B, opts ...Option) {
		b.ReportAllocs()
		for b.Loop() {
			req, _ := http.NewRequest("POST", publicURL+"/cases", nil)
			req.Header.Set("Content-Type", "application/json")
			if _, err := SignRequest(req, body, pki.Nanhai, opts...); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("hashed", func(b *testing.B) { sign(b) })
	b.Run("digest-given", func(b *testing.B) { sign(b, WithBodyDigest(certs.SM3(body))) })
}

// BenchmarkMiddleware is the whole verifying middleware per request (a
// 4 KiB body): parse, trust-store lookup, nonce, SM3 of the body, base,
// SM2 verify. The requests are signed before the timer starts.
func BenchmarkMiddleware(b *testing.B) {
	body := make([]byte, 4096)
	reqs := make([]*http.Request, b.N)
	now := time.Now()
	for i := range reqs {
		req, _ := http.NewRequest("POST", publicURL+"/v1/exchanges", nil)
		req.Header.Set("Content-Type", "application/xml; charset=GBK")
		if _, err := SignRequest(req, body, pki.Nanhai, WithClock(func() time.Time { return now })); err != nil {
			b.Fatal(err)
		}
		reqs[i] = receivedRequest(req, body)
	}
	v := &Verifier{Trust: pki.TrustStore(), Nonces: NewMemoryNonces(b.N + 1), PublicURL: publicURL, Now: func() time.Time { return now }}
	h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	w := &codeWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.code = 0
		h.ServeHTTP(w, reqs[i])
		if w.code != http.StatusNoContent {
			b.Fatalf("refused: %d", w.code)
		}
	}
}

// BenchmarkVerifySigned is the auditor's offline check of one recorded
// signed message.
func BenchmarkVerifySigned(b *testing.B) {
	req, _ := http.NewRequest("POST", publicURL+"/v1/exchanges", nil)
	req.Header.Set("Content-Type", "application/json")
	s, _ := SignRequest(req, []byte("{}"), pki.Nanhai)
	cert := pki.Nanhai.Certificate()
	b.ReportAllocs()
	for b.Loop() {
		if err := VerifySigned(s, cert); err != nil {
			b.Fatal(err)
		}
	}
}

type codeWriter struct {
	h    http.Header
	code int
}

func (c *codeWriter) Header() http.Header         { return c.h }
func (c *codeWriter) Write(b []byte) (int, error) { return len(b), nil }
func (c *codeWriter) WriteHeader(code int)        { c.code = code }
