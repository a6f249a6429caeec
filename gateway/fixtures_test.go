package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"testing"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/gateway"
	"github.com/tongban/tongban/internal/fixturetest"
	"github.com/tongban/tongban/policies"
	"github.com/tongban/tongban/sim"
)

// The samples: a copy committed in testdata/fixtures (so the test never
// skips), and the shared originals beside the repository when present
// (a shared sample overrides the copy of the same name; new shared samples
// are tested too).
var fixtureDirs = []string{
	filepath.Join("testdata", "fixtures"),
	filepath.Join("..", "..", "shared", "fixtures"),
}

// fixture is a sample: its expect.json and the record its sender sends.
type fixture = fixturetest.Sample

// loadFixtures reads every sample by name.
func loadFixtures(tb testing.TB) map[string]*fixture {
	tb.Helper()
	return fixturetest.Load(tb, fixtureDirs...)
}

// TestFixtures submits every sample over real HTTP, signed by the partner
// that sends it, to a gateway on a real SQLite file, and checks the answer
// (status, receipt or problem), the log entry, the stored translation
// (byte for byte what `tongban translate` prints) and the record the
// owning district receives (expect.json's delivered_*).
func TestFixtures(t *testing.T) {
	t.Parallel()
	all := loadFixtures(t)
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		f := all[name]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			switch f.Exp.Kind {
			case "case":
				submitFixture(t, e, f)
			case "status":
				statusFixture(t, e, f, all)
			default:
				t.Fatalf("unknown kind %q", f.Exp.Kind)
			}
		})
	}
}

// submitFixture sends a case sample and checks everything about its
// answer; for an accepted case it waits for the delivery and returns the
// exchange id.
func submitFixture(t *testing.T, e *env, f *fixture) string {
	t.Helper()
	from := e.sim(f.Exp.From)
	before := e.logSize(t)
	resp, err := from.SendCase(context.Background(), e.url, f.Input)
	if err != nil {
		t.Fatal(err)
	}
	c, decErr := from.Codec().DecodeCase(f.Input)
	var pii []string
	if decErr == nil {
		pii = personalData(c)
		defer checkNoPersonalData(t, e, before, pii)
	}
	signer := pki.Nanhai
	if f.Exp.From == "liwan" {
		signer = pki.Liwan
	}
	switch f.Exp.Result {
	case "ok":
		send(t, f.Name, resp, nil, http.StatusAccepted)
		rc := resp.Receipt
		if rc.State != "queued" || rc.Decision == nil || !rc.Decision.Allow || rc.Decision.Mode != f.Exp.Decision.Mode {
			t.Errorf("receipt %s, want queued and allowed in mode %s", resp.Body, f.Exp.Decision.Mode)
		}
		if rc.Decision.Revision != e.srv.Policy.Load().Revision() {
			t.Errorf("receipt revision %s, active %s", rc.Decision.Revision, e.srv.Policy.Load().Revision())
		}
		en := checkReceipt(t, e, rc, "exchange")
		checkExchangeEntry(t, en.Bytes, f)
		ex, err := e.srv.Store.GetExchange(context.Background(), rc.ExchangeID)
		mustOK(t, err)
		if want := translateLikeCLI(t, f); !bytes.Equal(ex.Translated, want) {
			t.Errorf("stored translation differs from `tongban translate`:\n%s\nwant\n%s", ex.Translated, want)
		}
		if !bytes.Equal(ex.Request, f.Input) {
			t.Error("stored request differs from the body sent")
		}
		fixturetest.CheckDelivered(t, f.Exp, ex.Translated)
		e.waitDelivered(t, rc.ExchangeID)
		got := received(t, e.other(f.Exp.From), rc.ExchangeID)
		if got.Kind != sim.KindCase || !got.Accepted || !bytes.Equal(got.Body, ex.Translated) {
			t.Errorf("the owning district received %+v, want the stored translation", got)
		}
		return rc.ExchangeID
	case "denied":
		p := checkProblem(t, &answer{Status: resp.Status, Header: http.Header{"Content-Type": {resp.ContentType}}, Body: resp.Body},
			http.StatusForbidden, gateway.CodePolicyDenied, "/v1/exchanges")
		if p.Decision == nil || p.Decision.Allow {
			t.Fatalf("problem decision %s", resp.Body)
		}
		var codes []string
		for _, r := range p.Decision.Reasons {
			codes = append(codes, r.Code)
			if r.Message == "" {
				t.Errorf("reason %s without a message", r.Code)
			}
		}
		if !slices.Equal(codes, f.Exp.Decision.Reasons) {
			t.Errorf("reasons %q, want %q", codes, f.Exp.Decision.Reasons)
		}
		if !slices.Equal(nonNil(p.Decision.MissingMaterials), nonNil(f.Exp.Decision.MissingMaterials)) {
			t.Errorf("missing materials %q, want %q", p.Decision.MissingMaterials, f.Exp.Decision.MissingMaterials)
		}
		d := checkDenied(t, e, before, gateway.CodePolicyDenied, signer)
		var in policies.Input
		if err := json.Unmarshal(d.PolicyInput, &in); err != nil || in.From != from.Division() || in.BasicCode == "" {
			t.Errorf("denied entry's policy_input %s (%v)", d.PolicyInput, err)
		}
		var dec struct {
			Allow    *bool  `json:"allow"`
			Revision string `json:"revision"`
		}
		if err := json.Unmarshal(d.Decision, &dec); err != nil || dec.Allow == nil || *dec.Allow || dec.Revision != e.srv.Policy.Load().Revision() {
			t.Errorf("denied entry's decision %s (%v)", d.Decision, err)
		}
	case "invalid":
		p := checkProblem(t, &answer{Status: resp.Status, Header: http.Header{"Content-Type": {resp.ContentType}}, Body: resp.Body},
			http.StatusUnprocessableEntity, gateway.CodeValidationFailed, "/v1/exchanges")
		var fields []string
		for _, fe := range p.Errors {
			fields = append(fields, fe.Field)
		}
		if !slices.Equal(fields, f.Exp.Fields) {
			t.Errorf("fields %q, want %q", fields, f.Exp.Fields)
		}
		d := checkDenied(t, e, before, gateway.CodeValidationFailed, signer)
		if !slices.Equal(d.Fields, fields) {
			t.Errorf("denied entry's fields %q, want %q", d.Fields, fields)
		}
	case "malformed":
		checkProblem(t, &answer{Status: resp.Status, Header: http.Header{"Content-Type": {resp.ContentType}}, Body: resp.Body},
			http.StatusBadRequest, gateway.CodeMalformed, "/v1/exchanges")
		checkDenied(t, e, before, gateway.CodeMalformed, signer)
	default:
		t.Fatalf("unknown result %q", f.Exp.Result)
	}
	return ""
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// checkExchangeEntry checks an exchange entry's fields against the sample.
func checkExchangeEntry(t *testing.T, b []byte, f *fixture) {
	t.Helper()
	var en struct {
		From       string `json:"from"`
		To         string `json:"to"`
		Item       string `json:"item"`
		SourceCase string `json:"source_case"`
		Decision   struct {
			Allow          bool   `json:"allow"`
			Mode           string `json:"mode"`
			TargetImplCode string `json:"target_impl_code"`
			PromisedDays   int    `json:"promised_days"`
			Revision       string `json:"revision"`
		} `json:"decision"`
		Translated struct {
			Digest string `json:"digest"`
		} `json:"translated"`
	}
	if err := json.Unmarshal(b, &en); err != nil {
		t.Fatal(err)
	}
	d := en.Decision
	if !d.Allow || d.Mode != f.Exp.Decision.Mode || d.TargetImplCode != f.Exp.Decision.TargetImplCode ||
		d.PromisedDays != f.Exp.Decision.PromisedDays || d.Revision == "" {
		t.Errorf("entry decision %+v, want %+v", d, f.Exp.Decision)
	}
	if en.Translated.Digest == "" || en.SourceCase == "" || en.Item == "" {
		t.Errorf("entry %s lacks translated digest, source case or item", b)
	}
}

// translateLikeCLI is what `tongban translate --from FROM FILE` prints for
// a case: the embedded pilot bundle, the pilot partners.
func translateLikeCLI(t *testing.T, f *fixture) []byte {
	t.Helper()
	ctx := context.Background()
	engine, err := policies.Compile(ctx, policies.Pilot())
	mustOK(t, err)
	partners := gateway.PilotPartners()
	src := partners.ByID(f.Exp.From)
	c, err := src.Codec.DecodeCase(f.Input)
	mustOK(t, err)
	tr, err := gateway.TranslateCase(ctx, engine, partners, src, c)
	mustOK(t, err)
	return tr.Record
}

// statusFixture sets up the case a status sample belongs to (submitted and
// delivered for real), then sends the status and checks its delivery.
func statusFixture(t *testing.T, e *env, f *fixture, all map[string]*fixture) {
	t.Helper()
	if f.Exp.Setup == nil {
		t.Fatal("a status sample without setup")
	}
	setup := all[f.Exp.Setup.Fixture]
	if setup == nil {
		t.Fatalf("setup sample %s missing", f.Exp.Setup.Fixture)
	}
	handler := e.other(setup.Exp.From)
	burnNumbers(t, handler.Partner, f.Exp.Setup.AckCaseNo)
	id := submitFixture(t, e, setup)
	ex := e.waitDelivered(t, id)
	body := f.Input
	if ex.TargetCaseNo != f.Exp.Setup.AckCaseNo {
		// The simulated district numbers by today's date; the sample's
		// acknowledgement number is of its own day.
		t.Logf("acknowledged as %s, not %s: the status names the number assigned", ex.TargetCaseNo, f.Exp.Setup.AckCaseNo)
		body = bytes.ReplaceAll(body, []byte(f.Exp.Setup.AckCaseNo), []byte(ex.TargetCaseNo))
	}
	from := e.sim(f.Exp.From)
	before := e.logSize(t)
	resp, err := from.SendStatus(context.Background(), e.url, body)
	if err != nil {
		t.Fatal(err)
	}
	switch f.Exp.Result {
	case "ok":
		send(t, f.Name, resp, nil, http.StatusAccepted)
		if resp.Receipt.Decision != nil || resp.Receipt.ExchangeID != id {
			t.Errorf("status receipt %s: want exchange %s and no decision", resp.Body, id)
		}
		checkReceipt(t, e, resp.Receipt, "status")
		sts, err := e.srv.Store.Statuses(context.Background(), id)
		mustOK(t, err)
		if len(sts) != 1 {
			t.Fatalf("%d statuses stored", len(sts))
		}
		partners := gateway.PilotPartners()
		src := partners.ByID(f.Exp.From)
		want, err := gateway.TranslateStatus(src, partners.Other(src), body, f.Exp.CaseNo)
		mustOK(t, err)
		if !bytes.Equal(sts[0].Translated, want) {
			t.Errorf("stored status translation\n%s\nwant (`tongban translate --status`)\n%s", sts[0].Translated, want)
		}
		fixturetest.CheckDelivered(t, f.Exp, sts[0].Translated)
		e.waitDeliveries(t, id, 2)
		got := received(t, e.other(f.Exp.From), id+".1")
		if got.Kind != sim.KindStatus || !got.Accepted || !bytes.Equal(got.Body, sts[0].Translated) || got.CaseNo != f.Exp.CaseNo {
			t.Errorf("the receiving district got %+v", got)
		}
	case "invalid", "malformed":
		code, status := gateway.CodeValidationFailed, http.StatusUnprocessableEntity
		if f.Exp.Result == "malformed" {
			code, status = gateway.CodeMalformed, http.StatusBadRequest
		}
		p := checkProblem(t, &answer{Status: resp.Status, Header: http.Header{"Content-Type": {resp.ContentType}}, Body: resp.Body}, status, code, "/v1/status")
		if code == gateway.CodeValidationFailed {
			var fields []string
			for _, fe := range p.Errors {
				fields = append(fields, fe.Field)
			}
			if !slices.Equal(fields, f.Exp.Fields) {
				t.Errorf("fields %q, want %q", fields, f.Exp.Fields)
			}
		}
		signer := pki.Nanhai
		if f.Exp.From == "liwan" {
			signer = pki.Liwan
		}
		checkDenied(t, e, before, code, signer)
	default:
		t.Fatalf("result %q of a status sample", f.Exp.Result)
	}
}

// burnNumbers takes numbers from the simulated district's sequence of the
// day so that the next one it assigns is want, when want is of today.
func burnNumbers(t *testing.T, p *sim.Partner, want string) {
	t.Helper()
	digits := 4 // districts.md: Nanhai numbers 4 digits a day, Liwan 5
	if p.Division() == adapters.DivisionLiwan {
		digits = 5
	}
	if len(want) <= digits {
		return
	}
	w, err := strconv.Atoi(want[len(want)-digits:])
	if err != nil || w <= 1 {
		return
	}
	for {
		_, no, err := p.NextCase(sim.SampleOptions{})
		if err != nil || len(no) != len(want) || no[:len(no)-digits] != want[:len(want)-digits] {
			return // another day: the status will be renumbered
		}
		if n, _ := strconv.Atoi(no[len(no)-digits:]); n+1 >= w {
			return
		}
	}
}

// caseOf decodes a sample case with its sender's codec.
func caseOf(t *testing.T, f *fixture) *adapters.Case {
	t.Helper()
	codec := gateway.PilotPartners().ByID(f.Exp.From).Codec
	c, err := codec.DecodeCase(f.Input)
	mustOK(t, err)
	return c
}
