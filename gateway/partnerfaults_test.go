package gateway

// Partner faults (issue 10, part 2): a partner that answers late, answers
// garbage, answers 200 with a bad signature, closes the connection in the
// middle of its answer or is down: each attempt fails (timeout, not
// trusted), is retried signed anew, and once the partner behaves the case
// is delivered exactly once — one record at the partner, one delivered
// entry in the log.

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/tongban/tongban/gateway/exchangelog"
	"github.com/tongban/tongban/gateway/store"
	"github.com/tongban/tongban/httpsig"
)

// faultsEnd releases slow answers still waiting when a test ends.
var faultsEnd = make(chan struct{})

// Faults, each for one request.
var (
	// faultSlow answers after the attempt timeout (the 30 s
	// partner, with a 300 ms attempt timeout here), then would take the
	// case: it holds the request until the gateway gives up.
	faultSlow relFault = func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-faultsEnd:
		case <-time.After(30 * time.Second):
		}
	}
	// faultGarbage answers 200 with bytes that are neither signed nor an
	// acknowledgement.
	faultGarbage relFault = func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte("\x00\xffnot an ack{{{"))
	}
	// faultGarbageSigned answers 200 with signature fields that are junk.
	faultGarbageSigned relFault = func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set(httpsig.HeaderSignatureInput, `tb=("@status");created=1;nonce="x";keyid="y";alg="sm2-sm3"`)
		w.Header().Set(httpsig.HeaderSignature, "tb=:AAAA:")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte(`{"accepted": true, "caseId": "LW2026112700001"}`))
	}
	// faultCut starts a 200 answer announcing more bytes than it sends,
	// then closes the connection.
	faultCut relFault = func(w http.ResponseWriter, _ *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{\"accepted\": tr")
		buf.Flush()
		conn.Close()
	}
	// faultDrop closes the connection without any answer (a crashed
	// partner).
	faultDrop relFault = func(w http.ResponseWriter, _ *http.Request) {
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			conn.Close()
		}
	}
)

func TestPartnerFaults(t *testing.T) {
	e := newRelEnv(t, func(_ testing.TB, e *relEnv) {
		e.cfg.Delivery.Timeout = 300 * time.Millisecond
		e.cfg.Delivery.Lease = 2 * time.Second
		e.cfg.Delivery.InitialBackoff = 20 * time.Millisecond
		e.cfg.Delivery.MaxBackoff = 100 * time.Millisecond
	})
	t.Cleanup(func() { close(faultsEnd) }) // before the simulators close
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		faults []relFault
	}{
		{"slow (answers after the attempt timeout)", []relFault{faultSlow, faultSlow}},
		{"garbage answer", []relFault{faultGarbage}},
		{"garbage signature fields", []relFault{faultGarbageSigned}},
		{"connection closed mid-answer", []relFault{faultCut, faultCut}},
		{"down (connection dropped)", []relFault{faultDrop, faultDrop, faultDrop}},
		{"200 with a bad signature", nil},
		{"all of them in a row", []relFault{faultSlow, faultGarbage, faultCut, faultDrop, faultGarbageSigned}},
	} {
		t.Run(c.name, func(t *testing.T) {
			to := e.liwan
			if c.faults == nil {
				to.BadSignature(true)
				time.AfterFunc(500*time.Millisecond, func() { to.BadSignature(false) })
			}
			to.failNext(c.faults...)
			before := len(to.Received())
			resp, err := e.nanhai.SendCase(ctx, e.url, e.nanhaiCase(t))
			if err != nil || resp.Status != http.StatusAccepted {
				t.Fatalf("case: %v %+v", err, resp)
			}
			id := resp.Receipt.ExchangeID
			var ex *store.Exchange
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				if ex, err = e.srv.Store.GetExchange(ctx, id); err != nil {
					t.Fatal(err)
				}
				if ex.DeliveryState == store.StateDelivered {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("not delivered: %s (%s)", ex.DeliveryState, ex.DeliveryDetail)
				}
			}
			d, err := e.srv.Store.GetDelivery(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			// Every fault met a request (quick retries inside one durable
			// attempt count once in Attempts).
			to.mu.Lock()
			left := len(to.faults)
			to.mu.Unlock()
			if left != 0 || d.Attempts < 1 {
				t.Errorf("%d faults never met a request; %d attempts", left, d.Attempts)
			}
			if got := len(to.Received()) - before; got != 1 {
				t.Errorf("the partner took %d records, want 1", got)
			}
			if dups := to.Duplicates(); len(dups) > 0 {
				t.Errorf("duplicates at the partner: %v", dups)
			}
			es, err := e.srv.Store.EntriesOfExchange(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			delivered := 0
			for _, se := range es {
				if se.Kind == exchangelog.KindDelivered {
					delivered++
					var de struct {
						PartnerCase string `json:"partner_case"`
					}
					if err := json.Unmarshal(se.Bytes, &de); err != nil || de.PartnerCase != ex.TargetCaseNo {
						t.Errorf("delivered entry names %q, exchange %q", de.PartnerCase, ex.TargetCaseNo)
					}
				}
			}
			if delivered != 1 {
				t.Errorf("%d delivered entries, want 1", delivered)
			}
		})
	}
}
