package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/adapters/liwan"
)

// tongban runs the command line with args and returns its exit code,
// stdout and stderr.
func tongban(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := dispatch(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// TestDemo runs `tongban demo`: a gateway and both simulated districts on
// loopback, the whole path, the log exported and verified.
func TestDemo(t *testing.T) {
	code, out, errOut := tongban(t, "demo")
	if code != 0 || !strings.Contains(out, "demo complete") {
		t.Fatalf("tongban demo: exit %d\n%s\nstderr: %s", code, out, errOut)
	}
	for _, want := range []string{"accepted: exchange", "refused: HTTP 403 policy_denied", "refused: HTTP 422 validation_failed", "verified"} {
		if !strings.Contains(out, want) {
			t.Errorf("the demo's output does not mention %q", want)
		}
	}
}

// The samples: the gateway's committed copy, and the shared originals
// when present (those override the copy of the same name).
var fixtureRoots = []string{
	filepath.Join("..", "..", "gateway", "testdata", "fixtures"),
	filepath.Join("..", "..", "..", "shared", "fixtures"),
}

type sample struct {
	dir string
	exp struct {
		From            string          `json:"from"`
		Kind            string          `json:"kind"`
		CaseNo          string          `json:"case_no"`
		Result          string          `json:"result"`
		Fields          []string        `json:"fields"`
		Decision        json.RawMessage `json:"decision"`
		DeliveredLiwan  json.RawMessage `json:"delivered_liwan"`
		DeliveredNanhai json.RawMessage `json:"delivered_nanhai"`
	}
	file string
}

func samples(t *testing.T) map[string]*sample {
	t.Helper()
	out := map[string]*sample{}
	for _, root := range fixtureRoots {
		des, err := os.ReadDir(root)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, de := range des {
			if !de.IsDir() {
				continue
			}
			s := &sample{dir: filepath.Join(root, de.Name())}
			b, err := os.ReadFile(filepath.Join(s.dir, "expect.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &s.exp); err != nil {
				t.Fatal(err)
			}
			s.file = filepath.Join(s.dir, s.exp.Kind+map[string]string{"nanhai": ".xml", "liwan": ".json"}[s.exp.From])
			out[de.Name()] = s
		}
	}
	if len(out) == 0 {
		t.Fatal("no samples found")
	}
	return out
}

type problemDoc struct {
	Type     string                `json:"type"`
	Code     string                `json:"code"`
	Status   int                   `json:"status"`
	Errors   []adapters.FieldError `json:"errors"`
	Decision *struct {
		Allow   bool `json:"allow"`
		Reasons []struct {
			Code string `json:"code"`
		} `json:"reasons"`
	} `json:"decision"`
}

// TestTranslateSamples runs `tongban translate` on every sample: exit 0
// and the delivered record of expect.json for an accepted one, 2 and the
// problem on stdout for an invalid or malformed one, 3 and the decision
// for a denied one.
func TestTranslateSamples(t *testing.T) {
	for name, s := range samples(t) {
		t.Run(name, func(t *testing.T) {
			args := []string{"translate", "--from", s.exp.From, s.file}
			if s.exp.Kind == "status" {
				args = []string{"translate", "--from", s.exp.From, "--status", "--case-no", s.exp.CaseNo, s.file}
			}
			code, out, errOut := tongban(t, args...)
			switch s.exp.Result {
			case "ok":
				if code != 0 {
					t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
				}
				checkRecord(t, []byte(out), s.exp.DeliveredLiwan, s.exp.DeliveredNanhai)
			case "denied":
				p := checkProblemOut(t, code, out, 3, "policy_denied")
				var want struct {
					Reasons []string `json:"reasons"`
				}
				if err := json.Unmarshal(s.exp.Decision, &want); err != nil {
					t.Fatal(err)
				}
				var got []string
				if p.Decision != nil {
					for _, r := range p.Decision.Reasons {
						got = append(got, r.Code)
					}
				}
				if p.Decision == nil || p.Decision.Allow || !slices.Equal(got, want.Reasons) {
					t.Errorf("decision in %s, want reasons %q", out, want.Reasons)
				}
			case "invalid":
				p := checkProblemOut(t, code, out, 2, "validation_failed")
				var fields []string
				for _, fe := range p.Errors {
					fields = append(fields, fe.Field)
				}
				if !slices.Equal(fields, s.exp.Fields) {
					t.Errorf("fields %q, want %q", fields, s.exp.Fields)
				}
			case "malformed":
				checkProblemOut(t, code, out, 2, "malformed")
			default:
				t.Fatalf("result %q", s.exp.Result)
			}
		})
	}
}

// checkProblemOut checks an exit code and the problem+json on stdout.
func checkProblemOut(t *testing.T, code int, out string, wantExit int, wantCode string) *problemDoc {
	t.Helper()
	if code != wantExit {
		t.Errorf("exit %d, want %d", code, wantExit)
	}
	var p problemDoc
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("stdout is not a problem document: %v\n%s", err, out)
	}
	if p.Code != wantCode || p.Type != "urn:tongban:problem:"+wantCode || p.Status == 0 {
		t.Errorf("problem %s, want code %s", out, wantCode)
	}
	return &p
}

// TestTranslateRefusals: a record the samples do not cover, each way it
// can fail, and the command-line errors that go to stderr.
func TestTranslateRefusals(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	phys := samples(t)["liwan-physician"]
	if phys == nil {
		t.Fatal("sample liwan-physician missing")
	}
	body, err := os.ReadFile(phys.file)
	if err != nil {
		t.Fatal(err)
	}
	c, err := liwan.Codec.DecodeCase(body)
	if err != nil {
		t.Fatal(err)
	}
	c.Applicant.IDNumber = c.Applicant.IDNumber[:17] + map[bool]string{true: "1", false: "0"}[c.Applicant.IDNumber[17] == '0']
	invalid, err := liwan.Codec.EncodeCase(c)
	if err != nil {
		t.Fatal(err)
	}
	c, _ = liwan.Codec.DecodeCase(body)
	c.Materials = c.Materials[:1] // required materials missing
	missing, err := liwan.Codec.EncodeCase(c)
	if err != nil {
		t.Fatal(err)
	}

	code, out, _ := tongban(t, "translate", "--from", "liwan", write("invalid.json", invalid))
	if p := checkProblemOut(t, code, out, 2, "validation_failed"); len(p.Errors) == 0 || p.Errors[0].Field != "/applicant/idNumber" {
		t.Errorf("errors %+v, want /applicant/idNumber first", p.Errors)
	}
	code, out, _ = tongban(t, "translate", "--from", "liwan", write("garbage.json", []byte("{not json")))
	checkProblemOut(t, code, out, 2, "malformed")
	code, out, _ = tongban(t, "translate", "--from", "nanhai", phys.file)
	checkProblemOut(t, code, out, 2, "malformed")
	code, out, _ = tongban(t, "translate", "--from", "liwan", write("missing.json", missing))
	if p := checkProblemOut(t, code, out, 3, "policy_denied"); p.Decision == nil || p.Decision.Allow {
		t.Errorf("decision of a case missing materials: %s", out)
	}

	for _, args := range [][]string{
		{"translate", "--from", "liwan", filepath.Join(dir, "absent.json")},
		{"translate", "--from", "shunde", phys.file},
		{"translate", "--from", "liwan"},
		{"translate", "--from", "nanhai", "--status", phys.file},
	} {
		code, out, errOut := tongban(t, args...)
		if code == 0 || out != "" || errOut == "" {
			t.Errorf("tongban %q: exit %d, stdout %q, stderr %q: want non-zero, nothing on stdout, the problem on stderr", args, code, out, errOut)
		}
	}
}

// TestPolicyEval evaluates catalog.md's example input and a refused one.
func TestPolicyEval(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	allowed := write("allowed.json", `{"from":"440605","to":"440103","item":{"basic_code":"000105001000"},
		"applicant":{"kind":"ENTERPRISE"},"channel":"COUNTER","materials":["M001","M002","M003","M004"],
		"time":"2026-11-27T09:45:00+08:00"}`)
	code, out, errOut := tongban(t, "policy", "eval", allowed)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var d struct {
		Allow          bool            `json:"allow"`
		Mode           string          `json:"mode"`
		TargetImplCode string          `json:"target_impl_code"`
		PromisedDays   int             `json:"promised_days"`
		Missing        []string        `json:"missing_materials"`
		Reasons        json.RawMessage `json:"reasons"`
	}
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !d.Allow || d.Mode != "REMOTE_RECEIPT" || d.TargetImplCode != "11440103MB2D31010A000105001000" || d.PromisedDays != 6 ||
		len(d.Missing) != 0 || string(d.Reasons) != "[]" {
		t.Errorf("decision %s, want catalog.md's example", out)
	}

	denied := write("denied.json", `{"from":"440605","to":"440103","item":{"basic_code":"000102003000"},
		"applicant":{"kind":"PERSON"},"channel":"COUNTER","materials":["M999"],"time":"2026-11-27T11:15:00+08:00"}`)
	code, out, errOut = tongban(t, "policy", "eval", denied)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, `"allow": false`) || !strings.Contains(out, "item_not_cross_district") {
		t.Errorf("decision %s, want a refusal item_not_cross_district", out)
	}

	for _, args := range [][]string{
		{"policy", "eval", filepath.Join(dir, "absent.json")},
		{"policy", "eval", write("bad.json", "{")},
		{"policy", "eval"},
	} {
		code, out, errOut := tongban(t, args...)
		if code == 0 || out != "" || errOut == "" {
			t.Errorf("tongban %q: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
}

// checkRecord compares a translated record with expect.json's
// delivered_liwan (JSON, times as instants) or delivered_nanhai (element →
// text of the GBK XML).
func checkRecord(t *testing.T, record []byte, liwanWant, nanhaiWant json.RawMessage) {
	t.Helper()
	switch {
	case liwanWant != nil:
		var got, want any
		if err := json.Unmarshal(record, &got); err != nil {
			t.Fatalf("%v\n%s", err, record)
		}
		if err := json.Unmarshal(liwanWant, &want); err != nil {
			t.Fatal(err)
		}
		if !jsonEqual(got, want) {
			t.Errorf("translated\n%s\nwant\n%s", record, liwanWant)
		}
	case nanhaiWant != nil:
		var want map[string]any
		if err := json.Unmarshal(nanhaiWant, &want); err != nil {
			t.Fatal(err)
		}
		if got := xmlElements(t, record); !reflect.DeepEqual(got, want) {
			t.Errorf("translated\n%v\nwant\n%v", got, want)
		}
	default:
		t.Fatal("an accepted sample without delivered_liwan or delivered_nanhai")
	}
}

func jsonEqual(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || !jsonEqual(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case string:
		y, ok := b.(string)
		if !ok {
			return false
		}
		tx, ex := time.Parse(time.RFC3339, x)
		ty, ey := time.Parse(time.RFC3339, y)
		if ex == nil && ey == nil {
			return tx.Equal(ty)
		}
		return x == y
	}
	return reflect.DeepEqual(a, b)
}

type element struct {
	XMLName  xml.Name
	Text     string    `xml:",chardata"`
	Children []element `xml:",any"`
}

// xmlElements reads a GBK Nanhai document into element → text, MATERIALS
// as a list, without the codec.
func xmlElements(t *testing.T, doc []byte) map[string]any {
	t.Helper()
	if !bytes.HasPrefix(doc, []byte(`<?xml version="1.0" encoding="GBK"?>`)) {
		t.Errorf("no GBK declaration: %.60q", doc)
	}
	utf, err := simplifiedchinese.GBK.NewDecoder().Bytes(doc)
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(utf))
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	var root element
	if err := d.Decode(&root); err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	for _, c := range root.Children {
		if c.XMLName.Local == "MATERIALS" {
			list := []any{}
			for _, m := range c.Children {
				mm := map[string]any{}
				for _, f := range m.Children {
					mm[f.XMLName.Local] = strings.TrimSpace(f.Text)
				}
				list = append(list, mm)
			}
			out["MATERIALS"] = list
			continue
		}
		out[c.XMLName.Local] = c.Text
	}
	return out
}
