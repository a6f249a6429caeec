package policies

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"golang.org/x/text/encoding/simplifiedchinese"
)

const (
	nanhai = "440605"
	liwan  = "440103"
)

var (
	pilotOnce   sync.Once
	pilotEngine *Engine
	pilotErr    error
)

// pilot is the pilot bundle compiled once for the tests of this package.
func pilot(t testing.TB) *Engine {
	t.Helper()
	pilotOnce.Do(func() { pilotEngine, pilotErr = Compile(context.Background(), Pilot()) })
	if pilotErr != nil {
		t.Fatal(pilotErr)
	}
	return pilotEngine
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

var han = regexp.MustCompile(`\p{Han}`)

// checkShape asserts what the contract says of every decision.
func checkShape(t *testing.T, d Decision) {
	t.Helper()
	if d.Allow != (len(d.Reasons) == 0) {
		t.Errorf("allow %v with reasons %v", d.Allow, d.ReasonCodes())
	}
	if d.MissingMaterials == nil || d.Reasons == nil {
		t.Errorf("missing_materials or reasons absent: %+v", d)
	}
	if !d.Allow && (d.Mode != "" || d.TargetImplCode != "" || d.PromisedDays != 0) {
		t.Errorf("denial carries mode/target/days: %+v", d)
	}
	if d.Allow && (d.Mode == "" || d.TargetImplCode == "") {
		t.Errorf("allowed without mode or target: %+v", d)
	}
	if !slices.IsSorted(d.MissingMaterials) {
		t.Errorf("missing materials not sorted: %v", d.MissingMaterials)
	}
	for _, r := range d.Reasons {
		if !han.MatchString(r.Message) {
			t.Errorf("reason %s has no Chinese message: %q", r.Code, r.Message)
		}
	}
}

// fixtureExpect is the part of a fixture's expect.json this package checks.
type fixtureExpect struct {
	From     string `json:"from"`
	Kind     string `json:"kind"`
	Result   string `json:"result"`
	Decision *struct {
		Allow            bool     `json:"allow"`
		Reasons          []string `json:"reasons"`
		MissingMaterials []string `json:"missing_materials"`
		Mode             string   `json:"mode"`
		TargetImplCode   string   `json:"target_impl_code"`
		PromisedDays     int      `json:"promised_days"`
	} `json:"decision"`
}

// nanhaiCase is the little of a Nanhai case record the decision needs.
type nanhaiCase struct {
	CatalogCode    string   `xml:"CATALOG_CODE"`
	TargetDivision string   `xml:"TARGET_DIVISION"`
	ApplyerType    string   `xml:"APPLYER_TYPE"`
	ApplyType      string   `xml:"APPLY_TYPE"`
	AcceptDate     string   `xml:"ACCEPT_DATE"`
	Materials      []string `xml:"MATERIALS>MATERIAL>CODE"`
}

// liwanCase is the little of a Liwan case record the decision needs.
type liwanCase struct {
	Item struct {
		BasicCode string `json:"basicCode"`
	} `json:"item"`
	OwnerDivision string `json:"ownerDivision"`
	Applicant     struct {
		Kind string `json:"kind"`
	} `json:"applicant"`
	Channel    string `json:"channel"`
	ReceivedBy struct {
		ReceivedAt string `json:"receivedAt"`
	} `json:"receivedBy"`
	Materials []struct {
		Code string `json:"code"`
	} `json:"materials"`
}

// Code tables A and D of contracts/districts.md, as far as fixtures use them.
var (
	nanhaiApplicantKinds = map[string]string{"1": "PERSON", "2": "ENTERPRISE", "3": "INSTITUTION", "4": "SOCIAL_ORG", "5": "GOVERNMENT", "6": "OTHER_ORG"}
	nanhaiChannels       = map[string]string{"1": "COUNTER", "2": "ONLINE", "3": "POST"}
)

func fixtureInput(t *testing.T, dir, from string) Input {
	t.Helper()
	switch from {
	case "nanhai":
		f, err := os.Open(filepath.Join(dir, "case.xml"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		dec := xml.NewDecoder(f)
		dec.CharsetReader = func(charset string, r io.Reader) (io.Reader, error) {
			if !strings.EqualFold(charset, "GBK") {
				return nil, fmt.Errorf("charset %s", charset)
			}
			return simplifiedchinese.GBK.NewDecoder().Reader(r), nil
		}
		var c nanhaiCase
		if err := dec.Decode(&c); err != nil {
			t.Fatal(err)
		}
		received, err := time.ParseInLocation("20060102150405", c.AcceptDate, chinaTime)
		if err != nil {
			t.Fatal(err)
		}
		return Input{From: nanhai, To: c.TargetDivision, BasicCode: c.CatalogCode,
			ApplicantKind: nanhaiApplicantKinds[c.ApplyerType], Channel: nanhaiChannels[c.ApplyType],
			Materials: c.Materials, Time: received}
	case "liwan":
		b, err := os.ReadFile(filepath.Join(dir, "case.json"))
		if err != nil {
			t.Fatal(err)
		}
		var c liwanCase
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatal(err)
		}
		in := Input{From: liwan, To: c.OwnerDivision, BasicCode: c.Item.BasicCode,
			ApplicantKind: c.Applicant.Kind, Channel: c.Channel, Time: at(c.ReceivedBy.ReceivedAt)}
		for _, m := range c.Materials {
			in.Materials = append(in.Materials, m.Code)
		}
		return in
	}
	t.Fatalf("unknown sender %q", from)
	return Input{}
}

// TestFixtures checks the decision of every shared case fixture.
func TestFixtures(t *testing.T) {
	dirs, _ := filepath.Glob("/work/shared/fixtures/*/expect.json")
	if len(dirs) == 0 {
		t.Skip("shared fixtures not present")
	}
	e := pilot(t)
	checked := 0
	for _, p := range dirs {
		dir := filepath.Dir(p)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var want fixtureExpect
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		if want.Kind != "case" || want.Decision == nil {
			continue
		}
		checked++
		t.Run(filepath.Base(dir), func(t *testing.T) {
			got, err := e.Decide(context.Background(), fixtureInput(t, dir, want.From))
			if err != nil {
				t.Fatal(err)
			}
			checkShape(t, got)
			w := want.Decision
			if got.Allow != w.Allow || got.Mode != w.Mode || got.TargetImplCode != w.TargetImplCode ||
				got.PromisedDays != w.PromisedDays || !slices.Equal(got.ReasonCodes(), w.Reasons) ||
				!slices.Equal(got.MissingMaterials, w.MissingMaterials) {
				t.Errorf("decision\n got %+v\nwant %+v", got, *w)
			}
			if (want.Result == "denied") == got.Allow {
				t.Errorf("result %s but allow %v", want.Result, got.Allow)
			}
		})
	}
	if checked < 3 {
		t.Errorf("only %d case fixtures checked", checked)
	}
}

// TestContractExample is the example of contracts/catalog.md, byte for byte
// in its JSON form (keys in the contract's order are not significant).
func TestContractExample(t *testing.T) {
	in := Input{From: nanhai, To: liwan, BasicCode: "000105001000", ApplicantKind: "ENTERPRISE",
		Channel: "COUNTER", Materials: []string{"M001", "M002", "M003", "M004"}, Time: at("2026-11-27T09:45:00+08:00")}
	d, err := pilot(t).Decide(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(d)
	want := `{"allow":true,"mode":"REMOTE_RECEIPT","target_impl_code":"11440103MB2D31010A000105001000","promised_days":6,"missing_materials":[],"reasons":[]}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestDecisionTable is a hand-written table: one row per rule of the
// contract, plus the short-circuits, boundaries and mode choices.
func TestDecisionTable(t *testing.T) {
	llc := Input{From: nanhai, To: liwan, BasicCode: "000105001000", ApplicantKind: "ENTERPRISE",
		Channel: "COUNTER", Materials: []string{"M001", "M002", "M003", "M004"}, Time: at("2026-11-27T09:45:00+08:00")}
	food := Input{From: nanhai, To: liwan, BasicCode: "000103011000", ApplicantKind: "PERSON",
		Channel: "POST", Materials: []string{"M504", "M503", "M502", "M501"}, Time: at("2027-01-01T00:00:00+08:00")}
	with := func(in Input, f func(*Input)) Input { f(&in); return in }
	tests := []struct {
		name    string
		in      Input
		reasons []string
		missing []string
		mode    string
		target  string
		days    int
	}{
		{"allowed", llc, nil, nil, ModeRemoteReceipt, "11440103MB2D31010A000105001000", 6},
		{"online channel", with(llc, func(i *Input) { i.Channel = "ONLINE" }), nil, nil, ModeOnline, "11440103MB2D31010A000105001000", 6},
		{"liwan to nanhai", with(llc, func(i *Input) { i.From, i.To = liwan, nanhai }), nil, nil, ModeRemoteReceipt, "11440605MB2C31010E000105001000", 6},
		{"unknown item only reason", with(llc, func(i *Input) { i.BasicCode = "999999999999"; i.To = nanhai; i.Materials = nil }),
			[]string{ReasonItemUnknown}, nil, "", "", 0},
		{"not cross-district only reason", with(llc, func(i *Input) { i.BasicCode = "000102003000"; i.Channel = "FAX"; i.Time = time.Time{} }),
			[]string{ReasonItemNotCrossDistrict}, nil, "", "", 0},
		{"direction", with(food, func(i *Input) { i.From, i.To = liwan, nanhai }), []string{ReasonDirectionNotEnabled}, nil, "", "", 0},
		{"applicant kind", with(llc, func(i *Input) { i.ApplicantKind = "PERSON" }), []string{ReasonApplicantKindNotAllowed}, nil, "", "", 0},
		{"not yet effective", with(food, func(i *Input) { i.Time = at("2026-12-31T23:59:59.999999999+08:00") }), []string{ReasonNotYetEffective}, nil, "", "", 0},
		{"effective from inclusive, UTC", with(food, func(i *Input) { i.Time = at("2026-12-31T16:00:00Z") }), nil, nil, ModeRemoteReceipt, "11440103MB2D31010A000103011000", 10},
		{"effective as instant, not string", with(food, func(i *Input) { i.Time = at("2027-01-01T00:59:59+09:00") }), []string{ReasonNotYetEffective}, nil, "", "", 0},
		{"no mode", with(food, func(i *Input) { i.Channel = "ONLINE" }), []string{ReasonNoModeForChannel}, nil, "", "", 0},
		{"joint", Input{From: liwan, To: nanhai, BasicCode: "000131005000", ApplicantKind: "PERSON", Channel: "ONLINE",
			Materials: []string{"M401", "M402"}, Time: llc.Time}, nil, nil, ModeJoint, "11440605MB2C340407000131005000", 15},
		{"materials", with(llc, func(i *Input) { i.Materials = []string{"M004", "M999", "M002"} }), []string{ReasonMaterialsMissing}, []string{"M001", "M003"}, "", "", 0},
		{"all of 3-7 in order", Input{From: liwan, To: nanhai, BasicCode: "000103011000", ApplicantKind: "GOVERNMENT", Channel: "ONLINE", Time: llc.Time},
			[]string{ReasonDirectionNotEnabled, ReasonApplicantKindNotAllowed, ReasonNotYetEffective, ReasonNoModeForChannel, ReasonMaterialsMissing},
			[]string{"M501", "M502", "M503", "M504"}, "", "", 0},
	}
	e := pilot(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := e.Decide(context.Background(), tt.in)
			if err != nil {
				t.Fatal(err)
			}
			checkShape(t, d)
			if !slices.Equal(d.ReasonCodes(), tt.reasons) && len(d.Reasons)+len(tt.reasons) > 0 {
				t.Errorf("reasons %v, want %v", d.ReasonCodes(), tt.reasons)
			}
			if !slices.Equal(d.MissingMaterials, tt.missing) && len(d.MissingMaterials)+len(tt.missing) > 0 {
				t.Errorf("missing %v, want %v", d.MissingMaterials, tt.missing)
			}
			if d.Mode != tt.mode || d.TargetImplCode != tt.target || d.PromisedDays != tt.days {
				t.Errorf("got %s %s %d, want %s %s %d", d.Mode, d.TargetImplCode, d.PromisedDays, tt.mode, tt.target, tt.days)
			}
		})
	}
}

// oracle computes the contract's decision from the catalog in Go, written
// from contracts/catalog.md independently of the Rego.
func oracle(c *Catalog, in Input) Decision {
	d := Decision{MissingMaterials: []string{}, Reasons: []Reason{}}
	deny := func(codes ...string) Decision {
		for _, code := range codes {
			d.Reasons = append(d.Reasons, Reason{Code: code})
		}
		return d
	}
	item, ok := c.Items[in.BasicCode]
	if !ok {
		return deny(ReasonItemUnknown)
	}
	if !item.CrossDistrict {
		return deny(ReasonItemNotCrossDistrict)
	}
	var codes []string
	if !slices.ContainsFunc(item.Directions, func(d []string) bool { return d[0] == in.From && d[1] == in.To }) {
		codes = append(codes, ReasonDirectionNotEnabled)
	}
	if !slices.Contains(item.ApplicantKinds, in.ApplicantKind) {
		codes = append(codes, ReasonApplicantKindNotAllowed)
	}
	day := func(s string) time.Time { t, _ := time.ParseInLocation(time.DateOnly, s, chinaTime); return t }
	if in.Time.Before(day(*item.EffectiveFrom)) {
		codes = append(codes, ReasonNotYetEffective)
	}
	if item.EffectiveUntil != nil && !in.Time.Before(day(*item.EffectiveUntil)) {
		codes = append(codes, ReasonExpired)
	}
	preferred := map[string]string{"ONLINE": ModeOnline, "COUNTER": ModeRemoteReceipt, "POST": ModeRemoteReceipt}[in.Channel]
	mode := ""
	switch {
	case preferred != "" && slices.Contains(item.Modes, preferred):
		mode = preferred
	case slices.Contains(item.Modes, ModeJoint):
		mode = ModeJoint
	default:
		codes = append(codes, ReasonNoModeForChannel)
	}
	for code := range item.RequiredMaterials {
		if !slices.Contains(in.Materials, code) {
			d.MissingMaterials = append(d.MissingMaterials, code)
		}
	}
	slices.Sort(d.MissingMaterials)
	if len(d.MissingMaterials) > 0 {
		codes = append(codes, ReasonMaterialsMissing)
	}
	if len(codes) > 0 {
		return deny(codes...)
	}
	d.Allow = true
	d.Mode = mode
	d.TargetImplCode = c.Departments[item.Department].Codes[in.To] + in.BasicCode
	d.PromisedDays = item.PromisedDays[in.To]
	return d
}

// generatedInputs combines, for every item of the catalog and an unknown one,
// directions, applicant kinds, channels, material sets and times around the
// effective dates.
func generatedInputs(c *Catalog) []Input {
	codes := slices.Sorted(func(yield func(string) bool) {
		for k := range c.Items {
			if !yield(k) {
				return
			}
		}
	})
	codes = append(codes, "000000000000")
	var out []Input
	for _, code := range codes {
		item := c.Items[code]
		var required []string
		for m := range item.RequiredMaterials {
			required = append(required, m)
		}
		slices.Sort(required)
		materialSets := [][]string{append(slices.Clone(required), "M900"), nil}
		if len(required) > 1 {
			materialSets = append(materialSets, required[1:])
		}
		times := []time.Time{at("2026-11-27T09:45:00+08:00")}
		for _, s := range []*string{item.EffectiveFrom, item.EffectiveUntil} {
			if s != nil {
				t, _ := time.ParseInLocation(time.DateOnly, *s, chinaTime)
				times = append(times, t.UTC(), t.Add(-time.Nanosecond), t.Add(time.Second).In(time.FixedZone("", -5*3600)))
			}
		}
		for _, dir := range [][2]string{{nanhai, liwan}, {liwan, nanhai}, {nanhai, nanhai}} {
			for _, kind := range []string{"PERSON", "ENTERPRISE", "OTHER_ORG"} {
				for _, ch := range []string{"COUNTER", "ONLINE", "POST"} {
					for _, ms := range materialSets {
						for _, tm := range times {
							out = append(out, Input{From: dir[0], To: dir[1], BasicCode: code, ApplicantKind: kind, Channel: ch, Materials: ms, Time: tm})
						}
					}
				}
			}
		}
	}
	return out
}

// TestGeneratedTable compares the engine with the oracle over a generated
// table that reaches every rule, on the pilot catalog and on one with an end
// date and an ONLINE+JOINT item.
func TestGeneratedTable(t *testing.T) {
	limited := Pilot().Files()
	limited[CatalogPath] = []byte(strings.Replace(strings.Replace(string(limited[CatalogPath]),
		`"effective_from": "2015-07-01",
      "effective_until": null
    },
    "000105003000"`, `"effective_from": "2015-07-01",
      "effective_until": "2026-12-01"
    },
    "000105003000"`, 1),
		`"modes": ["ONLINE"],`, `"modes": ["ONLINE", "JOINT"],`, 1))
	lb, err := BundleFromFiles(limited)
	if err != nil {
		t.Fatal(err)
	}
	le, err := Compile(context.Background(), lb)
	if err != nil {
		t.Fatal(err)
	}
	if *le.Catalog().Items["000105002000"].EffectiveUntil != "2026-12-01" || !slices.Contains(le.Catalog().Items["000141002000"].Modes, ModeJoint) {
		t.Fatal("the modified catalog did not take")
	}
	for _, e := range []*Engine{pilot(t), le} {
		seen := map[string]int{}
		for _, in := range generatedInputs(e.Catalog()) {
			got, err := e.Decide(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			checkShape(t, got)
			want := oracle(e.Catalog(), in)
			if !reflect.DeepEqual(got.ReasonCodes(), want.ReasonCodes()) || got.Allow != want.Allow || got.Mode != want.Mode ||
				got.TargetImplCode != want.TargetImplCode || got.PromisedDays != want.PromisedDays ||
				!slices.Equal(got.MissingMaterials, want.MissingMaterials) {
				b, _ := json.Marshal(in)
				t.Fatalf("%s:\n got %+v\nwant %+v", b, got, want)
			}
			for _, c := range got.ReasonCodes() {
				seen[c]++
			}
			if got.Allow {
				seen[got.Mode]++
			}
		}
		for _, c := range []string{ReasonItemUnknown, ReasonItemNotCrossDistrict, ReasonDirectionNotEnabled, ReasonApplicantKindNotAllowed,
			ReasonNotYetEffective, ReasonNoModeForChannel, ReasonMaterialsMissing, ModeOnline, ModeRemoteReceipt, ModeJoint} {
			if seen[c] == 0 {
				t.Errorf("the generated table never reaches %s", c)
			}
		}
		if e == le && seen[ReasonExpired] == 0 {
			t.Errorf("the generated table never reaches %s", ReasonExpired)
		}
	}
}

// TestInputJSON checks the input document: the contract's shape, +08:00,
// and that Value is the same document as the JSON.
func TestInputJSON(t *testing.T) {
	in := Input{From: nanhai, To: liwan, BasicCode: "000105001000", ApplicantKind: "ENTERPRISE",
		Channel: "COUNTER", Materials: []string{"M001", "M002"}, Time: at("2026-11-27T01:45:00Z")}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"from":"440605","to":"440103","item":{"basic_code":"000105001000"},"applicant":{"kind":"ENTERPRISE"},"channel":"COUNTER","materials":["M001","M002"],"time":"2026-11-27T09:45:00+08:00"}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	if v := ast.MustParseTerm(string(b)).Value; v.Compare(in.Value()) != 0 {
		t.Errorf("Value %v differs from the JSON %v", in.Value(), v)
	}
	var back Input
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !back.Time.Equal(in.Time) || !reflect.DeepEqual(back.Materials, in.Materials) || back.BasicCode != in.BasicCode ||
		back.ApplicantKind != in.ApplicantKind || back.From != in.From || back.To != in.To || back.Channel != in.Channel {
		t.Errorf("round trip: %+v != %+v", back, in)
	}
	empty, _ := json.Marshal(Input{Time: in.Time})
	if !strings.Contains(string(empty), `"materials":[]`) {
		t.Errorf("nil materials not an empty array: %s", empty)
	}
	for _, bad := range []string{`{"from":"440605"}`, `{"time":"2026-11-27 09:45"}`, `[1]`, `{"time":"2026-11-27T09:45:00+08:00","materials":"M1"}`} {
		if err := json.Unmarshal([]byte(bad), &back); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("%s: err %v, want ErrInvalidInput", bad, err)
		}
	}
}

// TestDecisionJSON checks the decision's JSON: arrays always present,
// absent fields on a denial, revision only when set.
func TestDecisionJSON(t *testing.T) {
	b, _ := json.Marshal(Decision{Reasons: []Reason{{Code: ReasonItemUnknown, Message: "事项不在目录中。"}}})
	want := `{"allow":false,"missing_materials":[],"reasons":[{"code":"item_unknown","message":"事项不在目录中。"}]}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	b, _ = json.Marshal(Decision{Allow: true, Mode: ModeJoint, TargetImplCode: "x", PromisedDays: 3, Revision: "ab"})
	want = `{"allow":true,"mode":"JOINT","target_impl_code":"x","promised_days":3,"missing_materials":[],"reasons":[],"revision":"ab"}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	var d Decision
	if err := json.Unmarshal(b, &d); err != nil || d.Mode != ModeJoint || d.Revision != "ab" || d.PromisedDays != 3 {
		t.Errorf("read back %+v, %v", d, err)
	}
}
