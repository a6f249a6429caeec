package policies

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSwitchUnderLoad activates two engines alternately while decisions run
// concurrently: every decision must be the one of the engine its request
// loaded (run with -race).
func TestSwitchUnderLoad(t *testing.T) {
	a := pilot(t)
	b, err := Compile(context.Background(), pilotWith(t, map[string]string{
		CatalogPath: catalogWith(t, `"cross_district": true,
      "applicant_kinds": ["ENTERPRISE"],
      "modes": ["ONLINE", "REMOTE_RECEIPT"],
      "directions": [["440605", "440103"], ["440103", "440605"]],
      "required_materials": {"M001": "公司登记(备案)申请书", "M002"`, `"cross_district": false,
      "applicant_kinds": ["ENTERPRISE"],
      "modes": ["ONLINE", "REMOTE_RECEIPT"],
      "directions": [["440605", "440103"], ["440103", "440605"]],
      "required_materials": {"M001": "公司登记(备案)申请书", "M002"`),
	}))
	if err != nil {
		t.Fatal(err)
	}
	if a.Revision() == b.Revision() {
		t.Fatal("the two engines have one revision")
	}
	in := Input{From: nanhai, To: liwan, BasicCode: "000105001000", ApplicantKind: "ENTERPRISE", Channel: "COUNTER",
		Materials: []string{"M001", "M002", "M003", "M004"}, Time: at("2026-11-27T09:45:00+08:00")}

	s := NewSwitch(a)
	if s.Load() != a {
		t.Fatal("NewSwitch did not activate its engine")
	}
	var stop atomic.Bool
	var allowed, denied atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				e := s.Load()
				d, err := e.Decide(context.Background(), in)
				if err != nil {
					t.Error(err)
					return
				}
				if d.Allow != (e == a) {
					t.Errorf("engine %s decided allow=%v", e.Revision(), d.Allow)
					return
				}
				if d.Allow {
					allowed.Add(1)
				} else {
					denied.Add(1)
				}
			}
		})
	}
	next, prev := b, a
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < 200 || allowed.Load() < 20 || denied.Load() < 20; i++ {
		if time.Now().After(deadline) {
			break
		}
		if got := s.Activate(next); got != prev {
			t.Fatalf("Activate returned %p, want the previous engine %p", got, prev)
		}
		next, prev = prev, next
		time.Sleep(100 * time.Microsecond)
	}
	stop.Store(true)
	wg.Wait()
	if allowed.Load() == 0 || denied.Load() == 0 {
		t.Errorf("allowed %d, denied %d: both engines should have decided", allowed.Load(), denied.Load())
	}
}
