package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/adapters/liwan"
	"github.com/tongban/tongban/internal/fixturetest"
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

// samples reads every sample by name.
func samples(t *testing.T) map[string]*fixturetest.Sample {
	t.Helper()
	return fixturetest.Load(t, fixtureRoots...)
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
			args := []string{"translate", "--from", s.Exp.From, s.File}
			if s.Exp.Kind == "status" {
				args = []string{"translate", "--from", s.Exp.From, "--status", "--case-no", s.Exp.CaseNo, s.File}
			}
			code, out, errOut := tongban(t, args...)
			switch s.Exp.Result {
			case "ok":
				if code != 0 {
					t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
				}
				fixturetest.CheckDelivered(t, s.Exp, []byte(out))
			case "denied":
				p := checkProblemOut(t, code, out, 3, "policy_denied")
				want := s.Exp.Decision
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
				if !slices.Equal(fields, s.Exp.Fields) {
					t.Errorf("fields %q, want %q", fields, s.Exp.Fields)
				}
			case "malformed":
				checkProblemOut(t, code, out, 2, "malformed")
			default:
				t.Fatalf("result %q", s.Exp.Result)
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
	body, err := os.ReadFile(phys.File)
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
	code, out, _ = tongban(t, "translate", "--from", "nanhai", phys.File)
	checkProblemOut(t, code, out, 2, "malformed")
	code, out, _ = tongban(t, "translate", "--from", "liwan", write("missing.json", missing))
	if p := checkProblemOut(t, code, out, 3, "policy_denied"); p.Decision == nil || p.Decision.Allow {
		t.Errorf("decision of a case missing materials: %s", out)
	}

	for _, args := range [][]string{
		{"translate", "--from", "liwan", filepath.Join(dir, "absent.json")},
		{"translate", "--from", "shunde", phys.File},
		{"translate", "--from", "liwan"},
		{"translate", "--from", "nanhai", "--status", phys.File},
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
