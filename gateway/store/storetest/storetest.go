// Package storetest is the conformance suite every [store.Store] backend
// must pass. A backend's test calls [Run] with a function that creates a
// fresh, empty database and returns an [Opener] for it:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) storetest.Opener {
//			path := filepath.Join(t.TempDir(), "tongban.db")
//			return func(t *testing.T) store.Store {
//				s, err := store.OpenSQLite(context.Background(), path)
//				if err != nil {
//					t.Fatal(err)
//				}
//				return s
//			}
//		})
//	}
//
// Each call of an Opener opens one more handle on the same database: the
// suite uses several handles to play several replicas, and closes and
// reopens a handle to check that what was acknowledged is still there.
package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tongban/tongban/gateway/store"
)

// Opener opens a new handle on one database. The suite closes what it opens.
type Opener func(t *testing.T) store.Store

// Run runs the whole suite; newDB must return an Opener on a fresh, empty
// database each time it is called.
func Run(t *testing.T, newDB func(t *testing.T) Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"CreateExchange", testCreateExchange},
		{"DuplicateExchange", testDuplicateExchange},
		{"ConcurrentDuplicateExchange", testConcurrentDuplicateExchange},
		{"ReceiptErrorWritesNothing", testReceiptError},
		{"FindExchange", testFindExchange},
		{"ExchangeDetails", testExchangeDetails},
		{"ExchangeDetailsSnapshot", testExchangeDetailsSnapshot},
		{"Statuses", testStatuses},
		{"TerminalStatus", testTerminalStatus},
		{"ConcurrentStatuses", testConcurrentStatuses},
		{"GaplessLog", testGaplessLog},
		{"ConcurrentFailuresIsolated", testConcurrentFailures},
		{"LogRanges", testLogRanges},
		{"DeliveryOrdering", testDeliveryOrdering},
		{"DeliveryLease", testDeliveryLease},
		{"DeliveryFinish", testDeliveryFinish},
		{"DeadAndRedrive", testDeadAndRedrive},
		{"DeliveryListings", testDeliveryListings},
		{"ConcurrentClaimers", testConcurrentClaimers},
		{"ClaimPerPartner", testClaimPerPartner},
		{"ConcurrentClaimersPerPartner", testConcurrentClaimersPerPartner},
		{"PayloadSM3", testPayloadSM3},
		{"LargeBodies", testLargeBodies},
		{"Nonces", testNonces},
		{"ConcurrentNonces", testConcurrentNonces},
		{"EntryNonce", testEntryNonce},
		{"Drafts", testDrafts},
		{"Activations", testActivations},
		{"RecentDecisions", testRecentDecisions},
		{"Checkpoints", testCheckpoints},
		{"Durability", testDurability},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			open := newDB(t)
			tc.fn(t, open)
		})
	}
}

// handle opens a handle that is closed when the test ends.
func handle(t *testing.T, open Opener) store.Store {
	t.Helper()
	s := open(t)
	t.Cleanup(func() { s.Close() })
	return s
}

// ---- fixtures ----

var ctx = context.Background()

const (
	nanhai = "440605"
	liwan  = "440103"
)

// entry builds a log entry; the leaf hash stands in for SM3 (the store
// stores it as given).
func entry(kind, exchange string, extra map[string]any) store.LogAppend {
	m := map[string]any{"v": 1, "kind": kind, "time": "2026-11-02T10:00:00+08:00"}
	if exchange != "" {
		m["exchange"] = exchange
	}
	for k, v := range extra {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	_, decision := extra["policy_input"]
	return store.LogAppend{Kind: kind, Exchange: exchange, Time: time.Date(2026, 11, 2, 10, 0, 0, 123456789, time.FixedZone("CST", 8*3600)), Bytes: b, LeafHash: leaf(b),
		HasDecision: decision && (kind == "exchange" || kind == "denied")}
}

func leaf(b []byte) [32]byte { return sha256.Sum256(append([]byte{0}, b...)) }

var seqMu sync.Mutex
var seqN int

func uniq(prefix string) string {
	seqMu.Lock()
	defer seqMu.Unlock()
	seqN++
	return fmt.Sprintf("%s%06d", prefix, seqN)
}

func newExchange(from, caseNo string) *store.Exchange {
	to := liwan
	if from == liwan {
		to = nanhai
	}
	id := uniq("01JDEX")
	return &store.Exchange{
		ID: id, From: from, To: to, SourceCaseNo: caseNo,
		Item: "11440605MB2C93714N", Mode: "REMOTE_RECEIPT", Revision: "ab12",
		RequestDigest: "d1" + id, ContentType: "application/xml; charset=GBK",
		Request:     []byte("<CASE>" + caseNo + "</CASE>"),
		Translated:  []byte(`{"caseId":"` + caseNo + `"}`),
		PolicyInput: json.RawMessage(`{"item":"11440605MB2C93714N"}`),
		Decision:    json.RawMessage(`{"allow":true,"mode":"REMOTE_RECEIPT"}`),
		CreatedAt:   time.Date(2026, 11, 2, 2, 0, 0, 987654321, time.UTC),
	}
}

func receiptFor(id string) func(store.LogPosition) ([]byte, error) {
	return func(p store.LogPosition) ([]byte, error) {
		return []byte(fmt.Sprintf(`{"exchangeId":%q,"logIndex":%d,"leafHash":"%x"}`, id, p.Index, p.LeafHash)), nil
	}
}

func create(t *testing.T, s store.Store, from, caseNo string) *store.Exchange {
	t.Helper()
	ex := newExchange(from, caseNo)
	got, err := s.CreateExchange(ctx, ex, entry("exchange", ex.ID, map[string]any{"policy_input": map[string]any{}}), receiptFor(ex.ID))
	if err != nil {
		t.Fatalf("CreateExchange: %v", err)
	}
	return got
}

func newStatus(ex *store.Exchange, from, state, digest string) *store.StatusUpdate {
	to := ex.To
	if from == ex.To {
		to = ex.From
	}
	return &store.StatusUpdate{
		ExchangeID: ex.ID, From: from, To: to, State: state,
		At:            time.Date(2026, 11, 3, 9, 30, 0, 0, time.UTC),
		RequestDigest: digest, Request: []byte("req " + digest), Translated: []byte("tr " + digest),
	}
}

func addStatus(t *testing.T, s store.Store, st *store.StatusUpdate, terminal func(string) bool) (*store.StatusUpdate, error) {
	t.Helper()
	return s.AddStatus(ctx, st, terminal, entry("status", st.ExchangeID, nil), func(p store.LogPosition) ([]byte, error) {
		return []byte(fmt.Sprintf("status receipt %s %d", st.RequestDigest, p.Index)), nil
	})
}

func isTerminal(state string) bool {
	return state == "COMPLETED" || state == "WITHDRAWN" || state == "REJECTED"
}

func logSize(t *testing.T, s store.Store) uint64 {
	t.Helper()
	n, err := s.LogSize(ctx)
	if err != nil {
		t.Fatalf("LogSize: %v", err)
	}
	return n
}

func mustDelivery(t *testing.T, s store.Store, id string) *store.Delivery {
	t.Helper()
	d, err := s.GetDelivery(ctx, id)
	if err != nil {
		t.Fatalf("GetDelivery(%s): %v", id, err)
	}
	return d
}

func ids(ds []store.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func sameExchange(t *testing.T, what string, got, want *store.Exchange) {
	t.Helper()
	check := func(field string, g, w any) {
		t.Helper()
		if fmt.Sprint(g) != fmt.Sprint(w) {
			t.Errorf("%s: %s = %v, want %v", what, field, g, w)
		}
	}
	check("ID", got.ID, want.ID)
	check("From", got.From, want.From)
	check("To", got.To, want.To)
	check("SourceCaseNo", got.SourceCaseNo, want.SourceCaseNo)
	check("TargetCaseNo", got.TargetCaseNo, want.TargetCaseNo)
	check("Item", got.Item, want.Item)
	check("Mode", got.Mode, want.Mode)
	check("Revision", got.Revision, want.Revision)
	check("RequestDigest", got.RequestDigest, want.RequestDigest)
	check("ContentType", got.ContentType, want.ContentType)
	check("Request", string(got.Request), string(want.Request))
	check("Translated", string(got.Translated), string(want.Translated))
	check("PolicyInput", string(got.PolicyInput), string(want.PolicyInput))
	check("Decision", string(got.Decision), string(want.Decision))
	check("Receipt", string(got.Receipt), string(want.Receipt))
	check("LogIndex", got.LogIndex, want.LogIndex)
	check("LeafHash", got.LeafHash, want.LeafHash)
	check("DeliveryState", got.DeliveryState, want.DeliveryState)
	check("StatusCount", got.StatusCount, want.StatusCount)
	check("LastState", got.LastState, want.LastState)
	if !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("%s: CreatedAt = %v, want %v", what, got.CreatedAt, want.CreatedAt)
	}
}

// ---- exchanges ----

func testCreateExchange(t *testing.T, open Opener) {
	s := handle(t, open)
	ex := newExchange(nanhai, "NH2026110200001")
	e := entry("exchange", ex.ID, map[string]any{"policy_input": map[string]any{"a": 1}})
	var pos store.LogPosition
	calls := 0
	got, err := s.CreateExchange(ctx, ex, e, func(p store.LogPosition) ([]byte, error) {
		calls++
		pos = p
		return []byte("receipt-1"), nil
	})
	if err != nil {
		t.Fatalf("CreateExchange: %v", err)
	}
	if calls != 1 || pos.Index != 0 || pos.LeafHash != e.LeafHash {
		t.Fatalf("receipt called %d times with %+v, want once with index 0 and the entry's leaf hash", calls, pos)
	}
	if got.LogIndex != 0 || got.LeafHash != e.LeafHash || string(got.Receipt) != "receipt-1" || got.DeliveryState != store.StateQueued {
		t.Fatalf("returned exchange: index %d receipt %q state %q", got.LogIndex, got.Receipt, got.DeliveryState)
	}
	if ex.LogIndex != 0 || string(ex.Receipt) != "receipt-1" {
		t.Errorf("the position and receipt were not written into ex")
	}
	stored, err := s.GetExchange(ctx, ex.ID)
	if err != nil {
		t.Fatalf("GetExchange: %v", err)
	}
	sameExchange(t, "GetExchange", stored, got)
	if stored.DeliveredAt != nil || stored.TargetCaseNo != "" || stored.RefusalReason != "" || stored.DeliveryDetail != "" {
		t.Errorf("fresh exchange has delivery details: %+v", stored)
	}
	if n := logSize(t, s); n != 1 {
		t.Fatalf("LogSize = %d, want 1", n)
	}
	es, err := s.Entries(ctx, 0, 1)
	if err != nil || len(es) != 1 {
		t.Fatalf("Entries(0,1) = %v, %v", es, err)
	}
	if string(es[0].Bytes) != string(e.Bytes) || es[0].Kind != "exchange" || es[0].Exchange != ex.ID || es[0].LeafHash != e.LeafHash || !es[0].Time.Equal(e.Time) {
		t.Errorf("stored entry = %+v, want %+v", es[0], e)
	}
	d := mustDelivery(t, s, ex.ID)
	if d.ExchangeID != ex.ID || d.Seq != 0 || d.Kind != "case" || d.To != liwan || d.State != store.StateQueued ||
		string(d.Payload) != string(ex.Translated) || d.EventIndex != 0 || d.Attempts != 0 {
		t.Errorf("case delivery = %+v", d)
	}
	if _, err := s.GetExchange(ctx, "no-such-id"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetExchange(unknown) error = %v, want ErrNotFound", err)
	}
	if _, err := s.GetDelivery(ctx, "no-such-id"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetDelivery(unknown) error = %v, want ErrNotFound", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func testDuplicateExchange(t *testing.T, open Opener) {
	s := handle(t, open)
	first := create(t, s, nanhai, "NH-DUP-1")
	again := newExchange(nanhai, "NH-DUP-1")
	again.Request = []byte("different content")
	called := false
	got, err := s.CreateExchange(ctx, again, entry("exchange", again.ID, nil), func(store.LogPosition) ([]byte, error) {
		called = true
		return []byte("x"), nil
	})
	if !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("duplicate CreateExchange error = %v, want ErrDuplicate", err)
	}
	if got == nil {
		t.Fatal("duplicate CreateExchange returned no exchange")
	}
	sameExchange(t, "duplicate", got, first)
	if called {
		t.Error("receipt was called for a duplicate")
	}
	if n := logSize(t, s); n != 1 {
		t.Errorf("LogSize after duplicate = %d, want 1", n)
	}
	if _, err := s.GetExchange(ctx, again.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the duplicate's id was stored (err %v)", err)
	}
	if ds, _ := s.Deliveries(ctx, "", 0); len(ds) != 1 {
		t.Errorf("%d deliveries after a duplicate, want 1", len(ds))
	}
	// The same number from the other district is another case.
	create(t, s, liwan, "NH-DUP-1")
	if n := logSize(t, s); n != 2 {
		t.Errorf("LogSize = %d, want 2", n)
	}
}

func testConcurrentDuplicateExchange(t *testing.T, open Opener) {
	handles := []store.Store{handle(t, open), handle(t, open)}
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	got := make([]*store.Exchange, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ex := newExchange(liwan, "LW-RACE")
			got[i], errs[i] = handles[i%2].CreateExchange(ctx, ex, entry("exchange", ex.ID, nil), receiptFor(ex.ID))
		}(i)
	}
	wg.Wait()
	winner := ""
	for i := 0; i < n; i++ {
		if errs[i] == nil {
			if winner != "" {
				t.Fatalf("two concurrent creations of one case succeeded: %s and %s", winner, got[i].ID)
			}
			winner = got[i].ID
		} else if !errors.Is(errs[i], store.ErrDuplicate) {
			t.Fatalf("concurrent duplicate: %v", errs[i])
		}
	}
	if winner == "" {
		t.Fatal("no creation succeeded")
	}
	for i := 0; i < n; i++ {
		if got[i] == nil || got[i].ID != winner {
			t.Errorf("caller %d got %v, want the winner %s", i, got[i], winner)
		}
	}
	if n := logSize(t, handles[0]); n != 1 {
		t.Errorf("LogSize = %d, want 1", n)
	}
}

func testReceiptError(t *testing.T, open Opener) {
	s := handle(t, open)
	ex := newExchange(nanhai, "NH-RCPT-ERR")
	boom := errors.New("signer down")
	_, err := s.CreateExchange(ctx, ex, entry("exchange", ex.ID, nil), func(store.LogPosition) ([]byte, error) { return nil, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("error = %v, want the receipt's error", err)
	}
	if n := logSize(t, s); n != 0 {
		t.Errorf("LogSize = %d after a failed creation, want 0", n)
	}
	if _, err := s.GetExchange(ctx, ex.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("failed exchange stored (err %v)", err)
	}
	if ds, _ := s.Deliveries(ctx, "", 0); len(ds) != 0 {
		t.Errorf("failed exchange queued %d deliveries", len(ds))
	}
	// The index is not burnt.
	got := create(t, s, nanhai, "NH-RCPT-ERR")
	if got.LogIndex != 0 {
		t.Errorf("next exchange got index %d, want 0", got.LogIndex)
	}
	ex2 := create(t, s, nanhai, "NH-RCPT-ERR-2")
	_, err = s.AddStatus(ctx, newStatus(ex2, liwan, "ACCEPTED", "s1"), isTerminal, entry("status", ex2.ID, nil),
		func(store.LogPosition) ([]byte, error) { return nil, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("AddStatus error = %v, want the receipt's error", err)
	}
	if sts, _ := s.Statuses(ctx, ex2.ID); len(sts) != 0 {
		t.Errorf("failed status stored")
	}
	if n := logSize(t, s); n != 2 {
		t.Errorf("LogSize = %d, want 2", n)
	}
}

// testExchangeDetails: by id and by either case number, the same exchange,
// statuses and deliveries as the separate reads; unknown is ErrNotFound.
func testExchangeDetails(t *testing.T, open Opener) {
	s := handle(t, open)
	ex := create(t, s, nanhai, uniq("NH-DET-"))
	claimAll(t, s, time.Now())
	finish(t, s, ex.ID, store.DeliveryOutcome{State: store.StateDelivered, Attempts: 1, PartnerCaseNo: "LW-DET-ACK"})
	if _, err := addStatus(t, s, newStatus(ex, liwan, "ACCEPTED", "det1"), isTerminal); err != nil {
		t.Fatal(err)
	}
	wantEx, _ := s.GetExchange(ctx, ex.ID)
	wantSts, _ := s.Statuses(ctx, ex.ID)
	wantDls, _ := s.DeliveriesOf(ctx, ex.ID)
	for _, key := range [][2]string{{ex.ID, ""}, {"", ex.SourceCaseNo}, {"", "LW-DET-ACK"}} {
		gotEx, gotSts, gotDls, err := s.ExchangeDetails(ctx, key[0], key[1])
		if err != nil {
			t.Fatalf("ExchangeDetails(%q, %q): %v", key[0], key[1], err)
		}
		if !reflect.DeepEqual(gotEx, wantEx) || !reflect.DeepEqual(gotSts, wantSts) || !reflect.DeepEqual(gotDls, wantDls) {
			t.Errorf("ExchangeDetails(%q, %q) = %+v, %d statuses, %v; want %+v, %d, %v",
				key[0], key[1], gotEx, len(gotSts), ids(gotDls), wantEx, len(wantSts), ids(wantDls))
		}
	}
	if len(wantSts) != 1 || len(wantDls) != 2 || wantEx.TargetCaseNo != "LW-DET-ACK" {
		t.Fatalf("fixture: %d statuses, deliveries %v, target %q", len(wantSts), ids(wantDls), wantEx.TargetCaseNo)
	}
	for _, key := range [][2]string{{"nope", ""}, {"", "NH-NONE"}, {"", ""}} {
		if _, _, _, err := s.ExchangeDetails(ctx, key[0], key[1]); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ExchangeDetails(%q, %q): %v, want ErrNotFound", key[0], key[1], err)
		}
	}
}

// testExchangeDetailsSnapshot: while deliveries are finished as delivered
// (each storing the partner's number on its exchange), a reader never sees
// a delivered case delivery without that number: the reads share one
// snapshot.
func testExchangeDetailsSnapshot(t *testing.T, open Opener) {
	s := handle(t, open)
	const n = 40
	exs := make([]*store.Exchange, n)
	for i := range exs {
		exs[i] = create(t, s, nanhai, uniq("NH-SNAP-"))
	}
	claimAll(t, s, time.Now())
	done := make(chan struct{})
	var wg sync.WaitGroup
	var torn atomic.Int64
	for r := 0; r < 4; r++ {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				ex, _, dls, err := s.ExchangeDetails(ctx, exs[i%n].ID, "")
				if err != nil {
					t.Error(err)
					return
				}
				for _, d := range dls {
					if d.Seq == 0 && d.State == store.StateDelivered && ex.TargetCaseNo == "" {
						torn.Add(1)
					}
				}
			}
		})
	}
	for i, ex := range exs {
		finish(t, s, ex.ID, store.DeliveryOutcome{State: store.StateDelivered, Attempts: 1, PartnerCaseNo: fmt.Sprintf("LW-SNAP-%d", i)})
	}
	close(done)
	wg.Wait()
	if c := torn.Load(); c > 0 {
		t.Errorf("%d reads saw a delivered case without the partner's case number", c)
	}
}

func testFindExchange(t *testing.T, open Opener) {
	s := handle(t, open)
	ex := create(t, s, nanhai, "NH-FIND-1")
	other := create(t, s, liwan, "LW-FIND-9")
	for _, tc := range []struct {
		name     string
		division string
		caseNo   string
		want     string
	}{
		{"sender by source", nanhai, "NH-FIND-1", ex.ID},
		{"owner by source", liwan, "NH-FIND-1", ""},
		{"other sender", liwan, "LW-FIND-9", other.ID},
		{"unknown", nanhai, "NH-NONE", ""},
		{"empty", liwan, "", ""},
	} {
		got, err := s.FindExchangeOf(ctx, tc.division, tc.caseNo)
		if tc.want == "" {
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: FindExchangeOf = %v, %v; want ErrNotFound", tc.name, got, err)
			}
			continue
		}
		if err != nil || got.ID != tc.want {
			t.Errorf("%s: FindExchangeOf = %v, %v; want %s", tc.name, got, err, tc.want)
		}
	}
	if got, err := s.FindExchange(ctx, "NH-FIND-1"); err != nil || got.ID != ex.ID {
		t.Errorf("FindExchange(source) = %v, %v", got, err)
	}
	if _, err := s.FindExchange(ctx, ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("FindExchange(\"\") error = %v, want ErrNotFound", err)
	}
	// The owner's number arrives with its acknowledgement.
	claimAll(t, s, time.Now())
	if err := s.FinishDelivery(ctx, ex.ID, store.DeliveryOutcome{State: store.StateDelivered, Attempts: 1, PartnerCaseNo: "LW-ACK-77"}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.FindExchange(ctx, "LW-ACK-77"); err != nil || got.ID != ex.ID {
		t.Errorf("FindExchange(target) = %v, %v", got, err)
	}
	if got, err := s.FindExchangeOf(ctx, liwan, "LW-ACK-77"); err != nil || got.ID != ex.ID || got.TargetCaseNo != "LW-ACK-77" {
		t.Errorf("FindExchangeOf(owner, target) = %v, %v", got, err)
	}
	if _, err := s.FindExchangeOf(ctx, nanhai, "LW-ACK-77"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("FindExchangeOf(sender, target) error = %v, want ErrNotFound", err)
	}
}

// ---- statuses ----

func testStatuses(t *testing.T, open Opener) {
	s := handle(t, open)
	ex := create(t, s, nanhai, "NH-ST-1")
	var added []*store.StatusUpdate
	for i, state := range []string{"ACCEPTED", "IN_REVIEW", "SUPPLEMENT_REQUIRED"} {
		st := newStatus(ex, liwan, state, fmt.Sprintf("digest-%d", i))
		got, err := addStatus(t, s, st, isTerminal)
		if err != nil {
			t.Fatalf("AddStatus %s: %v", state, err)
		}
		if got.Seq != i+1 || st.Seq != i+1 {
			t.Fatalf("status %d got Seq %d", i+1, got.Seq)
		}
		if got.LogIndex != uint64(i+1) || string(got.Receipt) != fmt.Sprintf("status receipt digest-%d %d", i, i+1) {
			t.Fatalf("status %d: index %d receipt %q", i+1, got.LogIndex, got.Receipt)
		}
		added = append(added, got)
	}
	sts, err := s.Statuses(ctx, ex.ID)
	if err != nil || len(sts) != 3 {
		t.Fatalf("Statuses = %d, %v", len(sts), err)
	}
	for i, st := range sts {
		a := added[i]
		if st.Seq != i+1 || st.State != a.State || st.From != liwan || st.To != nanhai || st.RequestDigest != a.RequestDigest ||
			string(st.Request) != string(a.Request) || string(st.Translated) != string(a.Translated) ||
			string(st.Receipt) != string(a.Receipt) || st.LogIndex != a.LogIndex || st.LeafHash != a.LeafHash ||
			!st.At.Equal(a.At) || st.CreatedAt.IsZero() {
			t.Errorf("status %d = %+v, want %+v", i+1, st, a)
		}
	}
	got, _ := s.GetExchange(ctx, ex.ID)
	if got.StatusCount != 3 || got.LastState != "SUPPLEMENT_REQUIRED" {
		t.Errorf("exchange StatusCount %d LastState %q", got.StatusCount, got.LastState)
	}
	d := mustDelivery(t, s, ex.ID+".2")
	if d.Kind != "status" || d.Seq != 2 || d.To != nanhai || d.State != store.StateQueued || string(d.Payload) != "tr digest-1" || d.EventIndex != 2 {
		t.Errorf("status delivery = %+v", d)
	}
	// A resent status is the same status.
	size := logSize(t, s)
	dup, err := addStatus(t, s, newStatus(ex, liwan, "IN_REVIEW", "digest-1"), isTerminal)
	if !errors.Is(err, store.ErrDuplicate) || dup == nil || dup.Seq != 2 || string(dup.Receipt) != string(added[1].Receipt) {
		t.Fatalf("resent status = %+v, %v; want seq 2 and ErrDuplicate", dup, err)
	}
	if logSize(t, s) != size {
		t.Error("a resent status was logged")
	}
	// The same body from the other district is another status.
	other, err := addStatus(t, s, newStatus(ex, nanhai, "WITHDRAWAL_PENDING", "digest-1"), isTerminal)
	if err != nil || other.Seq != 4 {
		t.Fatalf("same digest from the other sender = %+v, %v", other, err)
	}
	if _, err := addStatus(t, s, newStatus(&store.Exchange{ID: "nope", From: nanhai, To: liwan}, liwan, "ACCEPTED", "z"), isTerminal); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("status of an unknown exchange: %v, want ErrNotFound", err)
	}
	if sts, err := s.Statuses(ctx, "nope"); err != nil || len(sts) != 0 {
		t.Errorf("Statuses(unknown) = %v, %v", sts, err)
	}
	es, err := s.EntriesOfExchange(ctx, ex.ID)
	if err != nil || len(es) != 5 {
		t.Fatalf("EntriesOfExchange = %d, %v", len(es), err)
	}
	for i, e := range es {
		if i > 0 && es[i-1].Index >= e.Index {
			t.Errorf("EntriesOfExchange out of order")
		}
		if e.Exchange != ex.ID {
			t.Errorf("entry %d belongs to %q", e.Index, e.Exchange)
		}
	}
}

func testTerminalStatus(t *testing.T, open Opener) {
	s := handle(t, open)
	ex := create(t, s, liwan, "LW-TERM-1")
	if _, err := addStatus(t, s, newStatus(ex, nanhai, "ACCEPTED", "a"), isTerminal); err != nil {
		t.Fatal(err)
	}
	done, err := addStatus(t, s, newStatus(ex, nanhai, "COMPLETED", "b"), isTerminal)
	if err != nil {
		t.Fatal(err)
	}
	size := logSize(t, s)
	if _, err := addStatus(t, s, newStatus(ex, nanhai, "IN_REVIEW", "c"), isTerminal); !errors.Is(err, store.ErrInvalidTransition) {
		t.Fatalf("status after terminal: %v, want ErrInvalidTransition", err)
	}
	if logSize(t, s) != size {
		t.Error("a refused transition was logged")
	}
	if sts, _ := s.Statuses(ctx, ex.ID); len(sts) != 2 {
		t.Errorf("%d statuses, want 2", len(sts))
	}
	if _, err := s.GetDelivery(ctx, ex.ID+".3"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused transition was queued (err %v)", err)
	}
	// Resending the terminal status is still answered with it.
	dup, err := addStatus(t, s, newStatus(ex, nanhai, "COMPLETED", "b"), isTerminal)
	if !errors.Is(err, store.ErrDuplicate) || dup.Seq != done.Seq {
		t.Errorf("resent terminal status = %+v, %v", dup, err)
	}
	// A nil predicate means nothing is terminal.
	if _, err := addStatus(t, s, newStatus(ex, nanhai, "IN_REVIEW", "d"), nil); err != nil {
		t.Errorf("nil terminal predicate: %v", err)
	}
}

func testConcurrentStatuses(t *testing.T, open Opener) {
	handles := []store.Store{handle(t, open), handle(t, open)}
	ex := create(t, handles[0], nanhai, "NH-CST-1")
	const n = 10
	var wg sync.WaitGroup
	seqs := make([]int, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			st, err := addStatus(t, handles[i%2], newStatus(ex, liwan, "IN_REVIEW", fmt.Sprintf("c%d", i)), isTerminal)
			if err != nil {
				t.Errorf("AddStatus: %v", err)
				return
			}
			seqs[i] = st.Seq
		}(i)
	}
	wg.Wait()
	sort.Ints(seqs)
	for i, q := range seqs {
		if q != i+1 {
			t.Fatalf("concurrent seqs %v, want 1..%d", seqs, n)
		}
	}
	// Concurrent terminal states: one wins.
	ok := 0
	var mu sync.Mutex
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := addStatus(t, handles[i%2], newStatus(ex, liwan, "COMPLETED", fmt.Sprintf("t%d", i)), isTerminal)
			switch {
			case err == nil:
				mu.Lock()
				ok++
				mu.Unlock()
			case !errors.Is(err, store.ErrInvalidTransition):
				t.Errorf("AddStatus: %v", err)
			}
		}(i)
	}
	wg.Wait()
	if ok != 1 {
		t.Errorf("%d concurrent terminal statuses accepted, want 1", ok)
	}
	if sts, _ := handles[0].Statuses(ctx, ex.ID); len(sts) != n+1 {
		t.Errorf("%d statuses, want %d", len(sts), n+1)
	}
}

// ---- log ----

func testGaplessLog(t *testing.T, open Opener) {
	handles := []store.Store{handle(t, open), handle(t, open)}
	base := create(t, handles[0], nanhai, "NH-LOG-BASE")
	const workers, each = 6, 8
	var mu sync.Mutex
	appended := map[uint64][]byte{base.LogIndex: nil} // index → bytes
	record := func(idx uint64, b []byte) {
		mu.Lock()
		defer mu.Unlock()
		if _, dup := appended[idx]; dup {
			t.Errorf("index %d assigned twice", idx)
		}
		appended[idx] = b
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			s := handles[w%2]
			for i := 0; i < each; i++ {
				switch i % 3 {
				case 0:
					ex := newExchange(nanhai, uniq("NH-LOG-"))
					e := entry("exchange", ex.ID, map[string]any{"w": w, "i": i})
					got, err := s.CreateExchange(ctx, ex, e, receiptFor(ex.ID))
					if err != nil {
						t.Errorf("CreateExchange: %v", err)
						return
					}
					record(got.LogIndex, e.Bytes)
				case 1:
					st := newStatus(base, liwan, "IN_REVIEW", fmt.Sprintf("w%di%d", w, i))
					e := entry("status", base.ID, map[string]any{"w": w, "i": i})
					got, err := s.AddStatus(ctx, st, isTerminal, e, nil)
					if err != nil {
						t.Errorf("AddStatus: %v", err)
						return
					}
					record(got.LogIndex, e.Bytes)
				case 2:
					e := entry("denied", "", map[string]any{"w": w, "i": i})
					pos, err := s.AppendEntry(ctx, e)
					if err != nil {
						t.Errorf("AppendEntry: %v", err)
						return
					}
					if pos.LeafHash != e.LeafHash {
						t.Errorf("AppendEntry returned leaf %x", pos.LeafHash)
					}
					record(pos.Index, e.Bytes)
				}
			}
		}(w)
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	total := uint64(1 + workers*each)
	for _, s := range handles {
		if n := logSize(t, s); n != total {
			t.Fatalf("LogSize = %d, want %d", n, total)
		}
	}
	es, err := handles[1].Entries(ctx, 0, total)
	if err != nil || uint64(len(es)) != total {
		t.Fatalf("Entries = %d, %v", len(es), err)
	}
	hs, err := handles[0].LeafHashes(ctx, 0, total)
	if err != nil || uint64(len(hs)) != total {
		t.Fatalf("LeafHashes = %d, %v", len(hs), err)
	}
	for i, e := range es {
		if e.Index != uint64(i) {
			t.Fatalf("entry %d has index %d", i, e.Index)
		}
		want, ok := appended[e.Index]
		if !ok {
			t.Fatalf("index %d was never returned to a caller", e.Index)
		}
		if want != nil && string(e.Bytes) != string(want) {
			t.Errorf("index %d holds %s, want %s", i, e.Bytes, want)
		}
		if hs[i] != e.LeafHash || hs[i] != leaf(e.Bytes) {
			t.Errorf("leaf hash %d differs", i)
		}
	}
	// A sub-range.
	hs2, err := handles[0].LeafHashes(ctx, 3, 7)
	if err != nil || len(hs2) != 4 || hs2[0] != hs[3] || hs2[3] != hs[6] {
		t.Errorf("LeafHashes(3,7) = %d, %v", len(hs2), err)
	}
}

// testConcurrentFailures mixes writes that fail (duplicates, receipts that
// cannot be built, transitions after a terminal state) with writes that
// succeed, concurrently: the failures write nothing, the others are all
// there, and the log has no gap (a backend that commits several callers
// together must not let one failure take the others down).
func testConcurrentFailures(t *testing.T, open Opener) {
	s := handle(t, open)
	done := create(t, s, nanhai, "NH-FAIL-DONE")
	if _, err := addStatus(t, s, newStatus(done, liwan, "COMPLETED", "fin"), isTerminal); err != nil {
		t.Fatal(err)
	}
	base := logSize(t, s)
	boom := errors.New("no receipt")
	const workers, each = 8, 12
	var mu sync.Mutex
	okIdx := map[uint64]string{}
	var okIDs []string
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				switch i % 4 {
				case 0: // succeeds
					ex := newExchange(liwan, fmt.Sprintf("LW-FAIL-%d-%d", w, i))
					e := entry("exchange", ex.ID, map[string]any{"w": w, "i": i})
					got, err := s.CreateExchange(ctx, ex, e, receiptFor(ex.ID))
					if err != nil {
						t.Errorf("CreateExchange: %v", err)
						continue
					}
					mu.Lock()
					okIdx[got.LogIndex] = string(e.Bytes)
					okIDs = append(okIDs, got.ID)
					mu.Unlock()
				case 1: // duplicate
					ex := newExchange(nanhai, "NH-FAIL-DONE")
					if _, err := s.CreateExchange(ctx, ex, entry("exchange", ex.ID, nil), receiptFor(ex.ID)); !errors.Is(err, store.ErrDuplicate) {
						t.Errorf("duplicate: %v", err)
					}
				case 2: // receipt fails
					ex := newExchange(liwan, fmt.Sprintf("LW-BOOM-%d-%d", w, i))
					if _, err := s.CreateExchange(ctx, ex, entry("exchange", ex.ID, nil), func(store.LogPosition) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
						t.Errorf("receipt failure: %v", err)
					}
				case 3: // after terminal
					st := newStatus(done, liwan, "IN_REVIEW", fmt.Sprintf("late-%d-%d", w, i))
					if _, err := addStatus(t, s, st, isTerminal); !errors.Is(err, store.ErrInvalidTransition) {
						t.Errorf("after terminal: %v", err)
					}
				}
			}
		}(w)
	}
	wg.Wait()
	want := base + uint64(len(okIdx))
	if n := logSize(t, s); n != want || len(okIDs) != workers*each/4 {
		t.Fatalf("LogSize = %d, want %d (%d succeeded)", n, want, len(okIDs))
	}
	es, err := s.Entries(ctx, base, want)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if okIdx[e.Index] != string(e.Bytes) {
			t.Errorf("entry %d = %s, want %s", e.Index, e.Bytes, okIdx[e.Index])
		}
	}
	for _, id := range okIDs {
		if _, err := s.GetExchange(ctx, id); err != nil {
			t.Errorf("accepted exchange %s: %v", id, err)
		}
	}
	if ds, _ := s.Deliveries(ctx, "", 0); len(ds) != 2+len(okIDs) {
		t.Errorf("%d deliveries, want %d", len(ds), 2+len(okIDs))
	}
}

func testLogRanges(t *testing.T, open Opener) {
	s := handle(t, open)
	if n := logSize(t, s); n != 0 {
		t.Fatalf("empty LogSize = %d", n)
	}
	if hs, err := s.LeafHashes(ctx, 0, 0); err != nil || len(hs) != 0 {
		t.Errorf("LeafHashes(0,0) = %v, %v", hs, err)
	}
	for i := 0; i < 3; i++ {
		if pos, err := s.AppendEntry(ctx, entry("key_rotated", "", map[string]any{"i": i})); err != nil || pos.Index != uint64(i) {
			t.Fatalf("AppendEntry %d = %+v, %v", i, pos, err)
		}
	}
	if _, err := s.Entries(ctx, 1, 4); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Entries past the end: %v, want ErrNotFound", err)
	}
	if _, err := s.LeafHashes(ctx, 0, 4); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LeafHashes past the end: %v, want ErrNotFound", err)
	}
	if _, err := s.Entries(ctx, 2, 1); err == nil {
		t.Error("Entries(2,1) did not fail")
	}
	if es, err := s.Entries(ctx, 1, 3); err != nil || len(es) != 2 || es[0].Index != 1 || es[1].Index != 2 {
		t.Errorf("Entries(1,3) = %v, %v", es, err)
	}
	if es, err := s.EntriesOfExchange(ctx, "none"); err != nil || len(es) != 0 {
		t.Errorf("EntriesOfExchange(none) = %v, %v", es, err)
	}
}

// ---- outbox ----

// claimAll claims every due delivery at now.
func claimAll(t *testing.T, s store.Store, now time.Time) []store.Delivery {
	t.Helper()
	ds, err := s.ClaimDeliveries(ctx, now, now.Add(time.Minute), 1000)
	if err != nil {
		t.Fatalf("ClaimDeliveries: %v", err)
	}
	return ds
}

func finish(t *testing.T, s store.Store, id string, out store.DeliveryOutcome) {
	t.Helper()
	if err := s.FinishDelivery(ctx, id, out); err != nil {
		t.Fatalf("FinishDelivery(%s, %s): %v", id, out.State, err)
	}
}

func testDeliveryOrdering(t *testing.T, open Opener) {
	s := handle(t, open)
	now := time.Now()
	ex := create(t, s, nanhai, "NH-ORD-1")
	for i := 1; i <= 3; i++ {
		if _, err := addStatus(t, s, newStatus(ex, nanhai, "IN_REVIEW", fmt.Sprintf("o%d", i)), isTerminal); err != nil {
			t.Fatal(err)
		}
	}
	ex2 := create(t, s, liwan, "LW-ORD-2")
	got := claimAll(t, s, now)
	if want := []string{ex.ID, ex2.ID}; !equalStrings(ids(got), want) {
		t.Fatalf("first claim = %v, want %v (statuses wait for their case)", ids(got), want)
	}
	for _, d := range got {
		if d.State != store.StateDelivering {
			t.Errorf("claimed %s in state %s", d.ID, d.State)
		}
	}
	if again := claimAll(t, s, now); len(again) != 0 {
		t.Fatalf("claimed leased rows again: %v", ids(again))
	}
	finish(t, s, ex.ID, store.DeliveryOutcome{State: store.StateDelivered, Attempts: 1, PartnerCaseNo: "LW-900"})
	finish(t, s, ex2.ID, store.DeliveryOutcome{State: store.StateDelivered, Attempts: 1})
	if got := claimAll(t, s, now); !equalStrings(ids(got), []string{ex.ID + ".1"}) {
		t.Fatalf("after the case: claimed %v, want only status 1", ids(got))
	}
	// Status 1 retries later: status 2 waits for it.
	finish(t, s, ex.ID+".1", store.DeliveryOutcome{State: store.StateRetrying, Attempts: 1, NextAttempt: now.Add(time.Hour), LastError: "503"})
	if got := claimAll(t, s, now); len(got) != 0 {
		t.Fatalf("claimed %v while status 1 is retrying later", ids(got))
	}
	if got := claimAll(t, s, now.Add(2*time.Hour)); !equalStrings(ids(got), []string{ex.ID + ".1"}) {
		t.Fatalf("at the retry time: claimed %v, want status 1", ids(got))
	}
	// A refusal is final and lets the next one go.
	finish(t, s, ex.ID+".1", store.DeliveryOutcome{State: store.StateRefused, Attempts: 2, Reason: "bad state"})
	if got := claimAll(t, s, now); !equalStrings(ids(got), []string{ex.ID + ".2"}) {
		t.Fatalf("after a refusal: claimed %v, want status 2", ids(got))
	}
	// Dead blocks the rest until redriven and delivered.
	finish(t, s, ex.ID+".2", store.DeliveryOutcome{State: store.StateDead, Attempts: 12, LastError: "timeout"})
	if got := claimAll(t, s, now.Add(24*time.Hour)); len(got) != 0 {
		t.Fatalf("claimed %v behind a dead delivery", ids(got))
	}
	if err := s.Redrive(ctx, ex.ID+".2", entry("redriven", ex.ID, nil)); err != nil {
		t.Fatal(err)
	}
	if got := claimAll(t, s, now); !equalStrings(ids(got), []string{ex.ID + ".2"}) {
		t.Fatalf("after redrive: claimed %v", ids(got))
	}
	finish(t, s, ex.ID+".2", store.DeliveryOutcome{State: store.StateDelivered, Attempts: 1})
	if got := claimAll(t, s, now); !equalStrings(ids(got), []string{ex.ID + ".3"}) {
		t.Fatalf("claimed %v, want status 3", ids(got))
	}
	// A limit is respected, oldest first.
	for i := 0; i < 5; i++ {
		create(t, s, nanhai, uniq("NH-LIM-"))
	}
	first, err := s.ClaimDeliveries(ctx, now, now.Add(time.Minute), 2)
	if err != nil || len(first) != 2 || first[0].EventIndex >= first[1].EventIndex {
		t.Fatalf("limited claim = %v, %v", ids(first), err)
	}
	rest := claimAll(t, s, now)
	if len(rest) != 3 || rest[0].EventIndex < first[1].EventIndex {
		t.Fatalf("rest = %v", ids(rest))
	}
	if got, err := s.ClaimDeliveries(ctx, now, now.Add(time.Minute), 0); err != nil || len(got) != 0 {
		t.Errorf("limit 0 claimed %v, %v", ids(got), err)
	}
}

func testDeliveryLease(t *testing.T, open Opener) {
	s := handle(t, open)
	now := time.Now()
	ex := create(t, s, nanhai, "NH-LEASE-1")
	got, err := s.ClaimDeliveries(ctx, now, now.Add(time.Minute), 10)
	if err != nil || len(got) != 1 {
		t.Fatalf("claim = %v, %v", ids(got), err)
	}
	if again := claimAll(t, s, now.Add(30*time.Second)); len(again) != 0 {
		t.Fatalf("claimed %v within the lease", ids(again))
	}
	// The worker died: after its lease the row is claimable again.
	again := claimAll(t, s, now.Add(2*time.Minute))
	if !equalStrings(ids(again), []string{ex.ID}) {
		t.Fatalf("after the lease: claimed %v, want %s", ids(again), ex.ID)
	}
	if d := mustDelivery(t, s, ex.ID); d.State != store.StateDelivering {
		t.Errorf("state %s, want delivering", d.State)
	}
	if x, _ := s.GetExchange(ctx, ex.ID); x.DeliveryState != store.StateDelivering {
		t.Errorf("exchange delivery state %s, want delivering", x.DeliveryState)
	}
}

func testDeliveryFinish(t *testing.T, open Opener) {
	s := handle(t, open)
	now := time.Now()
	ex := create(t, s, nanhai, "NH-FIN-1")
	ex2 := create(t, s, liwan, "LW-FIN-2")
	claimAll(t, s, now)
	next := now.Add(90 * time.Second)
	finish(t, s, ex.ID, store.DeliveryOutcome{State: store.StateRetrying, Attempts: 1, NextAttempt: next, LastError: "connection refused"})
	d := mustDelivery(t, s, ex.ID)
	if d.State != store.StateRetrying || d.Attempts != 1 || !d.NextAttempt.Equal(next) || d.LastError != "connection refused" || d.UpdatedAt.IsZero() {
		t.Errorf("retrying delivery = %+v", d)
	}
	if x, _ := s.GetExchange(ctx, ex.ID); x.DeliveryState != store.StateRetrying || x.DeliveryDetail != "connection refused" {
		t.Errorf("exchange while retrying: state %q detail %q", x.DeliveryState, x.DeliveryDetail)
	}
	claimAll(t, s, next)
	size := logSize(t, s)
	e := entry("delivered", "", map[string]any{"of": ex.LogIndex})
	before := time.Now()
	finish(t, s, ex.ID, store.DeliveryOutcome{State: store.StateDelivered, Attempts: 2, PartnerCaseNo: "LW-ACK-1", Entry: &e})
	if logSize(t, s) != size+1 {
		t.Fatal("the delivered entry was not appended")
	}
	es, _ := s.Entries(ctx, size, size+1)
	if len(es) != 1 || string(es[0].Bytes) != string(e.Bytes) || es[0].Exchange != ex.ID {
		t.Errorf("delivered entry = %+v (the exchange id is filled in when empty)", es)
	}
	x, _ := s.GetExchange(ctx, ex.ID)
	if x.DeliveryState != store.StateDelivered || x.TargetCaseNo != "LW-ACK-1" || x.DeliveredAt == nil || x.DeliveredAt.Before(before.Add(-time.Minute)) || x.DeliveryDetail != "" {
		t.Errorf("delivered exchange: state %q target %q at %v detail %q", x.DeliveryState, x.TargetCaseNo, x.DeliveredAt, x.DeliveryDetail)
	}
	if d := mustDelivery(t, s, ex.ID); d.PartnerCaseNo != "LW-ACK-1" || d.Attempts != 2 {
		t.Errorf("delivered row = %+v", d)
	}
	// Finished is final.
	if err := s.FinishDelivery(ctx, ex.ID, store.DeliveryOutcome{State: store.StateDelivered, Attempts: 3}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("finishing a delivered row again: %v, want ErrConflict", err)
	}
	if logSize(t, s) != size+1 {
		t.Error("a conflicting finish was logged")
	}
	if err := s.FinishDelivery(ctx, "nope", store.DeliveryOutcome{State: store.StateDelivered}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("finishing an unknown row: %v, want ErrNotFound", err)
	}
	if err := s.FinishDelivery(ctx, ex2.ID, store.DeliveryOutcome{State: store.StateQueued}); err == nil {
		t.Error("an outcome state of queued was accepted")
	}
	finish(t, s, ex2.ID, store.DeliveryOutcome{State: store.StateRefused, Attempts: 1, Reason: "事项编码不存在"})
	x2, _ := s.GetExchange(ctx, ex2.ID)
	if x2.DeliveryState != store.StateRefused || x2.RefusalReason != "事项编码不存在" || x2.DeliveredAt != nil || x2.TargetCaseNo != "" {
		t.Errorf("refused exchange: %q %q %v %q", x2.DeliveryState, x2.RefusalReason, x2.DeliveredAt, x2.TargetCaseNo)
	}
	if err := s.FinishDelivery(ctx, ex2.ID, store.DeliveryOutcome{State: store.StateRetrying, Attempts: 2}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("finishing a refused row: %v, want ErrConflict", err)
	}
}

func testDeadAndRedrive(t *testing.T, open Opener) {
	s := handle(t, open)
	now := time.Now()
	ex := create(t, s, liwan, "LW-DEAD-1")
	claimAll(t, s, now)
	finish(t, s, ex.ID, store.DeliveryOutcome{State: store.StateDead, Attempts: 12, LastError: "HTTP 502"})
	x, _ := s.GetExchange(ctx, ex.ID)
	if x.DeliveryState != store.StateDead || x.DeliveryDetail != "HTTP 502" {
		t.Errorf("dead exchange: %q %q", x.DeliveryState, x.DeliveryDetail)
	}
	dead, err := s.Deliveries(ctx, store.StateDead, 10)
	if err != nil || !equalStrings(ids(dead), []string{ex.ID}) {
		t.Fatalf("Deliveries(dead) = %v, %v", ids(dead), err)
	}
	if got := claimAll(t, s, now.Add(48*time.Hour)); len(got) != 0 {
		t.Fatalf("claimed a dead row: %v", ids(got))
	}
	size := logSize(t, s)
	if err := s.Redrive(ctx, ex.ID, entry("redriven", "", map[string]any{"by": "admin"})); err != nil {
		t.Fatalf("Redrive: %v", err)
	}
	d := mustDelivery(t, s, ex.ID)
	if d.State != store.StateQueued || d.Attempts != 0 {
		t.Errorf("redriven row = %+v", d)
	}
	if es, _ := s.Entries(ctx, size, size+1); len(es) != 1 || es[0].Kind != "redriven" || es[0].Exchange != ex.ID {
		t.Errorf("redriven entry = %+v", es)
	}
	if err := s.Redrive(ctx, ex.ID, entry("redriven", ex.ID, nil)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("redriving a queued row: %v, want ErrConflict", err)
	}
	if logSize(t, s) != size+1 {
		t.Error("a refused redrive was logged")
	}
	if err := s.Redrive(ctx, "nope", entry("redriven", "", nil)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("redriving an unknown row: %v, want ErrNotFound", err)
	}
	if got := claimAll(t, s, now); !equalStrings(ids(got), []string{ex.ID}) {
		t.Errorf("redriven row not claimable: %v", ids(got))
	}
}

func testDeliveryListings(t *testing.T, open Opener) {
	s := handle(t, open)
	a := create(t, s, nanhai, "NH-LIST-1")
	b := create(t, s, nanhai, "NH-LIST-2")
	if _, err := addStatus(t, s, newStatus(a, liwan, "ACCEPTED", "l1"), isTerminal); err != nil {
		t.Fatal(err)
	}
	all, err := s.Deliveries(ctx, "", 0)
	if err != nil || !equalStrings(ids(all), []string{a.ID, b.ID, a.ID + ".1"}) {
		t.Fatalf("Deliveries(\"\") = %v, %v", ids(all), err)
	}
	if two, _ := s.Deliveries(ctx, "", 2); !equalStrings(ids(two), []string{a.ID, b.ID}) {
		t.Errorf("Deliveries limit 2 = %v", ids(two))
	}
	if q, _ := s.Deliveries(ctx, store.StateQueued, 10); len(q) != 3 {
		t.Errorf("Deliveries(queued) = %v", ids(q))
	}
	if r, _ := s.Deliveries(ctx, store.StateRetrying, 10); len(r) != 0 {
		t.Errorf("Deliveries(retrying) = %v", ids(r))
	}
	of, err := s.DeliveriesOf(ctx, a.ID)
	if err != nil || !equalStrings(ids(of), []string{a.ID, a.ID + ".1"}) || of[1].Seq != 1 || of[1].Kind != "status" {
		t.Errorf("DeliveriesOf = %v, %v", ids(of), err)
	}
}

func testConcurrentClaimers(t *testing.T, open Opener) {
	handles := []store.Store{handle(t, open), handle(t, open), handle(t, open)}
	const cases, statuses = 12, 2
	for i := 0; i < cases; i++ {
		ex := create(t, handles[0], nanhai, uniq("NH-CC-"))
		for j := 1; j <= statuses; j++ {
			if _, err := addStatus(t, handles[0], newStatus(ex, liwan, "IN_REVIEW", fmt.Sprintf("cc%d", j)), isTerminal); err != nil {
				t.Fatal(err)
			}
		}
	}
	var mu sync.Mutex
	claimed := map[string]int{}
	finishing := map[string]bool{} // set before FinishDelivery commits
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			s := handles[w%len(handles)]
			idle := 0
			for idle < 3 {
				now := time.Now()
				ds, err := s.ClaimDeliveries(ctx, now, now.Add(time.Hour), 3)
				if err != nil {
					t.Errorf("ClaimDeliveries: %v", err)
					return
				}
				if len(ds) == 0 {
					idle++
					time.Sleep(5 * time.Millisecond)
					continue
				}
				idle = 0
				for _, d := range ds {
					mu.Lock()
					claimed[d.ID]++
					if d.Seq > 0 {
						prev := d.ExchangeID
						if d.Seq > 1 {
							prev = fmt.Sprintf("%s.%d", d.ExchangeID, d.Seq-1)
						}
						if !finishing[prev] {
							t.Errorf("%s claimed before %s was delivered", d.ID, prev)
						}
					}
					finishing[d.ID] = true
					mu.Unlock()
					if err := s.FinishDelivery(ctx, d.ID, store.DeliveryOutcome{State: store.StateDelivered, Attempts: 1}); err != nil {
						t.Errorf("FinishDelivery(%s): %v", d.ID, err)
					}
				}
			}
		}(w)
	}
	wg.Wait()
	if len(claimed) != cases*(statuses+1) {
		t.Errorf("%d deliveries claimed, want %d", len(claimed), cases*(statuses+1))
	}
	for id, n := range claimed {
		if n != 1 {
			t.Errorf("%s claimed %d times", id, n)
		}
	}
	if left, _ := handles[0].Deliveries(ctx, store.StateDelivered, 0); len(left) != cases*(statuses+1) {
		t.Errorf("%d delivered", len(left))
	}
}

// claimFor claims up to limit of division's due deliveries at now.
func claimFor(t *testing.T, s store.Store, division string, now time.Time, limit int) []store.Delivery {
	t.Helper()
	ds, err := s.ClaimDeliveriesFor(ctx, division, now, now.Add(time.Minute), limit)
	if err != nil {
		t.Fatalf("ClaimDeliveriesFor(%s): %v", division, err)
	}
	for _, d := range ds {
		if d.To != division {
			t.Errorf("ClaimDeliveriesFor(%s) claimed %s, addressed to %s", division, d.ID, d.To)
		}
		if d.State != store.StateDelivering {
			t.Errorf("claimed %s in state %s", d.ID, d.State)
		}
	}
	return ds
}

// ClaimDeliveriesFor takes only the rows of its partner, oldest first, at
// most limit, under the same conditions as ClaimDeliveries (statuses wait
// for earlier deliveries, retries for their time, leases for their end),
// and leaves the other partner's rows queued.
func testClaimPerPartner(t *testing.T, open Opener) {
	s := handle(t, open)
	now := time.Now()
	var toLiwan, toNanhai []string
	for i := 0; i < 4; i++ {
		toLiwan = append(toLiwan, create(t, s, nanhai, uniq("NH-PP-")).ID)
		toNanhai = append(toNanhai, create(t, s, liwan, uniq("LW-PP-")).ID)
	}
	// A status of the first case to Liwan goes back to Nanhai, and waits
	// for the case.
	ex, err := s.GetExchange(ctx, toLiwan[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := addStatus(t, s, newStatus(ex, liwan, "IN_REVIEW", "pp1"), isTerminal); err != nil {
		t.Fatal(err)
	}

	if got := claimFor(t, s, liwan, now, 3); !equalStrings(ids(got), toLiwan[:3]) {
		t.Fatalf("first claim for liwan = %v, want %v", ids(got), toLiwan[:3])
	}
	if got := claimFor(t, s, liwan, now, 0); len(got) != 0 {
		t.Fatalf("limit 0 claimed %v", ids(got))
	}
	for _, id := range toNanhai {
		if d := mustDelivery(t, s, id); d.State != store.StateQueued {
			t.Fatalf("nanhai's %s is %s after liwan's claim, want queued", id, d.State)
		}
	}
	if got := claimFor(t, s, "440000", now, 10); len(got) != 0 {
		t.Fatalf("claimed %v for a division with no deliveries", ids(got))
	}
	// The status to Nanhai is not due while its case is in flight.
	if got := claimFor(t, s, nanhai, now, 10); !equalStrings(ids(got), toNanhai) {
		t.Fatalf("claim for nanhai = %v, want %v (not the status)", ids(got), toNanhai)
	}
	if got := claimFor(t, s, liwan, now, 10); !equalStrings(ids(got), toLiwan[3:]) {
		t.Fatalf("second claim for liwan = %v, want %v", ids(got), toLiwan[3:])
	}
	finish(t, s, toLiwan[0], store.DeliveryOutcome{State: store.StateDelivered, Attempts: 1, PartnerCaseNo: "LW-PP-900"})
	if got := claimFor(t, s, nanhai, now, 10); !equalStrings(ids(got), []string{toLiwan[0] + ".1"}) {
		t.Fatalf("after the case: claim for nanhai = %v, want its status", ids(got))
	}
	// Retrying rows come back at their time, leased ones when the lease ends.
	finish(t, s, toLiwan[1], store.DeliveryOutcome{State: store.StateRetrying, Attempts: 1, NextAttempt: now.Add(time.Hour), LastError: "503"})
	if got := claimFor(t, s, liwan, now, 10); len(got) != 0 {
		t.Fatalf("claimed %v before the retry time and within the leases", ids(got))
	}
	got := claimFor(t, s, liwan, now.Add(2*time.Hour), 10)
	if want := []string{toLiwan[1], toLiwan[2], toLiwan[3]}; !equalStrings(ids(got), want) {
		t.Fatalf("two hours later: claimed %v, want %v (the retry and the expired leases)", ids(got), want)
	}
}

// The payload's SM3, when the caller gives it with the exchange or the
// status, comes back with the delivery; when not given it is zero.
func testPayloadSM3(t *testing.T, open Opener) {
	s := handle(t, open)
	with := newExchange(nanhai, uniq("NH-SUM-"))
	with.TranslatedSM3 = sha256.Sum256(with.Translated) // stands in for SM3
	if _, err := s.CreateExchange(ctx, with, entry("exchange", with.ID, nil), receiptFor(with.ID)); err != nil {
		t.Fatal(err)
	}
	without := create(t, s, nanhai, uniq("NH-SUM-"))
	if d := mustDelivery(t, s, with.ID); d.PayloadSM3 != with.TranslatedSM3 {
		t.Errorf("delivery digest %x, want %x", d.PayloadSM3, with.TranslatedSM3)
	}
	if d := mustDelivery(t, s, without.ID); d.PayloadSM3 != ([32]byte{}) {
		t.Errorf("delivery digest %x, want none", d.PayloadSM3)
	}
	st := newStatus(with, liwan, "IN_REVIEW", "sum1")
	st.TranslatedSM3 = sha256.Sum256(st.Translated)
	if _, err := addStatus(t, s, st, isTerminal); err != nil {
		t.Fatal(err)
	}
	finish(t, s, with.ID, store.DeliveryOutcome{State: store.StateDelivered, Attempts: 1})
	got := claimFor(t, s, nanhai, time.Now(), 10)
	if len(got) != 1 || got[0].ID != with.ID+".1" || got[0].PayloadSM3 != st.TranslatedSM3 {
		t.Fatalf("claimed %v, want the status with its digest %x", got, st.TranslatedSM3)
	}
}

// testLargeBodies: cases whose translated record carries the request's
// materials (as real ones do: the store may keep such a record as a delta
// against its request), one with materials of its own and one whose
// materials the request wraps over several lines, read back byte for byte
// by every read that returns them.
func testLargeBodies(t *testing.T, open Opener) {
	s := handle(t, open)
	r := rand.New(rand.NewPCG(9, 9))
	mat := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return base64.StdEncoding.EncodeToString(b)
	}
	m := []string{mat(6000), mat(300), mat(9000)}
	wrapped := func(s string) string {
		var b strings.Builder
		for len(s) > 76 {
			b.WriteString(s[:76] + "\r\n")
			s = s[76:]
		}
		return b.String() + s
	}
	cases := []struct{ name, request, translated string }{
		{"shared", fmt.Sprintf("<CASE><M>%s</M><M>%s</M><M>%s</M></CASE>", m[0], m[1], m[2]),
			fmt.Sprintf(`{"materials":[{"content":"%s"},{"content":"%s"},{"content":"%s"}],"note":"\u5ba1"}`, m[2], m[0], m[1])},
		{"own", fmt.Sprintf("<CASE><M>%s</M></CASE>", m[0]), fmt.Sprintf(`{"materials":[{"content":"%s"}]}`, mat(5000))},
		{"wrapped", fmt.Sprintf("<CASE><M>%s</M></CASE>", wrapped(m[2])), fmt.Sprintf(`{"materials":[{"content":"%s"}]}`, m[2])},
	}
	for _, c := range cases {
		ex := newExchange(nanhai, uniq("NH-BIG-"))
		ex.Request, ex.Translated = []byte(c.request), []byte(c.translated)
		if _, err := s.CreateExchange(ctx, ex, entry("exchange", ex.ID, nil), receiptFor(ex.ID)); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		check := func(what string, req, rec []byte) {
			t.Helper()
			if req != nil && string(req) != c.request {
				t.Errorf("%s: %s: request of %d bytes, want the %d sent", c.name, what, len(req), len(c.request))
			}
			if string(rec) != c.translated {
				t.Errorf("%s: %s: record of %d bytes, want the %d stored", c.name, what, len(rec), len(c.translated))
			}
		}
		got, err := s.GetExchange(ctx, ex.ID)
		if err != nil {
			t.Fatal(err)
		}
		check("GetExchange", got.Request, got.Translated)
		if got, err = s.FindExchange(ctx, ex.SourceCaseNo); err != nil {
			t.Fatal(err)
		}
		check("FindExchange", got.Request, got.Translated)
		gotEx, _, dls, err := s.ExchangeDetails(ctx, ex.ID, "")
		if err != nil || len(dls) != 1 {
			t.Fatalf("ExchangeDetails: %d deliveries, %v", len(dls), err)
		}
		check("ExchangeDetails", gotEx.Request, gotEx.Translated)
		check("ExchangeDetails delivery", nil, dls[0].Payload)
		check("GetDelivery", nil, mustDelivery(t, s, ex.ID).Payload)
	}
	claimed := claimFor(t, s, liwan, time.Now(), 10)
	if len(claimed) != len(cases) {
		t.Fatalf("claimed %d, want %d", len(claimed), len(cases))
	}
	for i, d := range claimed {
		if string(d.Payload) != cases[i].translated {
			t.Errorf("%s: claimed payload of %d bytes, want the %d stored", cases[i].name, len(d.Payload), len(cases[i].translated))
		}
	}
}

// Claimers of both partners on several handles take each row once, and
// only their partner's.
func testConcurrentClaimersPerPartner(t *testing.T, open Opener) {
	handles := []store.Store{handle(t, open), handle(t, open), handle(t, open)}
	const cases = 12
	for i := 0; i < cases; i++ {
		create(t, handles[0], nanhai, uniq("NH-CP-"))
		create(t, handles[0], liwan, uniq("LW-CP-"))
	}
	var mu sync.Mutex
	claimed := map[string]int{}
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			s := handles[w%len(handles)]
			division := []string{nanhai, liwan}[w%2]
			for idle := 0; idle < 3; {
				now := time.Now()
				ds, err := s.ClaimDeliveriesFor(ctx, division, now, now.Add(time.Hour), 2)
				if err != nil {
					t.Errorf("ClaimDeliveriesFor: %v", err)
					return
				}
				if len(ds) == 0 {
					idle++
					time.Sleep(5 * time.Millisecond)
					continue
				}
				idle = 0
				for _, d := range ds {
					if d.To != division {
						t.Errorf("claimer of %s got %s for %s", division, d.ID, d.To)
					}
					mu.Lock()
					claimed[d.ID]++
					mu.Unlock()
					if err := s.FinishDelivery(ctx, d.ID, store.DeliveryOutcome{State: store.StateDelivered, Attempts: 1}); err != nil {
						t.Errorf("FinishDelivery(%s): %v", d.ID, err)
					}
				}
			}
		}(w)
	}
	wg.Wait()
	if len(claimed) != 2*cases {
		t.Errorf("%d deliveries claimed, want %d", len(claimed), 2*cases)
	}
	for id, n := range claimed {
		if n != 1 {
			t.Errorf("%s claimed %d times", id, n)
		}
	}
}

// ---- nonces ----

func testNonces(t *testing.T, open Opener) {
	s := handle(t, open)
	later := time.Now().Add(5 * time.Minute)
	for _, step := range []struct {
		key, nonce string
		until      time.Time
		fresh      bool
	}{
		{"k1", "n1", later, true},
		{"k1", "n1", later, false},                // replayed
		{"k1", "n1", later.Add(time.Hour), false}, // still replayed, whatever its new expiry
		{"k2", "n1", later, true},                 // another key
		{"k1", "n2", later, true},                 // another nonce
		{"k3", "old", time.Now().Add(-time.Second), true},
		{"k3", "old", time.Now().Add(-time.Second), true}, // the stored one had expired
		{"k3", "old", later, true},
		{"k3", "old", later, false},
	} {
		fresh, err := s.RememberNonce(ctx, step.key, step.nonce, step.until)
		if err != nil {
			t.Fatalf("RememberNonce: %v", err)
		}
		if fresh != step.fresh {
			t.Errorf("RememberNonce(%s, %s) fresh = %v, want %v", step.key, step.nonce, fresh, step.fresh)
		}
	}
}

// testEntryNonce: a nonce given with an entry is recorded in the
// transaction that appends it (CreateExchange, AddStatus, AppendEntry), as
// RememberNonce records it; a nonce already recorded fails the whole
// transaction with ErrReplayed and writes nothing; NonceSeen reads without
// recording, and an expired nonce counts as unseen.
func testEntryNonce(t *testing.T, open Opener) {
	s, other := handle(t, open), handle(t, open)
	key := uniq("key-")
	until := time.Now().Add(5 * time.Minute)
	seen := func(n string) bool {
		t.Helper()
		ok, err := other.NonceSeen(ctx, key, n)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	withNonce := func(e store.LogAppend, n string) store.LogAppend {
		e.Nonce = &store.Nonce{KeyID: key, Value: n, Until: until}
		return e
	}

	if seen("n1") {
		t.Fatal("n1 seen before anything recorded it")
	}
	ex := newExchange(nanhai, uniq("NH-EN-"))
	if _, err := s.CreateExchange(ctx, ex, withNonce(entry("exchange", ex.ID, nil), "n1"), receiptFor(ex.ID)); err != nil {
		t.Fatal(err)
	}
	if !seen("n1") {
		t.Fatal("the nonce of a created exchange is not seen")
	}
	if fresh, err := other.RememberNonce(ctx, key, "n1", until); err != nil || fresh {
		t.Errorf("RememberNonce after the exchange: fresh %v, %v; want not fresh", fresh, err)
	}

	size := logSize(t, s)
	again := newExchange(nanhai, uniq("NH-EN-"))
	if _, err := other.CreateExchange(ctx, again, withNonce(entry("exchange", again.ID, nil), "n1"), receiptFor(again.ID)); !errors.Is(err, store.ErrReplayed) {
		t.Fatalf("CreateExchange with a used nonce: %v, want ErrReplayed", err)
	}
	if _, err := s.GetExchange(ctx, again.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the refused exchange was written: %v", err)
	}
	st := newStatus(ex, liwan, "IN_REVIEW", "en1")
	if _, err := s.AddStatus(ctx, st, isTerminal, withNonce(entry("status", ex.ID, nil), "n1"), nil); !errors.Is(err, store.ErrReplayed) {
		t.Fatalf("AddStatus with a used nonce: %v, want ErrReplayed", err)
	}
	if _, err := s.AppendEntry(ctx, withNonce(entry("denied", "", nil), "n1")); !errors.Is(err, store.ErrReplayed) {
		t.Fatalf("AppendEntry with a used nonce: %v, want ErrReplayed", err)
	}
	if got := logSize(t, s); got != size {
		t.Errorf("log grew from %d to %d with refused entries", size, got)
	}
	if sts, err := s.Statuses(ctx, ex.ID); err != nil || len(sts) != 0 {
		t.Errorf("statuses after the refused one: %d, %v", len(sts), err)
	}

	// Fresh nonces go through each kind of write.
	if _, err := s.AddStatus(ctx, st, isTerminal, withNonce(entry("status", ex.ID, nil), "n2"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendEntry(ctx, withNonce(entry("denied", "", nil), "n3")); err != nil {
		t.Fatal(err)
	}
	if !seen("n2") || !seen("n3") || seen("n4") {
		t.Errorf("seen n2 %v n3 %v n4 %v, want true true false", seen("n2"), seen("n3"), seen("n4"))
	}

	// An expired nonce is unseen and may be used again.
	if fresh, err := s.RememberNonce(ctx, key, "old", time.Now().Add(-time.Second)); err != nil || !fresh {
		t.Fatalf("RememberNonce(old): %v, %v", fresh, err)
	}
	if seen("old") {
		t.Error("an expired nonce is seen")
	}
	if _, err := s.AppendEntry(ctx, withNonce(entry("denied", "", nil), "old")); err != nil {
		t.Errorf("AppendEntry with an expired nonce: %v", err)
	}
	if _, err := s.RememberNonce(ctx, key, "gone", time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}

	// LiveNonces lists the unexpired ones, with their times.
	var live []string
	err := other.LiveNonces(ctx, func(k, n string, u time.Time) {
		if k == key {
			live = append(live, n)
			if !u.Equal(until) && u.Sub(until).Abs() > time.Microsecond {
				t.Errorf("nonce %s until %v, want %v", n, u, until)
			}
		}
	})
	sort.Strings(live)
	if err != nil || !equalStrings(live, []string{"n1", "n2", "n3", "old"}) {
		t.Errorf("LiveNonces: %v, %v; want n1 n2 n3 old", live, err)
	}
}

func testConcurrentNonces(t *testing.T, open Opener) {
	handles := []store.Store{handle(t, open), handle(t, open)}
	until := time.Now().Add(time.Minute)
	for round := 0; round < 3; round++ {
		nonce := uniq("nonce-")
		var wg sync.WaitGroup
		var mu sync.Mutex
		fresh := 0
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				ok, err := handles[i%2].RememberNonce(ctx, "kid", nonce, until)
				if err != nil {
					t.Errorf("RememberNonce: %v", err)
				}
				if ok {
					mu.Lock()
					fresh++
					mu.Unlock()
				}
			}(i)
		}
		wg.Wait()
		if fresh != 1 {
			t.Errorf("a nonce sent 8 times to two replicas was fresh %d times", fresh)
		}
	}
}

// ---- policy administration ----

func testDrafts(t *testing.T, open Opener) {
	s := handle(t, open)
	at := time.Date(2026, 11, 5, 8, 0, 0, 42, time.UTC)
	d := &store.Draft{ID: "draft-1", Revision: "rev1", Bundle: []byte("tar bytes\x00\xff"), UploadedBy: "admin-key", UploadedAt: at}
	if err := s.SaveDraft(ctx, d); err != nil {
		t.Fatalf("SaveDraft: %v", err)
	}
	got, err := s.GetDraft(ctx, "draft-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != d.ID || got.Revision != "rev1" || string(got.Bundle) != string(d.Bundle) || got.UploadedBy != "admin-key" ||
		!got.UploadedAt.Equal(at) || got.Validated || len(got.Report) != 0 {
		t.Errorf("GetDraft = %+v", got)
	}
	if err := s.SaveDraft(ctx, &store.Draft{ID: "draft-1", Revision: "other"}); !errors.Is(err, store.ErrDuplicate) {
		t.Errorf("SaveDraft(same id): %v, want ErrDuplicate", err)
	}
	report := json.RawMessage(`{"ok":true,"tests":12}`)
	if err := s.MarkDraftValidated(ctx, "draft-1", true, report); err != nil {
		t.Fatal(err)
	}
	got, _ = s.GetDraft(ctx, "draft-1")
	if !got.Validated || string(got.Report) != string(report) || got.Revision != "rev1" {
		t.Errorf("validated draft = %+v", got)
	}
	if err := s.MarkDraftValidated(ctx, "draft-1", false, json.RawMessage(`{"ok":false}`)); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.GetDraft(ctx, "draft-1"); got.Validated {
		t.Error("a failed validation left the draft validated")
	}
	if _, err := s.GetDraft(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetDraft(unknown): %v", err)
	}
	if err := s.MarkDraftValidated(ctx, "nope", true, nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("MarkDraftValidated(unknown): %v", err)
	}
	anon := &store.Draft{Revision: "rev2"}
	if err := s.SaveDraft(ctx, anon); err != nil || anon.ID == "" {
		t.Errorf("SaveDraft without id: %v, id %q", err, anon.ID)
	}
}

func testActivations(t *testing.T, open Opener) {
	s := handle(t, open)
	if as, err := s.Activations(ctx); err != nil || len(as) != 0 {
		t.Fatalf("Activations on empty = %v, %v", as, err)
	}
	create(t, s, nanhai, "NH-ACT-1")
	at := time.Date(2026, 11, 6, 1, 2, 3, 4, time.UTC)
	a1 := &store.Activation{Revision: "r1", Previous: "", Bundle: []byte("b1"), By: "admin", At: at}
	if err := s.Activate(ctx, a1, entry("policy_activated", "", map[string]any{"revision": "r1"})); err != nil {
		t.Fatal(err)
	}
	if a1.LogIndex != 1 {
		t.Errorf("activation LogIndex = %d, want 1", a1.LogIndex)
	}
	a2 := &store.Activation{Revision: "r2", Previous: "r1", Bundle: []byte("b2"), By: "admin2", At: at.Add(time.Hour)}
	if err := s.Activate(ctx, a2, entry("policy_activated", "", map[string]any{"revision": "r2"})); err != nil {
		t.Fatal(err)
	}
	// A rollback activates r1 again.
	a3 := &store.Activation{Revision: "r1", Previous: "r2", Bundle: []byte("b1"), By: "admin", At: at.Add(2 * time.Hour)}
	if err := s.Activate(ctx, a3, entry("policy_activated", "", map[string]any{"revision": "r1"})); err != nil {
		t.Fatal(err)
	}
	as, err := s.Activations(ctx)
	if err != nil || len(as) != 3 {
		t.Fatalf("Activations = %v, %v", as, err)
	}
	want := []*store.Activation{a3, a2, a1}
	for i, a := range as {
		w := want[i]
		if a.Revision != w.Revision || a.Previous != w.Previous || string(a.Bundle) != string(w.Bundle) || a.By != w.By ||
			!a.At.Equal(w.At) || a.LogIndex != w.LogIndex {
			t.Errorf("activation %d = %+v, want %+v", i, a, *w)
		}
	}
	if es, _ := s.Entries(ctx, 3, 4); len(es) != 1 || es[0].Kind != "policy_activated" {
		t.Errorf("activation entry = %+v", es)
	}
}

func testRecentDecisions(t *testing.T, open Opener) {
	s := handle(t, open)
	var want []uint64 // indexes with decisions, oldest first
	for i := 0; i < 4; i++ {
		ex := newExchange(nanhai, uniq("NH-DEC-"))
		got, err := s.CreateExchange(ctx, ex, entry("exchange", ex.ID, map[string]any{"policy_input": map[string]any{"i": i}, "decision": map[string]any{"allow": true}}), nil)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, got.LogIndex)
		if _, err := addStatus(t, s, newStatus(got, liwan, "ACCEPTED", "x"), isTerminal); err != nil {
			t.Fatal(err)
		}
		pos, err := s.AppendEntry(ctx, entry("denied", "", map[string]any{"code": "policy_denied", "policy_input": map[string]any{"i": i}, "decision": map[string]any{"allow": false}}))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, pos.Index)
		// Denials of other kinds carry no decision.
		if _, err := s.AppendEntry(ctx, entry("denied", "", map[string]any{"code": "validation_failed", "fields": []string{"x"}})); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.RecentDecisions(ctx, 5)
	if err != nil || len(got) != 5 {
		t.Fatalf("RecentDecisions(5) = %d, %v", len(got), err)
	}
	for i, e := range got {
		if e.Index != want[len(want)-1-i] {
			t.Errorf("decision %d has index %d, want %d", i, e.Index, want[len(want)-1-i])
		}
		if e.Kind != "exchange" && e.Kind != "denied" {
			t.Errorf("decision of kind %s", e.Kind)
		}
	}
	if all, _ := s.RecentDecisions(ctx, 100); len(all) != len(want) {
		t.Errorf("RecentDecisions(100) = %d, want %d", len(all), len(want))
	}
}

func testCheckpoints(t *testing.T, open Opener) {
	s := handle(t, open)
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	if cp, err := s.LatestCheckpoint(ctx); err != nil || cp != nil {
		t.Fatalf("LatestCheckpoint on empty = %v, %v", cp, err)
	}
	if cp, err := s.CheckpointAtOrBefore(ctx, t0); err != nil || cp != nil {
		t.Fatalf("CheckpointAtOrBefore on empty = %v, %v", cp, err)
	}
	note := func(n int) []byte {
		return []byte(fmt.Sprintf("tongban/guangfo\n%d\nroot=\n\n— tongban/guangfo sig\n", n))
	}
	for i, size := range []uint64{1, 5, 9} {
		if err := s.AddCheckpoint(ctx, store.StoredCheckpoint{Size: size, Time: t0.Add(time.Duration(i+1) * time.Second), Note: note(int(size))}); err != nil {
			t.Fatal(err)
		}
	}
	cp, err := s.LatestCheckpoint(ctx)
	if err != nil || cp.Size != 9 || string(cp.Note) != string(note(9)) || !cp.Time.Equal(t0.Add(3*time.Second)) {
		t.Fatalf("LatestCheckpoint = %+v, %v", cp, err)
	}
	sizes := func(cps []store.StoredCheckpoint) []string {
		var out []string
		for _, c := range cps {
			out = append(out, fmt.Sprint(c.Size))
		}
		return out
	}
	for _, tc := range []struct {
		lo, hi uint64
		want   []string
	}{
		{0, 100, []string{"1", "5", "9"}},
		{2, 9, []string{"5", "9"}},
		{5, 5, []string{"5"}},
		{6, 8, nil},
		{10, 1 << 63, nil},
	} {
		got, err := s.Checkpoints(ctx, tc.lo, tc.hi)
		if err != nil || !equalStrings(sizes(got), tc.want) {
			t.Errorf("Checkpoints(%d, %d) = %v, %v; want %v", tc.lo, tc.hi, sizes(got), err, tc.want)
		}
	}
	for _, tc := range []struct {
		at   time.Time
		want uint64 // 0: none
	}{
		{t0, 0},
		{t0.Add(time.Second - 1), 0},
		{t0.Add(time.Second), 1},
		{t0.Add(2*time.Second + 1), 5},
		{t0.Add(time.Hour), 9},
		{time.Time{}, 0},
	} {
		got, err := s.CheckpointAtOrBefore(ctx, tc.at)
		if err != nil {
			t.Fatal(err)
		}
		if (got == nil) != (tc.want == 0) || (got != nil && got.Size != tc.want) {
			t.Errorf("CheckpointAtOrBefore(%v) = %+v, want size %d", tc.at, got, tc.want)
		}
	}
	// A second checkpoint of the same size (another replica) keeps the first.
	if err := s.AddCheckpoint(ctx, store.StoredCheckpoint{Size: 5, Time: t0.Add(time.Minute), Note: []byte("other")}); err != nil {
		t.Errorf("AddCheckpoint(same size): %v", err)
	}
	if got, _ := s.Checkpoints(ctx, 5, 5); len(got) != 1 || string(got[0].Note) != string(note(5)) {
		t.Errorf("checkpoint 5 = %+v", got)
	}
}

// ---- durability ----

func testDurability(t *testing.T, open Opener) {
	s := open(t)
	now := time.Now()
	ex := create(t, s, nanhai, "NH-DUR-1")
	if _, err := addStatus(t, s, newStatus(ex, liwan, "ACCEPTED", "dur"), isTerminal); err != nil {
		t.Fatal(err)
	}
	claimAll(t, s, now)
	finish(t, s, ex.ID, store.DeliveryOutcome{State: store.StateDelivered, Attempts: 1, PartnerCaseNo: "LW-DUR"})
	if _, err := s.AppendEntry(ctx, entry("key_rotated", "", nil)); err != nil {
		t.Fatal(err)
	}
	if err := s.AddCheckpoint(ctx, store.StoredCheckpoint{Size: 3, Time: now, Note: []byte("cp3")}); err != nil {
		t.Fatal(err)
	}
	if fresh, err := s.RememberNonce(ctx, "k", "n", now.Add(time.Hour)); err != nil || !fresh {
		t.Fatal("nonce not fresh", err)
	}
	if err := s.SaveDraft(ctx, &store.Draft{ID: "d1", Revision: "r"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Activate(ctx, &store.Activation{Revision: "r", By: "a"}, entry("policy_activated", "", nil)); err != nil {
		t.Fatal(err)
	}
	before, _ := s.GetExchange(ctx, ex.ID)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = handle(t, open)
	after, err := s.GetExchange(ctx, ex.ID)
	if err != nil {
		t.Fatalf("after reopen: %v", err)
	}
	sameExchange(t, "reopened", after, before)
	if after.TargetCaseNo != "LW-DUR" || after.DeliveryState != store.StateDelivered {
		t.Errorf("reopened exchange lost its delivery: %+v", after)
	}
	if sts, _ := s.Statuses(ctx, ex.ID); len(sts) != 1 {
		t.Errorf("reopened: %d statuses", len(sts))
	}
	if n := logSize(t, s); n != 4 {
		t.Errorf("reopened LogSize = %d, want 4", n)
	}
	if cp, _ := s.LatestCheckpoint(ctx); cp == nil || cp.Size != 3 {
		t.Errorf("reopened checkpoint = %+v", cp)
	}
	if fresh, _ := s.RememberNonce(ctx, "k", "n", now.Add(time.Hour)); fresh {
		t.Error("a nonce was forgotten across a restart")
	}
	if _, err := s.GetDraft(ctx, "d1"); err != nil {
		t.Errorf("reopened draft: %v", err)
	}
	if as, _ := s.Activations(ctx); len(as) != 1 || as[0].LogIndex != 3 {
		t.Errorf("reopened activations = %+v", as)
	}
	if got := claimAll(t, s, now); !equalStrings(ids(got), []string{ex.ID + ".1"}) {
		t.Errorf("reopened outbox claimed %v", ids(got))
	}
	pos, err := s.AppendEntry(ctx, entry("key_rotated", "", nil))
	if err != nil || pos.Index != 4 {
		t.Errorf("append after reopen = %+v, %v; want index 4", pos, err)
	}
}
