package delivery_test

import (
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/gateway/store"
)

// TestConnectionsKeptAlive: the default client keeps a connection per
// delivery in flight, so a run of deliveries opens about Concurrency
// connections to the partner, not one per answer beyond the second (the
// default transport keeps 2 idle connections per host).
func TestConnectionsKeptAlive(t *testing.T) {
	e := newEnv(t, true, true)
	liwan := newSim(t, adapters.DivisionLiwan, false)
	e.liwan = liwan
	ln, err := net.Listen("tcp", liwan.addr)
	if err != nil {
		t.Fatal(err)
	}
	var opened atomic.Int64
	srv := &http.Server{Handler: liwan.Partner, ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	const cases, concurrency = 160, 8
	for i := range cases {
		e.queueCase(t, e.nanhai, i+1)
	}
	o := e.options(e.st)
	o.Concurrency = concurrency
	w, _ := run(t, o)
	w.Kick()
	waitFor(t, "all delivered", 60*time.Second, func() bool {
		ds, err := e.st.Deliveries(t.Context(), store.StateDelivered, cases+1)
		return err == nil && len(ds) == cases
	})
	if n := opened.Load(); n > 2*concurrency {
		t.Errorf("%d connections opened for %d deliveries, %d in flight: want at most %d", n, cases, concurrency, 2*concurrency)
	}
	t.Logf("%d connections for %d deliveries", opened.Load(), cases)
}
