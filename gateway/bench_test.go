package gateway_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/gateway"
	"github.com/tongban/tongban/httpsig"
	"github.com/tongban/tongban/sim"
)

// BenchmarkSubmit measures the whole submit path in-process: a partner
// signs a new case (a fresh case number each time), the gateway's handler
// verifies the signature, decodes, decides by policy, translates, appends
// the log entry and the outbox row in one SQLite transaction and answers a
// signed receipt. No delivery worker runs.
func BenchmarkSubmit(b *testing.B) {
	for _, from := range []string{"liwan", "nanhai"} {
		b.Run(from, func(b *testing.B) { benchmarkSubmit(b, from) })
	}
}

func benchmarkSubmit(b *testing.B, from string) {
	dir := b.TempDir()
	copyPKI(b, filepath.Join(dir, "certs"))
	cfg, err := makeConfig(dir, "127.0.0.1:8443", "http://127.0.0.1:1", "http://127.0.0.1:2")
	mustOK(b, err)
	for i := range cfg.Partners {
		cfg.Partners[i].Limits = gateway.LimitsConfig{RatePerS: 1e9, Burst: 1e9, Concurrency: 1 << 10}
	}
	ctx := context.Background()
	srv, err := gateway.NewServer(ctx, cfg, quietLogger())
	mustOK(b, err)
	b.Cleanup(func() { srv.Close() })

	division, signer := adapters.DivisionLiwan, pki.Liwan
	if from == "nanhai" {
		division, signer = adapters.DivisionNanhai, pki.Nanhai
	}
	p, err := sim.New(sim.Options{Division: division, Signer: signer, Trust: pki.TrustStore(), PublicURL: "http://127.0.0.1:1"})
	mustOK(b, err)
	perDay := 9999
	if from == "liwan" {
		perDay = 99999
	}
	// Fresh case numbers: a day's sequence, then the day before.
	today := time.Now().In(time.FixedZone("CST", 8*3600))
	bodies := make([][]byte, b.N)
	for i := range bodies {
		day := today.AddDate(0, 0, -1-i/perDay)
		at := time.Date(day.Year(), day.Month(), day.Day(), 9, 30, 0, 0, day.Location())
		if bodies[i], err = p.SampleCase(1+i%perDay, sim.SampleOptions{At: at}); err != nil {
			b.Fatal(err)
		}
	}
	ct := p.Codec().ContentType()
	url := cfg.PublicURL + "/v1/exchanges"
	b.SetBytes(int64(len(bodies[0])))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		req := httptest.NewRequest(http.MethodPost, url, nil)
		req.Header.Set("Content-Type", ct)
		if _, err := httpsig.SignRequest(req, bodies[i], signer); err != nil {
			b.Fatal(err)
		}
		w := httptest.NewRecorder()
		srv.Handler.ServeHTTP(w, req)
		if w.Code != http.StatusAccepted {
			b.Fatalf("HTTP %d: %s", w.Code, bytes.TrimSpace(w.Body.Bytes()))
		}
	}
}
