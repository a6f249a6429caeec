package gateway

// Personal data (issue 10, part 6): after a run through every path —
// accepted cases both ways, deliveries, a status walk to a final state,
// a policy denial, validation and malformed refusals, lookups, an export
// and an evidence bundle — nothing the gateway wrote holds an ID number,
// a mobile number or a name of the fixtures, outside the store's payload
// columns (the request and translated records, the outbox payload).

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/adapters/liwan"
	"github.com/tongban/tongban/adapters/nanhai"
	"github.com/tongban/tongban/sim"
)

// relFixtures is shared/fixtures, a sibling of the repository.
var relFixtures = filepath.Join("..", "..", "shared", "fixtures")

// payloadColumns are where personal data may be, by table.
var payloadColumns = map[string]map[string]bool{
	"exchanges":       {"request": true, "translated": true},
	"exchange_bodies": {"request": true, "translated": true},
	"statuses":        {"request": true, "translated": true},
	"deliveries":      {"payload": true},
}

// personalData returns the personal data of a case: ID numbers, mobiles
// in both districts' forms, and the names of people (applicant, legal
// representative, contact, clerk).
func personalData(c *adapters.Case) []string {
	var out []string
	for _, p := range []adapters.Party{c.Applicant, c.Contact} {
		out = append(out, p.IDNumber, p.Name)
		if p.LegalRepresentative != "" {
			out = append(out, p.LegalRepresentative)
		}
		if p.Mobile != "" {
			out = append(out, p.Mobile, strings.TrimPrefix(p.Mobile, "+86"))
		}
	}
	return append(out, c.ReceivedBy.Clerk)
}

// needles are the byte strings to look for: each value in UTF-8 and, when
// it differs, in GBK (Nanhai's encoding).
func needles(tb testing.TB, values []string) map[string][]byte {
	tb.Helper()
	out := map[string][]byte{}
	for _, v := range values {
		if v == "" {
			continue
		}
		out[v] = []byte(v)
		g, err := simplifiedchinese.GBK.NewEncoder().String(v)
		if err == nil && g != v {
			out[v+" (GBK)"] = []byte(g)
		}
	}
	return out
}

func readFixture(tb testing.TB, name, file string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(relFixtures, name, file))
	if err != nil {
		tb.Skipf("shared fixtures not present: %v", err)
	}
	return b
}

func TestNoPersonalDataOutsidePayloads(t *testing.T) {
	e := newRelEnv(t)
	ctx := context.Background()
	var pii []string

	// The fixtures, as their districts send them.
	llc := readFixture(t, "nanhai-llc-setup", "case.xml")
	hukou := readFixture(t, "nanhai-hukou-denied", "case.xml")
	physician := readFixture(t, "liwan-physician", "case.json")
	approved := readFixture(t, "nanhai-status-approved", "status.xml")
	for _, f := range []struct {
		codec adapters.Codec
		body  []byte
	}{{nanhai.Codec, llc}, {nanhai.Codec, hukou}, {liwan.Codec, physician}} {
		c, err := f.codec.DecodeCase(f.body)
		if err != nil {
			t.Fatal(err)
		}
		pii = append(pii, personalData(c)...)
	}
	// The simulators' samples (the chaos run and the demo send these).
	for _, p := range []*relSim{e.nanhai, e.liwan} {
		b, err := p.SampleCase(500, sim.SampleOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c, err := p.Codec().DecodeCase(b)
		if err != nil {
			t.Fatal(err)
		}
		pii = append(pii, personalData(c)...)
	}

	send := func(p *relSim, body []byte, status bool, want int) *sim.Response {
		t.Helper()
		var resp *sim.Response
		var err error
		if status {
			resp, err = p.SendStatus(ctx, e.url, body)
		} else {
			resp, err = p.SendCase(ctx, e.url, body)
		}
		if err != nil || resp.Status != want {
			t.Fatalf("answer %v %+v %s, want %d", err, resp, resp.Body, want)
		}
		return resp
	}
	targetOf := func(id string) string {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			ex, err := e.srv.Store.GetExchange(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if ex.TargetCaseNo != "" {
				return ex.TargetCaseNo
			}
		}
		t.Fatalf("exchange %s not delivered", id)
		return ""
	}

	// The fixtures are numbered 0001 on their day; move Nanhai's simulator
	// past that number, so that the one it assigns does not collide.
	for range 5 {
		if _, _, err := e.nanhai.NextCase(sim.SampleOptions{At: time.Date(2026, 11, 27, 9, 0, 0, 0, time.FixedZone("CST", 8*3600))}); err != nil {
			t.Fatal(err)
		}
	}
	rcLLC := send(e.nanhai, llc, false, http.StatusAccepted)
	send(e.nanhai, llc, false, http.StatusOK) // resent: the same receipt
	send(e.nanhai, hukou, false, http.StatusForbidden)
	rcPhys := send(e.liwan, physician, false, http.StatusAccepted)
	// The fixture status, addressed to the number Nanhai's simulator gave
	// the physician case.
	nhNo := targetOf(rcPhys.Receipt.ExchangeID)
	send(e.nanhai, bytes.Replace(approved, []byte("440605202611270201"), []byte(nhNo), 1), true, http.StatusAccepted)
	// Liwan walks the company set-up to approval.
	lwNo := targetOf(rcLLC.Receipt.ExchangeID)
	for _, st := range []adapters.State{adapters.Accepted, adapters.InReview, adapters.Approved} {
		b, err := e.liwan.SampleStatus(lwNo, st, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		send(e.liwan, b, true, http.StatusAccepted)
	}
	// Samples both ways, an invalid one and a malformed one.
	for _, p := range []*relSim{e.nanhai, e.liwan} {
		b, err := p.SampleCase(500, sim.SampleOptions{})
		if err != nil {
			t.Fatal(err)
		}
		send(p, b, false, http.StatusAccepted)
	}
	bad := bytes.Replace(physician, []byte(`"mobile": "+8613912345678"`), []byte(`"mobile": "13912345678"`), 1)
	if bytes.Equal(bad, physician) {
		t.Fatal("fixture changed: no mobile to spoil")
	}
	bad = bytes.Replace(bad, []byte("LW2026112700123"), []byte("LW2026112700777"), 1)
	send(e.liwan, bad, false, http.StatusUnprocessableEntity)
	send(e.nanhai, append(bytes.Clone(llc[:len(llc)/2]), "<LEGAL>张伟"...), false, http.StatusBadRequest)
	// Lookups by either number, by both districts.
	for _, no := range []string{"440605202611270001", lwNo, "LW2026112700123", nhNo} {
		for _, p := range []*relSim{e.nanhai, e.liwan} {
			if r, err := p.Track(ctx, e.url, no); err != nil || r.Status != http.StatusOK {
				t.Fatalf("track %s: %v %+v", no, err, r)
			}
		}
	}
	// Wait for every delivery, so that the acknowledgements are logged.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var open int
		if err := e.db.QueryRow(`SELECT COUNT(*) FROM deliveries WHERE state <> 'delivered'`).Scan(&open); err != nil {
			t.Fatal(err)
		}
		if open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries still open", open)
		}
	}
	if err := e.srv.Log.Sync(ctx); err != nil {
		t.Fatal(err)
	}

	// Everything the gateway wrote or serves about the run.
	written := map[string][]byte{"process log": e.procLog.Bytes()}
	rows, err := e.db.Query(`SELECT name FROM sqlite_master WHERE type = 'table'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	payloadSeen := 0
	for _, table := range tables {
		dumpTable(t, e, table, func(column string, v []byte) {
			if payloadColumns[table][column] {
				payloadSeen++
				return
			}
			written["store "+table+"."+column] = append(written["store "+table+"."+column], v...)
		})
	}
	if payloadSeen == 0 {
		t.Fatal("no payload column read: the exclusion list is stale")
	}
	written["/metrics"] = e.do(t, e.request(t, http.MethodGet, "/metrics", "", nil)).Body
	export := e.audit(t, fmt.Sprintf("/audit/v1/export?from=0&to=%d", time.Now().Add(time.Hour).Unix()))
	evidence := e.audit(t, "/audit/v1/exchanges/"+rcLLC.Receipt.ExchangeID+"/evidence")
	for name, b := range map[string][]byte{"export": export, "evidence": evidence} {
		tr := tar.NewReader(bytes.NewReader(b))
		files := 0
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			content, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			written[name+" "+h.Name] = content
			files++
		}
		if files < 3 {
			t.Fatalf("%s holds %d files", name, files)
		}
	}

	// The test must be able to fail: the payloads do hold the data.
	var payloads []byte
	for table, cols := range payloadColumns {
		dumpTable(t, e, table, func(column string, v []byte) {
			if cols[column] {
				payloads = append(payloads, v...)
			}
		})
	}
	ns := needles(t, pii)
	found := 0
	for _, n := range ns {
		if bytes.Contains(payloads, n) {
			found++
		}
	}
	if found < len(ns)/2 {
		t.Fatalf("only %d of %d needles found in the payloads: the search does not work", found, len(ns))
	}

	for where, b := range written {
		for name, n := range ns {
			if i := bytes.Index(b, n); i >= 0 {
				lo, hi := max(0, i-60), min(len(b), i+len(n)+60)
				t.Errorf("%s holds %s: …%q…", where, name, b[lo:hi])
			}
		}
	}
	t.Logf("%d needles searched in %d places (%d log lines)", len(ns), len(written), bytes.Count(written["process log"], []byte("\n")))
}

// dumpTable calls f with every value of every row of table, as bytes.
func dumpTable(tb testing.TB, e *relEnv, table string, f func(column string, v []byte)) {
	tb.Helper()
	rows, err := e.db.Query(`SELECT * FROM "` + table + `"`)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		tb.Fatal(err)
	}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			tb.Fatal(err)
		}
		for i, v := range vals {
			switch v := v.(type) {
			case []byte:
				f(cols[i], v)
			case string:
				f(cols[i], []byte(v))
			case nil:
			default:
				f(cols[i], []byte(fmt.Sprint(v)))
			}
		}
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
}

// audit GETs an auditor route, signed by the auditor's key, and returns
// the body of its 200 answer.
func (e *relEnv) audit(tb testing.TB, path string) []byte {
	tb.Helper()
	req, _ := e.signedRequest(tb, e.pki.Auditor, http.MethodGet, path, "", nil)
	a := e.do(tb, req)
	if a.Status != http.StatusOK {
		tb.Fatalf("GET %s: %d %s", path, a.Status, a.Body)
	}
	return a.Body
}
