package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/gateway"
	"github.com/tongban/tongban/policies"
	"github.com/tongban/tongban/sim"
)

// thirdDivision is a district the gateway knows (it has a partner key) but
// that takes part in no exchange of the tests.
const thirdDivision = "440604"

func thirdPartner(t *testing.T) *certs.Signer {
	t.Helper()
	now := time.Now()
	s, err := pki.IssueLeaf(certs.Identity{Role: certs.RolePartner, Partner: "liwan", Division: thirdDivision}, now.Add(-time.Hour), now.Add(time.Hour))
	mustOK(t, err)
	return s
}

// sendStatus sends a status update and checks the answer's status.
func sendStatus(t *testing.T, e *env, p *simServer, caseNo string, st adapters.State, at time.Time, want int) *sim.Response {
	t.Helper()
	body, err := p.SampleStatus(caseNo, st, at)
	mustOK(t, err)
	resp, err := p.SendStatus(context.Background(), e.url, body)
	if want >= 400 {
		mustOK(t, err)
		if resp.Status != want {
			t.Fatalf("%s %s: HTTP %d, want %d: %s", p.Division(), st, resp.Status, want, resp.Body)
		}
		return resp
	}
	return send(t, string(st), resp, err, want)
}

// view asks the gateway for an exchange (GET path) as signer.
func view(t *testing.T, e *env, signer *certs.Signer, path string) *gateway.ExchangeView {
	t.Helper()
	a := e.signed(t, signer, http.MethodGet, path, "", nil)
	if a.Status != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d %s", path, a.Status, a.Body)
	}
	var v gateway.ExchangeView
	if err := json.Unmarshal(a.Body, &v); err != nil {
		t.Fatal(err)
	}
	return &v
}

// TestStatusRules walks a REMOTE_RECEIPT case (Nanhai sends, Liwan
// handles) through gateway-api.md's rules: the handling district sends
// every state, the applicant's district only withdrawals and only once
// delivered, anyone else 404; after a terminal state 409; updates are
// delivered in the order accepted; a resend is answered with the same
// receipt.
func TestStatusRules(t *testing.T) {
	t.Parallel()
	third := thirdPartner(t)
	e := newEnv(t, withThirdPartner(thirdDivision, third))
	ctx := context.Background()
	llc := loadFixtures(t)["nanhai-llc-setup"]
	nanhaiNo := caseOf(t, llc).CaseNo
	day := time.Now().Truncate(time.Second)

	e.liwan.Down(true)
	resp, err := e.nanhai.SendCase(ctx, e.url, llc.Input)
	id := send(t, "case", resp, err, http.StatusAccepted).Receipt.ExchangeID

	// Before Liwan acknowledged the case: Nanhai may not even withdraw.
	before := e.logSize(t)
	p := sendStatus(t, e, e.nanhai, nanhaiNo, adapters.Withdrawn, day, http.StatusConflict)
	if pr := checkProblem(t, &answer{p.Status, http.Header{"Content-Type": {p.ContentType}}, p.Body}, 409, gateway.CodeInvalidTransition, "/v1/status"); pr.Detail != "case not yet delivered" {
		t.Errorf("detail %q", pr.Detail)
	}
	checkDenied(t, e, before, gateway.CodeInvalidTransition, pki.Nanhai)

	e.liwan.Down(false)
	liwanNo := e.waitDelivered(t, id).TargetCaseNo
	if liwanNo == "" || !strings.HasPrefix(liwanNo, "LW") {
		t.Fatalf("Liwan's number %q", liwanNo)
	}

	// The applicant's district sends a state that is not a withdrawal.
	before = e.logSize(t)
	p = sendStatus(t, e, e.nanhai, nanhaiNo, adapters.Accepted, day, http.StatusForbidden)
	checkProblem(t, &answer{p.Status, http.Header{"Content-Type": {p.ContentType}}, p.Body}, 403, gateway.CodeForbidden, "/v1/status")
	checkDenied(t, e, before, gateway.CodeForbidden, pki.Nanhai)

	// Liwan names a number that is none of its cases.
	sendStatus(t, e, e.liwan, "LW2026112799999", adapters.Accepted, day, http.StatusNotFound)

	// A district that is no party to the exchange, by exchange id.
	body, err := e.liwan.SampleStatus(liwanNo, adapters.Accepted, day)
	mustOK(t, err)
	before = e.logSize(t)
	a := e.signed(t, third, http.MethodPost, "/v1/exchanges/"+id+"/status", "application/json", body)
	checkProblem(t, a, http.StatusNotFound, gateway.CodeNotFound, "/v1/exchanges/"+id+"/status")
	checkDenied(t, e, before, gateway.CodeNotFound, third)

	// The exchange id with a case number of another case.
	other, err := e.liwan.SampleStatus("LW2026112799999", adapters.Accepted, day)
	mustOK(t, err)
	resp, err = e.liwan.SendStatusOf(ctx, e.url, id, other)
	mustOK(t, err)
	if resp.Status != http.StatusNotFound {
		t.Errorf("exchange id with another case's number: HTTP %d %s", resp.Status, resp.Body)
	}

	// The walk: Liwan sends states by its number and by exchange id,
	// Nanhai a withdrawal request, Liwan resends one (200, same receipt),
	// then approves; nothing follows a terminal state.
	type step struct {
		from  *simServer
		state adapters.State
	}
	walk := []step{
		{e.liwan, adapters.Accepted},
		{e.liwan, adapters.InReview},
		{e.nanhai, adapters.WithdrawalPending},
		{e.liwan, adapters.SupplementRequested},
		{e.liwan, adapters.Approved},
	}
	for i, s := range walk {
		no := liwanNo
		if s.from == e.nanhai {
			no = nanhaiNo
		}
		at := day.Add(time.Duration(i) * time.Minute)
		var r *sim.Response
		if s.state == adapters.SupplementRequested {
			body, err := s.from.SampleStatus(no, s.state, at)
			mustOK(t, err)
			r, err = s.from.SendStatusOf(ctx, e.url, id, body)
			send(t, "by exchange id", r, err, http.StatusAccepted)
		} else {
			r = sendStatus(t, e, s.from, no, s.state, at, http.StatusAccepted)
		}
		if r.Receipt.ExchangeID != id || r.Receipt.Decision != nil || r.Receipt.State != "queued" {
			t.Errorf("status receipt %s", r.Body)
		}
		checkReceipt(t, e, r.Receipt, "status")
		if s.state == adapters.InReview {
			// The same update again: 200 and the same receipt, nothing new
			// in the log.
			before := e.logSize(t)
			again := sendStatus(t, e, s.from, no, s.state, at, http.StatusOK)
			if !bytes.Equal(again.Body, r.Body) {
				t.Errorf("resent status: receipt\n%s\nwant\n%s", again.Body, r.Body)
			}
			if es := requestEntries(t, e, before); len(es) != 0 {
				t.Errorf("a resent status wrote %d entries", len(es))
			}
		}
	}
	for _, s := range []step{{e.liwan, adapters.InReview}, {e.nanhai, adapters.Retracted}} {
		no := liwanNo
		if s.from == e.nanhai {
			no = nanhaiNo
		}
		before := e.logSize(t)
		p := sendStatus(t, e, s.from, no, s.state, day.Add(time.Hour), http.StatusConflict)
		checkProblem(t, &answer{p.Status, http.Header{"Content-Type": {p.ContentType}}, p.Body}, 409, gateway.CodeInvalidTransition, "/v1/status")
		signer := pki.Liwan
		if s.from == e.nanhai {
			signer = pki.Nanhai
		}
		checkDenied(t, e, before, gateway.CodeInvalidTransition, signer)
	}

	// Deliveries: each update to the other district, in acceptance order,
	// under <id>.<n>, addressed by the receiver's own number.
	ds := e.waitDeliveries(t, id, 1+len(walk))
	for n, d := range ds {
		if d.Seq != n || (n > 0 && d.ID != id+"."+strconv.Itoa(n)) {
			t.Errorf("delivery %d: %s seq %d", n, d.ID, d.Seq)
		}
	}
	var toNanhai []string
	for _, r := range e.nanhai.Received() {
		if r.Kind == sim.KindStatus {
			toNanhai = append(toNanhai, string(r.Status.State))
			if r.Status.CaseNo != nanhaiNo {
				t.Errorf("Nanhai received a status for %s, want %s", r.Status.CaseNo, nanhaiNo)
			}
		}
	}
	if want := "ACCEPTED IN_REVIEW SUPPLEMENT_REQUESTED APPROVED"; strings.Join(toNanhai, " ") != want {
		t.Errorf("Nanhai received %q, want %q in that order", toNanhai, want)
	}
	var toLiwan []sim.Received
	for _, r := range e.liwan.Received() {
		if r.Kind == sim.KindStatus {
			toLiwan = append(toLiwan, r)
		}
	}
	if len(toLiwan) != 1 || toLiwan[0].Status.State != adapters.WithdrawalPending || toLiwan[0].Status.CaseNo != liwanNo || toLiwan[0].IdempotencyKey != id+".3" {
		t.Errorf("Liwan received %+v", toLiwan)
	}
	if d := append(e.nanhai.Duplicates(), e.liwan.Duplicates()...); len(d) != 0 {
		t.Errorf("duplicates: %q", d)
	}

	// The history, with both districts' names, for either party.
	v := view(t, e, pki.Nanhai, "/v1/exchanges/"+id)
	var states []string
	for i, s := range v.Statuses {
		states = append(states, s.State)
		if s.Seq != i+1 || s.Delivery != "delivered" || s.Code == 0 || s.NanhaiName == "" || s.LiwanName != s.State {
			t.Errorf("status %d in the view: %+v", i, s)
		}
	}
	if want := "ACCEPTED IN_REVIEW WITHDRAWAL_PENDING SUPPLEMENT_REQUESTED APPROVED"; strings.Join(states, " ") != want {
		t.Errorf("view statuses %q, want %q", states, want)
	}
	if last := v.Statuses[len(v.Statuses)-1]; last.Code != 11 || last.NanhaiName != "办结(通过)" {
		t.Errorf("APPROVED shown as %d %s", last.Code, last.NanhaiName)
	}
}

// jointCase is a housing provident fund transfer (000131005000, the pilot
// JOINT item) sent by Nanhai, owned by Liwan.
func jointCase(t *testing.T, e *env) ([]byte, string) {
	t.Helper()
	llc := loadFixtures(t)["nanhai-llc-setup"]
	c := caseOf(t, llc)
	c.CaseNo = c.CaseNo[:len(c.CaseNo)-4] + "0777"
	c.Item = adapters.Item{BasicCode: "000131005000", ImplCode: "11440605MB2C340407000131005000", Name: "住房公积金异地转移接续"}
	c.Applicant = c.Contact
	c.Applicant.Kind, c.Applicant.Mobile = adapters.Person, ""
	c.PromisedDays = 15
	c.Materials = nil
	for _, m := range []struct{ code, title, file string }{{"M401", "身份证明", "shenfen.pdf"}, {"M402", "转移接续申请表", "zhuanyi.pdf"}} {
		content := []byte("%PDF-1.4\n% sample material: " + m.title + "\n%%EOF\n")
		c.Materials = append(c.Materials, adapters.Material{Code: m.code, Title: m.title, Form: adapters.Original,
			FileName: m.file, SM3: certs.SM3Hex(content), Size: int64(len(content)), Content: content})
	}
	b, err := e.nanhai.Codec().EncodeCase(c)
	mustOK(t, err)
	return b, c.CaseNo
}

// TestStatusJoint: in JOINT mode both districts handle the case and may
// send any state (once it is delivered), each delivered to the other.
func TestStatusJoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	body, nanhaiNo := jointCase(t, e)
	e.liwan.Down(true)
	resp, err := e.nanhai.SendCase(ctx, e.url, body)
	send(t, "joint case", resp, err, http.StatusAccepted)
	if resp.Receipt.Decision.Mode != string(adapters.ModeJoint) {
		t.Fatalf("mode %s, want JOINT", resp.Receipt.Decision.Mode)
	}
	id := resp.Receipt.ExchangeID
	day := time.Now().Truncate(time.Second)
	// JOINT or not, Nanhai's updates need Liwan's number first.
	sendStatus(t, e, e.nanhai, nanhaiNo, adapters.InReview, day, http.StatusConflict)
	e.liwan.Down(false)
	liwanNo := e.waitDelivered(t, id).TargetCaseNo

	sendStatus(t, e, e.nanhai, nanhaiNo, adapters.InReview, day, http.StatusAccepted)
	sendStatus(t, e, e.liwan, liwanNo, adapters.Accepted, day.Add(time.Minute), http.StatusAccepted)
	sendStatus(t, e, e.nanhai, nanhaiNo, adapters.SupplementRequested, day.Add(2*time.Minute), http.StatusAccepted)
	sendStatus(t, e, e.liwan, liwanNo, adapters.Approved, day.Add(3*time.Minute), http.StatusAccepted)
	sendStatus(t, e, e.nanhai, nanhaiNo, adapters.InReview, day.Add(4*time.Minute), http.StatusConflict)

	ds := e.waitDeliveries(t, id, 5)
	wantTo := []string{adapters.DivisionLiwan, adapters.DivisionLiwan, adapters.DivisionNanhai, adapters.DivisionLiwan, adapters.DivisionNanhai}
	for i, d := range ds {
		if d.To != wantTo[i] {
			t.Errorf("delivery %s to %s, want %s", d.ID, d.To, wantTo[i])
		}
	}
	got := map[string][]string{}
	for _, p := range []*simServer{e.nanhai, e.liwan} {
		for _, r := range p.Received() {
			if r.Kind == sim.KindStatus {
				got[p.Division()] = append(got[p.Division()], string(r.Status.State)+"@"+r.Status.CaseNo)
			}
		}
	}
	if w := "ACCEPTED@" + nanhaiNo + " APPROVED@" + nanhaiNo; strings.Join(got[adapters.DivisionNanhai], " ") != w {
		t.Errorf("Nanhai received %q, want %q", got[adapters.DivisionNanhai], w)
	}
	if w := "IN_REVIEW@" + liwanNo + " SUPPLEMENT_REQUESTED@" + liwanNo; strings.Join(got[adapters.DivisionLiwan], " ") != w {
		t.Errorf("Liwan received %q, want %q", got[adapters.DivisionLiwan], w)
	}
}

// TestLookups: GET /v1/exchanges/{id} and GET /v1/cases/{caseNo} by
// either district's number answer the same exchange to both parties, and
// 404 to anyone else, an exchange that exists included; lookups are not
// logged.
func TestLookups(t *testing.T) {
	t.Parallel()
	third := thirdPartner(t)
	e := newEnv(t, withThirdPartner(thirdDivision, third))
	f := loadFixtures(t)["liwan-physician"]
	resp, err := e.liwan.SendCase(context.Background(), e.url, f.Input)
	id := send(t, "case", resp, err, http.StatusAccepted).Receipt.ExchangeID
	ex := e.waitDelivered(t, id)
	liwanNo, nanhaiNo := ex.SourceCaseNo, ex.TargetCaseNo

	before := e.logSize(t)
	paths := []string{"/v1/exchanges/" + id, "/v1/cases/" + url.PathEscape(liwanNo), "/v1/cases/" + url.PathEscape(nanhaiNo)}
	for _, signer := range []*certs.Signer{pki.Nanhai, pki.Liwan} {
		for _, path := range paths {
			v := view(t, e, signer, path)
			if v.ExchangeID != id || v.From.CaseNo != liwanNo || v.To.CaseNo != nanhaiNo || v.From.Division != adapters.DivisionLiwan ||
				v.To.Division != adapters.DivisionNanhai || v.From.Partner != "liwan" || v.To.Partner != "nanhai" ||
				v.Item != "000114001000" || v.Mode != "REMOTE_RECEIPT" || v.Delivery.State != "delivered" || v.LogIndex != resp.Receipt.LogIndex {
				t.Errorf("GET %s: %+v", path, v)
			}
		}
	}
	for _, signer := range []*certs.Signer{third, pki.Admin, pki.Auditor} {
		for _, path := range append(paths, "/v1/exchanges/01JD000000000000000000000", "/v1/cases/LW2026112799999") {
			a := e.signed(t, signer, http.MethodGet, path, "", nil)
			checkProblem(t, a, http.StatusNotFound, gateway.CodeNotFound, path)
			if strings.Contains(string(a.Body), nanhaiNo) && !strings.Contains(path, nanhaiNo) {
				t.Errorf("a 404 leaks the case: %s", a.Body)
			}
		}
	}
	// Absent and foreign exchanges answer alike.
	x := e.signed(t, third, http.MethodGet, "/v1/exchanges/"+id, "", nil)
	y := e.signed(t, third, http.MethodGet, "/v1/exchanges/01JD000000000000000000000", "", nil)
	var px, py problem
	mustOK(t, json.Unmarshal(x.Body, &px))
	mustOK(t, json.Unmarshal(y.Body, &py))
	if px.Detail != py.Detail || px.Title != py.Title {
		t.Errorf("a foreign exchange (%s) answers differently from an absent one (%s)", x.Body, y.Body)
	}
	if es := requestEntries(t, e, before); len(es) != 0 {
		t.Errorf("lookups wrote %d log entries", len(es))
	}
}

// TestResubmission: the same case again is 200 with the same receipt
// bytes (freshly signed), nothing new in the log; other content under the
// same case number is 409 duplicate_conflict.
func TestResubmission(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	for _, name := range []string{"nanhai-llc-setup", "liwan-physician"} {
		f := loadFixtures(t)[name]
		p := e.sim(f.Exp.From)
		first, err := p.SendCase(ctx, e.url, f.Input)
		send(t, name, first, err, http.StatusAccepted)
		before := e.logSize(t)
		again, err := p.SendCase(ctx, e.url, f.Input)
		send(t, name+" again", again, err, http.StatusOK)
		if !bytes.Equal(again.Body, first.Body) {
			t.Errorf("%s: receipt\n%s\nwant\n%s", name, again.Body, first.Body)
		}
		if again.ReceiptSignature.Signature == first.ReceiptSignature.Signature {
			t.Errorf("%s: the replayed receipt was not signed anew", name)
		}
		if es := requestEntries(t, e, before); len(es) != 0 {
			t.Errorf("%s: a resubmission wrote %d entries", name, len(es))
		}
		changed := variant(t, f, func(c *adapters.Case) { c.ReceivedBy.Clerk = "另一人" })
		resp, err := p.SendCase(ctx, e.url, changed)
		mustOK(t, err)
		signer := pki.Nanhai
		if f.Exp.From == "liwan" {
			signer = pki.Liwan
		}
		checkProblem(t, &answer{resp.Status, http.Header{"Content-Type": {resp.ContentType}}, resp.Body}, http.StatusConflict, gateway.CodeDuplicateConflict, "/v1/exchanges")
		checkDenied(t, e, before, gateway.CodeDuplicateConflict, signer)
		e.waitDelivered(t, first.Receipt.ExchangeID)
	}
	if len(e.nanhai.Received()) != 1 || len(e.liwan.Received()) != 1 {
		t.Errorf("deliveries: Nanhai %d, Liwan %d, want one each", len(e.nanhai.Received()), len(e.liwan.Received()))
	}
}

// TestResubmissionAfterPolicyChange: once a case is accepted, sending it
// again is answered with its receipt even after a policy that would refuse
// it is activated (no decision is taken again, nothing logged), and other
// content under its number is still 409 duplicate_conflict, not 403.
func TestResubmissionAfterPolicyChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	files := policies.Pilot().Files()
	files[policies.CatalogPath] = bytes.ReplaceAll(files[policies.CatalogPath], []byte(`"cross_district": true`), []byte(`"cross_district": false`))
	b, err := policies.BundleFromFiles(files)
	mustOK(t, err)
	closed, err := policies.Compile(ctx, b)
	mustOK(t, err)
	for _, name := range []string{"nanhai-llc-setup", "liwan-physician"} {
		f := loadFixtures(t)[name]
		p := e.sim(f.Exp.From)
		first, err := p.SendCase(ctx, e.url, f.Input)
		send(t, name, first, err, http.StatusAccepted)
		open := e.srv.Policy.Activate(closed)
		before := e.logSize(t)
		again, err := p.SendCase(ctx, e.url, f.Input)
		send(t, name+" again, policy closed", again, err, http.StatusOK)
		if !bytes.Equal(again.Body, first.Body) {
			t.Errorf("%s: receipt\n%s\nwant\n%s", name, again.Body, first.Body)
		}
		if es := requestEntries(t, e, before); len(es) != 0 {
			t.Errorf("%s: a resubmission wrote %d entries", name, len(es))
		}
		changed := variant(t, f, func(c *adapters.Case) { c.ReceivedBy.Clerk = "另一人" })
		resp, err := p.SendCase(ctx, e.url, changed)
		mustOK(t, err)
		checkProblem(t, &answer{resp.Status, http.Header{"Content-Type": {resp.ContentType}}, resp.Body}, http.StatusConflict, gateway.CodeDuplicateConflict, "/v1/exchanges")
		e.srv.Policy.Activate(open)
	}
}

// TestDecisionMetrics: a second case with the same policy input on the
// same day is decided from memory (the pilot declares its decision
// day-granular), and /metrics counts both kinds of decision.
func TestDecisionMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	f := loadFixtures(t)["liwan-physician"]
	resp, err := e.liwan.SendCase(ctx, e.url, f.Input)
	send(t, "first", resp, err, http.StatusAccepted)
	second := variant(t, f, func(c *adapters.Case) { c.CaseNo = c.CaseNo[:len(c.CaseNo)-4] + "0777" })
	resp, err = e.liwan.SendCase(ctx, e.url, second)
	send(t, "second", resp, err, http.StatusAccepted)
	a := e.do(t, e.request(t, http.MethodGet, "/metrics", ""))
	for _, want := range []string{
		`tongban_policy_decisions_total{source="evaluated"} 1`,
		`tongban_policy_decisions_total{source="remembered"} 1`,
	} {
		if !strings.Contains(string(a.Body), want) {
			t.Errorf("/metrics has no %s:\n%s", want, grepLines(string(a.Body), "policy_decisions"))
		}
	}
}

// TestOperations: /healthz, /readyz and /metrics answer without a
// signature and reveal nothing about cases.
func TestOperations(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := loadFixtures(t)["liwan-physician"]
	resp, err := e.liwan.SendCase(context.Background(), e.url, f.Input)
	send(t, "case", resp, err, http.StatusAccepted)
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready", "/metrics": "tongban_requests_total"} {
		a := e.do(t, e.request(t, http.MethodGet, path, ""))
		if a.Status != http.StatusOK || !strings.Contains(string(a.Body), want) {
			t.Errorf("GET %s: HTTP %d %.200s", path, a.Status, a.Body)
		}
		for _, secret := range append(personalData(caseOf(t, f)), caseOf(t, f).CaseNo, resp.Receipt.ExchangeID) {
			if strings.Contains(string(a.Body), secret) {
				t.Errorf("GET %s reveals %q", path, secret)
			}
		}
	}
	if a := e.do(t, e.request(t, http.MethodGet, "/metrics", "")); !strings.Contains(string(a.Body), `tongban_requests_total{code="ok",method="submit"} 1`) {
		t.Errorf("the accepted submission is not counted:\n%s", grepLines(string(a.Body), "tongban_requests_total"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestApplicantDistrictStatus: Liwan, where the physician applied, may not
// send Nanhai's handling states for it (403 forbidden, logged), but may
// send a withdrawal once Nanhai has the case.
func TestApplicantDistrictStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := loadFixtures(t)["liwan-physician"]
	resp, err := e.liwan.SendCase(context.Background(), e.url, f.Input)
	id := send(t, "case", resp, err, http.StatusAccepted).Receipt.ExchangeID
	ex := e.waitDelivered(t, id)
	day := time.Now().Truncate(time.Second)
	for _, st := range []adapters.State{adapters.Accepted, adapters.Approved, adapters.Denied} {
		before := e.logSize(t)
		p := sendStatus(t, e, e.liwan, ex.SourceCaseNo, st, day, http.StatusForbidden)
		checkProblem(t, &answer{p.Status, http.Header{"Content-Type": {p.ContentType}}, p.Body}, 403, gateway.CodeForbidden, "/v1/status")
		checkDenied(t, e, before, gateway.CodeForbidden, pki.Liwan)
	}
	for i, st := range []adapters.State{adapters.WithdrawalPending, adapters.Retracted} {
		sendStatus(t, e, e.liwan, ex.SourceCaseNo, st, day.Add(time.Duration(i)*time.Minute), http.StatusAccepted)
	}
	e.waitDeliveries(t, id, 3)
}

// TestRateLimited: a partner over its rate gets 429 rate_limited with
// Retry-After, as problem+json; the refusal is not written to the log.
func TestRateLimited(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(_ testing.TB, cfg *gateway.Config) {
		for i := range cfg.Partners {
			if cfg.Partners[i].ID == "liwan" {
				cfg.Partners[i].Limits = gateway.LimitsConfig{RatePerS: 0.001, Burst: 1, Concurrency: 4}
			}
		}
	})
	f := loadFixtures(t)["liwan-physician"]
	resp, err := e.liwan.SendCase(context.Background(), e.url, f.Input)
	send(t, "case", resp, err, http.StatusAccepted)
	before := e.logSize(t)
	a := e.signed(t, pki.Liwan, http.MethodPost, "/v1/exchanges", "application/json", f.Input)
	checkProblem(t, a, http.StatusTooManyRequests, gateway.CodeRateLimited, "/v1/exchanges")
	if ra, err := strconv.Atoi(a.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After %q", a.Header.Get("Retry-After"))
	}
	checkNoEntry(t, e, before)
	// Nanhai's allowance is its own.
	resp, err = e.nanhai.SendCase(context.Background(), e.url, loadFixtures(t)["nanhai-llc-setup"].Input)
	send(t, "Nanhai's case", resp, err, http.StatusAccepted)
}
