package delivery_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/gateway/delivery"
	"github.com/tongban/tongban/gateway/exchangelog"
	"github.com/tongban/tongban/gateway/store"
)

// A partner that is down (connections refused) for a while, then up,
// receives every case exactly once, and either case number finds it.
func TestDownThenUpDeliversEachCaseOnce(t *testing.T) {
	e := newEnv(t, true, false) // Liwan not listening
	var exs []*store.Exchange
	for i := 1; i <= 5; i++ {
		exs = append(exs, e.queueCase(t, e.nanhai, i))
	}
	w, _ := run(t, e.options(e.st))
	w.Kick()
	for _, ex := range exs {
		waitFor(t, "two failed attempts", 5*time.Second, func() bool {
			d := delivery1(t, e.st, ex.ID)
			return d.State == store.StateRetrying && d.Attempts >= 2
		})
	}
	if n := len(e.liwan.Received()); n != 0 {
		t.Fatalf("liwan received %d records while down", n)
	}
	e.liwan.start(t)
	for _, ex := range exs {
		d := waitState(t, e.st, ex.ID, store.StateDelivered, 10*time.Second)
		if d.Attempts < 3 {
			t.Errorf("%s delivered after %d attempts, want ≥ 3", ex.ID, d.Attempts)
		}
	}
	got := e.liwan.Received()
	if len(got) != len(exs) {
		t.Fatalf("liwan took in %d records, want %d", len(got), len(exs))
	}
	noDuplicates(t, e.liwan)
	byKey := map[string]string{}
	for _, r := range got {
		byKey[r.IdempotencyKey] = r.CaseNo
		if r.Kind != "case" || !r.Accepted || !strings.HasPrefix(r.CaseNo, "LW") || len(r.CaseNo) != 15 {
			t.Errorf("received %+v", r)
		}
	}
	ctx := context.Background()
	for _, ex := range exs {
		if e.liwan.Requests(ex.ID) != 1 {
			t.Errorf("%s: %d verified requests, want 1 (it was down before)", ex.ID, e.liwan.Requests(ex.ID))
		}
		stored, err := e.st.GetExchange(ctx, ex.ID)
		if err != nil {
			t.Fatal(err)
		}
		if stored.TargetCaseNo != byKey[ex.ID] || stored.TargetCaseNo == "" {
			t.Errorf("%s: target case %q, partner assigned %q", ex.ID, stored.TargetCaseNo, byKey[ex.ID])
		}
		for _, no := range []string{stored.TargetCaseNo, stored.SourceCaseNo} {
			if f, err := e.st.FindExchange(ctx, no); err != nil || f.ID != ex.ID {
				t.Errorf("FindExchange(%s) = %v, %v", no, f, err)
			}
		}
		es := entriesOf(t, e.st, ex.ID)
		if k := strings.Join(kinds(es), ","); k != "exchange,delivered" {
			t.Fatalf("%s: entries %s, want exchange,delivered (no entry for plain retries)", ex.ID, k)
		}
		de := es[1].(*exchangelog.DeliveredEntry)
		if de.PartnerCase != stored.TargetCaseNo || de.To != adapters.DivisionLiwan || de.Of != ex.LogIndex {
			t.Errorf("delivered entry %+v", de)
		}
		checkAcknowledged(t, stored, de.Delivery, de.Ack, adapters.DivisionLiwan)
	}
}

// A partner that answers 500 twice then 200 gets one case, in one attempt:
// the quick retries are signed anew each time (the partner verified all
// three requests and would refuse a reused nonce as replayed).
func TestTwoServerErrorsThenAck(t *testing.T) {
	e := newEnv(t, true, true)
	e.liwan.FailNext(2, http.StatusInternalServerError)
	ex := e.queueCase(t, e.nanhai, 1)
	run(t, e.options(e.st))
	d := waitState(t, e.st, ex.ID, store.StateDelivered, 5*time.Second)
	if d.Attempts != 1 {
		t.Errorf("attempts %d, want 1 (the 500s are retried within the attempt)", d.Attempts)
	}
	if n := e.liwan.Requests(ex.ID); n != 3 {
		t.Errorf("partner verified %d requests, want 3 (two 500s, one 200)", n)
	}
	if n := len(e.liwan.Received()); n != 1 {
		t.Errorf("partner took in %d records, want 1", n)
	}
	noDuplicates(t, e.liwan)
}

// With no quick retries, each 500 costs a durable attempt, and the case
// still arrives once.
func TestServerErrorsAcrossAttempts(t *testing.T) {
	e := newEnv(t, true, true)
	e.liwan.FailNext(2, http.StatusServiceUnavailable)
	ex := e.queueCase(t, e.nanhai, 1)
	o := e.options(e.st)
	o.QuickRetries = -1
	run(t, o)
	d := waitState(t, e.st, ex.ID, store.StateDelivered, 5*time.Second)
	if d.Attempts != 3 {
		t.Errorf("attempts %d, want 3", d.Attempts)
	}
	if n := len(e.liwan.Received()); n != 1 {
		t.Errorf("partner took in %d records, want 1", n)
	}
}

// An acknowledgement whose signature does not verify is not trusted: the
// delivery is retried; once the partner signs properly, the repeat gets
// the first answer (same case number), and the partner has one case.
func TestBadAckSignatureIsRetried(t *testing.T) {
	e := newEnv(t, true, true)
	e.liwan.BadSignature(true)
	ex := e.queueCase(t, e.nanhai, 1)
	run(t, e.options(e.st))
	var d *store.Delivery
	waitFor(t, "retries after bad acks", 5*time.Second, func() bool {
		d = delivery1(t, e.st, ex.ID)
		return d.Attempts >= 2
	})
	if d.State == store.StateDelivered || d.PartnerCaseNo != "" {
		t.Fatalf("a badly signed ack was trusted: %+v", d)
	}
	if !strings.Contains(d.LastError, "acknowledgement signature") {
		t.Errorf("last error %q", d.LastError)
	}
	stored, _ := e.st.GetExchange(context.Background(), ex.ID)
	if stored.TargetCaseNo != "" {
		t.Errorf("target case number %q stored from an untrusted ack", stored.TargetCaseNo)
	}
	e.liwan.BadSignature(false)
	d = waitState(t, e.st, ex.ID, store.StateDelivered, 5*time.Second)
	got := e.liwan.Received()
	if len(got) != 1 {
		t.Fatalf("partner took in %d records, want 1", len(got))
	}
	if d.PartnerCaseNo != got[0].CaseNo {
		t.Errorf("partner case %q, the partner assigned %q", d.PartnerCaseNo, got[0].CaseNo)
	}
	if n := e.liwan.Requests(ex.ID); n < 3 {
		t.Errorf("%d requests, want ≥ 3", n)
	}
	noDuplicates(t, e.liwan)
}

// An acknowledgement signed by another partner's key (Nanhai's key
// answering for Liwan) is not trusted either.
func TestAckByWrongPartnerIsRetried(t *testing.T) {
	e := newEnv(t, true, true)
	ex := e.queueCase(t, e.nanhai, 1)
	o := e.options(e.st)
	// Send Liwan's deliveries to the Nanhai simulator: it verifies the
	// gateway, takes the record in and signs with Nanhai's key.
	o.Partners[1].Endpoint = e.nanhai.url
	o.MaxAttempts = 2
	run(t, o)
	d := waitState(t, e.st, ex.ID, store.StateDead, 5*time.Second)
	if !strings.Contains(d.LastError, "acknowledgement") {
		t.Errorf("last error %q", d.LastError)
	}
}

// A refusal (accepted: false) is final: one attempt, state refused with
// the reason, visible on the exchange, a refused_by_partner entry, and no
// more requests.
func TestRefusalStopsRetries(t *testing.T) {
	e := newEnv(t, true, true)
	const reason = "材料不全：缺少股东主体资格证明"
	e.liwan.Refuse(reason)
	ex := e.queueCase(t, e.nanhai, 1)
	run(t, e.options(e.st))
	d := waitState(t, e.st, ex.ID, store.StateRefused, 5*time.Second)
	if d.Attempts != 1 || d.Reason != reason {
		t.Errorf("refused after %d attempts with %q", d.Attempts, d.Reason)
	}
	time.Sleep(200 * time.Millisecond) // ten poll intervals
	if n := e.liwan.Requests(ex.ID); n != 1 {
		t.Errorf("%d requests after a refusal, want 1", n)
	}
	stored, err := e.st.GetExchange(context.Background(), ex.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.DeliveryState != store.StateRefused || stored.RefusalReason != reason {
		t.Errorf("exchange shows %q %q", stored.DeliveryState, stored.RefusalReason)
	}
	es := entriesOf(t, e.st, ex.ID)
	if k := strings.Join(kinds(es), ","); k != "exchange,refused_by_partner" {
		t.Fatalf("entries %s", k)
	}
	re := es[1].(*exchangelog.RefusedByPartnerEntry)
	if re.Reason != reason || re.Of != ex.LogIndex {
		t.Errorf("refused entry %+v", re)
	}
	checkAcknowledged(t, stored, re.Delivery, re.Ack, adapters.DivisionLiwan)
}

// After the limit the delivery is dead (with its entry); a re-drive
// queues it again (with its entry) and it is delivered, once.
func TestDeadThenRedrive(t *testing.T) {
	e := newEnv(t, true, true)
	e.liwan.Down(true) // drops every connection
	ex := e.queueCase(t, e.nanhai, 1)
	o := e.options(e.st)
	o.MaxAttempts = 3
	w, _ := run(t, o)
	d := waitState(t, e.st, ex.ID, store.StateDead, 5*time.Second)
	if d.Attempts != 3 {
		t.Errorf("dead after %d attempts, want 3", d.Attempts)
	}
	time.Sleep(100 * time.Millisecond)
	if d := delivery1(t, e.st, ex.ID); d.State != store.StateDead || d.Attempts != 3 {
		t.Fatalf("a dead delivery moved: %+v", d)
	}
	ctx := context.Background()
	if err := w.Redrive(ctx, "no-such-id", pki.Admin.KeyID()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Redrive of an unknown id: %v", err)
	}
	e.liwan.Down(false)
	if err := w.Redrive(ctx, ex.ID, pki.Admin.KeyID()); err != nil {
		t.Fatalf("Redrive: %v", err)
	}
	d = waitState(t, e.st, ex.ID, store.StateDelivered, 5*time.Second)
	if d.Attempts != 1 {
		t.Errorf("delivered after %d attempts since the re-drive, want 1", d.Attempts)
	}
	if err := w.Redrive(ctx, ex.ID, pki.Admin.KeyID()); !errors.Is(err, delivery.ErrNotDead) {
		t.Errorf("Redrive of a delivered delivery: %v, want ErrNotDead", err)
	}
	if n := len(e.liwan.Received()); n != 1 {
		t.Errorf("partner took in %d records, want 1", n)
	}
	es := entriesOf(t, e.st, ex.ID)
	if k := strings.Join(kinds(es), ","); k != "exchange,dead,redriven,delivered" {
		t.Fatalf("entries %s", k)
	}
	dead := es[1].(*exchangelog.DeadEntry)
	if dead.Attempts != 3 || dead.Of != ex.LogIndex || dead.To != adapters.DivisionLiwan || dead.LastError == "" {
		t.Errorf("dead entry %+v", dead)
	}
	rd := es[2].(*exchangelog.RedrivenEntry)
	if rd.By != pki.Admin.KeyID() || rd.Of != ex.LogIndex {
		t.Errorf("redriven entry %+v", rd)
	}
}

// A gateway stopped mid-backoff resumes, after a restart with the store
// reopened, where it was: the attempts count on, and no attempt is made
// before the stored next attempt time.
func TestRestartMidBackoffResumes(t *testing.T) {
	e := newEnv(t, true, true)
	e.liwan.Down(true)
	ex := e.queueCase(t, e.nanhai, 1)
	o := e.options(e.st)
	o.InitialBackoff = 400 * time.Millisecond
	o.MaxBackoff = 400 * time.Millisecond
	o.Jitter = -1
	_, stop := run(t, o)
	d := waitState(t, e.st, ex.ID, store.StateRetrying, 5*time.Second)
	stop()
	if d.Attempts != 1 {
		t.Fatalf("attempts %d before the restart, want 1", d.Attempts)
	}
	next := d.NextAttempt
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}
	e.liwan.Down(false)

	st := openStore(t, e.dbPath)
	o.Store = st
	run(t, o)
	d = waitState(t, st, ex.ID, store.StateDelivered, 5*time.Second)
	if d.Attempts != 2 {
		t.Errorf("delivered at attempt %d, want 2 (resumed, not restarted)", d.Attempts)
	}
	got := e.liwan.Received()
	if len(got) != 1 {
		t.Fatalf("partner took in %d records, want 1", len(got))
	}
	if got[0].At.Before(next) {
		t.Errorf("delivered at %s, before the stored next attempt %s", got[0].At, next)
	}
}

// A gateway that died mid-attempt, after its request reached the partner:
// once the lease expires the delivery is claimed again and re-sent, and
// the partner answers the repeat from its record (one case, same number).
func TestCrashAfterPartnerTookCase(t *testing.T) {
	e := newEnv(t, true, true)
	ex := e.queueCase(t, e.nanhai, 1)
	now := time.Now()
	claimed, err := e.st.ClaimDeliveries(context.Background(), now, now.Add(300*time.Millisecond), 10)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	if code := deliverByHand(t, e.liwan, ex); code != http.StatusOK {
		t.Fatalf("first delivery answered %d", code)
	}
	first := e.liwan.Received()
	run(t, e.options(e.st))
	d := waitState(t, e.st, ex.ID, store.StateDelivered, 5*time.Second)
	if d.Attempts != 1 {
		t.Errorf("attempts %d, want 1", d.Attempts)
	}
	got := e.liwan.Received()
	if len(got) != 1 || e.liwan.Requests(ex.ID) != 2 {
		t.Fatalf("partner took in %d records from %d requests, want 1 from 2", len(got), e.liwan.Requests(ex.ID))
	}
	if d.PartnerCaseNo != first[0].CaseNo {
		t.Errorf("partner case %q, first answer %q", d.PartnerCaseNo, first[0].CaseNo)
	}
}

// One partner that is down does not starve the other: the breaker opens
// for Liwan while Nanhai's deliveries flow, and Liwan's rows wait without
// spending attempts.
func TestBreakerIsolatesDeadPartner(t *testing.T) {
	e := newEnv(t, true, true)
	e.liwan.Down(true)
	var toLiwan, toNanhai []*store.Exchange
	for i := 1; i <= 6; i++ {
		toLiwan = append(toLiwan, e.queueCase(t, e.nanhai, i))
	}
	for i := 1; i <= 6; i++ {
		toNanhai = append(toNanhai, e.queueCase(t, e.liwan, i))
	}
	o := e.options(e.st)
	o.Concurrency = 1
	o.BreakerThreshold = 2
	o.BreakerCooldown = time.Hour
	o.QuickRetries = -1
	w, _ := run(t, o)
	for _, ex := range toNanhai {
		waitState(t, e.st, ex.ID, store.StateDelivered, 5*time.Second)
	}
	if s := w.Breaker(adapters.DivisionLiwan); s != delivery.BreakerOpen {
		t.Errorf("liwan breaker %s, want open", s)
	}
	if s := w.Breaker(adapters.DivisionNanhai); s != delivery.BreakerClosed {
		t.Errorf("nanhai breaker %s, want closed", s)
	}
	total := 0
	for _, ex := range toLiwan {
		d := delivery1(t, e.st, ex.ID)
		if d.State == store.StateDelivered || d.State == store.StateDead {
			t.Errorf("%s is %s", ex.ID, d.State)
		}
		total += d.Attempts
	}
	if total > 2 {
		t.Errorf("liwan deliveries spent %d attempts, want ≤ 2 (the breaker holds the rest)", total)
	}
	noDuplicates(t, e.nanhai)
	if n := len(e.nanhai.Received()); n != len(toNanhai) {
		t.Errorf("nanhai took in %d", n)
	}
}

// A status update is delivered after its case, to /status, with the key
// <exchange id>.1, and acknowledged with the partner's case number.
func TestStatusAfterCase(t *testing.T) {
	e := newEnv(t, true, true)
	ex := e.queueCase(t, e.nanhai, 1)
	run(t, e.options(e.st))
	waitState(t, e.st, ex.ID, store.StateDelivered, 5*time.Second)
	stored, _ := e.st.GetExchange(context.Background(), ex.ID)
	st := e.addStatus(t, stored, adapters.InReview)
	d := waitState(t, e.st, ex.ID+".1", store.StateDelivered, 5*time.Second)
	if d.Kind != "status" || d.Attempts != 1 {
		t.Errorf("status delivery %+v", d)
	}
	got := e.nanhai.Received()
	if len(got) != 1 || got[0].Kind != "status" || got[0].IdempotencyKey != ex.ID+".1" || got[0].CaseNo != stored.SourceCaseNo {
		t.Fatalf("nanhai received %+v", got)
	}
	if got[0].Status == nil || got[0].Status.State != adapters.InReview {
		t.Errorf("status %+v", got[0].Status)
	}
	es := entriesOf(t, e.st, ex.ID)
	if k := strings.Join(kinds(es), ","); k != "exchange,delivered,status,delivered" {
		t.Fatalf("entries %s", k)
	}
	if de := es[3].(*exchangelog.DeliveredEntry); de.PartnerCase != "" || de.Of != st.LogIndex {
		t.Errorf("status delivered entry %+v", de)
	}
}
