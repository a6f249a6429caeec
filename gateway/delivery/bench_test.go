package delivery_test

import (
	"testing"
	"time"

	"github.com/tongban/tongban/gateway/store"
)

// BenchmarkDeliverCases measures end-to-end deliveries: claim from SQLite,
// sign (SM2), POST over loopback to the Liwan simulator (which verifies,
// numbers and signs its ack), verify the ack, and record it with its log
// entry. One op is one case delivered.
func BenchmarkDeliverCases(b *testing.B) {
	if b.N > 9999 {
		b.Skip("the sample case numbers of one day allow 9999 cases")
	}
	e := newEnv(b, true, true)
	var ids []string
	for i := range b.N {
		ids = append(ids, e.queueCase(b, e.nanhai, i+1).ID)
	}
	o := e.options(e.st)
	o.Concurrency = 8
	b.ResetTimer()
	w, stop := run(b, o)
	w.Kick()
	waitFor(b, "all delivered", time.Duration(b.N)*time.Second+10*time.Second, func() bool {
		ds, err := e.st.Deliveries(b.Context(), store.StateDelivered, b.N+1)
		return err == nil && len(ds) == len(ids)
	})
	b.StopTimer()
	stop()
	if n := len(e.liwan.Received()); n != b.N {
		b.Fatalf("partner took in %d, want %d", n, b.N)
	}
}
