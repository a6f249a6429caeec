package store_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"path/filepath"
	"testing"
	"time"

	"github.com/tongban/tongban/gateway/store"
)

// openFile opens a SQLite store in a new file, closed when the test ends,
// and says where the file is.
func openFile(t *testing.T) (store.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tongban.db")
	s, err := store.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// TestBodiesStoredOnce: since migration 4 an exchange's request and
// translated record are written once, to exchange_bodies, and its outbox
// row holds no copy (payload NULL) yet reads the record back; rows written
// before the migration (payloads in exchanges and deliveries) read as they
// did.
func TestBodiesStoredOnce(t *testing.T) {
	ctx := context.Background()
	s, path := openFile(t)

	created := time.Date(2026, 11, 2, 2, 0, 0, 0, time.UTC)
	ex := &store.Exchange{From: "440605", To: "440103", SourceCaseNo: "NEW-1", Request: []byte("<CASE>new</CASE>"),
		Translated: []byte(`{"caseId":"new"}`), CreatedAt: created}
	if _, err := s.CreateExchange(ctx, ex, store.LogAppend{Kind: "exchange", Bytes: []byte(`{}`)}, nil); err != nil {
		t.Fatal(err)
	}
	st := &store.StatusUpdate{ExchangeID: ex.ID, From: "440103", To: "440605", State: "accepted", At: created,
		RequestDigest: "d1", Request: []byte(`{"s":1}`), Translated: []byte("<STATUS>1</STATUS>")}
	if _, err := s.AddStatus(ctx, st, nil, store.LogAppend{Kind: "status", Bytes: []byte(`{}`)}, nil); err != nil {
		t.Fatal(err)
	}

	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var copies int
	if err := db.QueryRow(`SELECT (SELECT COUNT(*) FROM deliveries WHERE payload IS NOT NULL)
		+ (SELECT COUNT(*) FROM exchanges WHERE request IS NOT NULL OR translated IS NOT NULL)`).Scan(&copies); err != nil {
		t.Fatal(err)
	}
	if copies != 0 {
		t.Errorf("%d payload copies outside exchange_bodies and statuses, want 0", copies)
	}

	// A case and its status as a binary before migration 4 wrote them.
	w, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, q := range []string{
		`INSERT INTO exchanges (id, from_division, to_division, source_case_no, request, translated, log_index, leaf_hash, created_ns)
			VALUES ('old', '440605', '440103', 'OLD-1', X'3C6F6C643E', X'7B226F6C64223A317D', 90, zeroblob(32), 1)`,
		`INSERT INTO statuses (exchange_id, seq, from_division, to_division, state, at_ns, request_digest, request, translated, log_index, leaf_hash, created_ns)
			VALUES ('old', 1, '440103', '440605', 'accepted', 1, 'd0', X'01', X'02', 91, zeroblob(32), 1)`,
		`INSERT INTO deliveries (id, exchange_id, seq, to_division, kind, payload, event_index, state, created_ns, updated_ns)
			VALUES ('old', 'old', 0, '440103', 'case', X'7B226F6C64223A317D', 90, 'delivered', 1, 1)`,
		`INSERT INTO deliveries (id, exchange_id, seq, to_division, kind, payload, event_index, state, created_ns, updated_ns)
			VALUES ('old.1', 'old', 1, '440605', 'status', X'02', 91, 'queued', 1, 1)`,
	} {
		if _, err := w.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}

	for _, c := range []struct{ exchange, request, translated string }{
		{ex.ID, "<CASE>new</CASE>", `{"caseId":"new"}`},
		{"old", "<old>", `{"old":1}`},
	} {
		got, err := s.GetExchange(ctx, c.exchange)
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Request) != c.request || string(got.Translated) != c.translated {
			t.Errorf("exchange %s: request %q, translated %q; want %q, %q", c.exchange, got.Request, got.Translated, c.request, c.translated)
		}
		d, err := s.GetDelivery(ctx, c.exchange)
		if err != nil {
			t.Fatal(err)
		}
		if string(d.Payload) != c.translated {
			t.Errorf("delivery %s: payload %q, want %q", c.exchange, d.Payload, c.translated)
		}
	}
	if d, err := s.GetDelivery(ctx, "old.1"); err != nil || string(d.Payload) != "\x02" {
		t.Errorf("old status delivery: %v, %v", d, err)
	}

	// The claim reads the record from where it is.
	now := time.Now()
	claimed, err := s.ClaimDeliveriesFor(ctx, "440103", now, now.Add(time.Minute), 10)
	if err != nil || len(claimed) != 1 || string(claimed[0].Payload) != `{"caseId":"new"}` {
		t.Fatalf("claim of the new case: %+v, %v", claimed, err)
	}
	if err := s.FinishDelivery(ctx, ex.ID, store.DeliveryOutcome{State: store.StateDelivered, Attempts: 1, PartnerCaseNo: "LW-9"}); err != nil {
		t.Fatal(err)
	}
	claimed, err = s.ClaimDeliveriesFor(ctx, "440605", now, now.Add(time.Minute), 10)
	if err != nil || len(claimed) != 2 {
		t.Fatalf("claim of the statuses: %+v, %v", claimed, err)
	}
	for _, d := range claimed {
		want := map[string]string{st.ExchangeID + ".1": "<STATUS>1</STATUS>", "old.1": "\x02"}[d.ID]
		if string(d.Payload) != want {
			t.Errorf("claimed %s: payload %q, want %q", d.ID, d.Payload, want)
		}
	}
	if got, err := s.GetExchange(ctx, ex.ID); err != nil || got.TargetCaseNo != "LW-9" || string(got.Request) != "<CASE>new</CASE>" {
		t.Errorf("after delivery: %+v, %v", got, err)
	}
}

// TestRecordStoredAsDelta: a translated record that carries its request's
// materials takes a fraction of its size in exchange_bodies (delta.go),
// and reads back whole.
func TestRecordStoredAsDelta(t *testing.T) {
	ctx := context.Background()
	s, path := openFile(t)
	content := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("scan of a business licence "), 700))
	req := "<CASE><CONTENT>" + content + "</CONTENT></CASE>"
	rec := `{"materials":[{"content":"` + content + `"}]}`
	ex := &store.Exchange{From: "440605", To: "440103", SourceCaseNo: "BIG-1", Request: []byte(req), Translated: []byte(rec)}
	if _, err := s.CreateExchange(ctx, ex, store.LogAppend{Kind: "exchange", Bytes: []byte(`{}`)}, nil); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var reqLen, recLen int
	if err := db.QueryRow(`SELECT length(request), length(translated) FROM exchange_bodies WHERE exchange_id = ?`, ex.ID).Scan(&reqLen, &recLen); err != nil {
		t.Fatal(err)
	}
	if reqLen != len(req) || recLen > 100 {
		t.Errorf("stored request %d bytes (want %d), record %d bytes (want under 100 of %d)", reqLen, len(req), recLen, len(rec))
	}
	got, err := s.GetExchange(ctx, ex.ID)
	if err != nil || string(got.Translated) != rec {
		t.Errorf("read back: %v", err)
	}
}
