package policies

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// pilotWith is the pilot bundle with files replaced (nil content deletes).
func pilotWith(t *testing.T, changes map[string]string) *Bundle {
	t.Helper()
	files := Pilot().Files()
	for p, c := range changes {
		if c == "" {
			delete(files, p)
			continue
		}
		files[p] = []byte(c)
	}
	b, err := BundleFromFiles(files)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pilotLine is the 1-based line of the pilot file p on which text first
// appears.
func pilotLine(t *testing.T, p, text string) int {
	t.Helper()
	src, _ := Pilot().File(p)
	i := strings.Index(string(src), text)
	if i < 0 {
		t.Fatalf("%s has no %q", p, text)
	}
	return strings.Count(string(src[:i]), "\n") + 1
}

func catalogWith(t *testing.T, old, new string) string {
	t.Helper()
	src, _ := Pilot().File(CatalogPath)
	if !strings.Contains(string(src), old) {
		t.Fatalf("catalog has no %q", old)
	}
	return strings.Replace(string(src), old, new, 1)
}

func validate(t *testing.T, b *Bundle) *Report {
	t.Helper()
	r, err := b.Validate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r.Revision != b.Revision() {
		t.Errorf("report revision %s, bundle %s", r.Revision, b.Revision())
	}
	return r
}

// hasProblem finds a problem in file (and at line, when line > 0) whose
// message contains every one of words.
func hasProblem(r *Report, file string, line int, words ...string) bool {
next:
	for _, p := range r.Problems {
		if p.File != file || (line > 0 && p.Line != line) {
			continue
		}
		for _, w := range words {
			if !strings.Contains(p.Message, w) {
				continue next
			}
		}
		return true
	}
	return false
}

func TestValidatePilot(t *testing.T) {
	r := validate(t, Pilot())
	if !r.OK || len(r.Problems) > 0 || r.Tests.Failed > 0 || r.Tests.Passed < 30 {
		t.Fatalf("pilot: %+v", r)
	}
}

func TestValidateRefuses(t *testing.T) {
	tests := []struct {
		name    string
		changes map[string]string
		file    string
		line    int
		words   []string
	}{
		{"syntax error", map[string]string{"tongban/broken.rego": "package tongban.broken\n\nallow if {\n\tinput.x ==\n}\n"},
			"tongban/broken.rego", 5, []string{"rego_parse_error"}},
		{"strict: unused import", map[string]string{"tongban/strict.rego": "package tongban.strict\n\nimport data.tongban.catalog\n\nx := 1\n"},
			"tongban/strict.rego", 3, []string{"import data.tongban.catalog unused"}},
		{"unsafe variable", map[string]string{"tongban/unsafe.rego": "package tongban.unsafe\n\nx if y > 1\n"},
			"tongban/unsafe.rego", 3, []string{"var y is unsafe"}},
		{"failing Rego test", map[string]string{"tongban/fail_test.rego": "package tongban.fail_test\n\nimport data.tongban.crossdistrict\n\ntest_unknown_item_allowed if {\n\tcrossdistrict.decision.allow with input as {}\n}\n"},
			"tongban/fail_test.rego", 5, []string{"test_unknown_item_allowed", "failed"}},
		{"erroring Rego test", map[string]string{"tongban/err_test.rego": "package tongban.err_test\n\nf(x) := 1 if x\n\nf(x) := 2 if x\n\ntest_conflict if f(true) == 1\n"},
			"tongban/err_test.rego", 0, []string{"test_conflict", "eval_conflict_error"}},
		{"no tests", map[string]string{"tongban/crossdistrict_test.rego": ""},
			"", 0, []string{"no Rego tests"}},
		{"not formatted", map[string]string{"tongban/crossdistrict.rego": strings.Replace(string(must(Pilot().File("tongban/crossdistrict.rego"))), "import data.tongban.catalog", "import   data.tongban.catalog", 1)},
			"tongban/crossdistrict.rego", pilotLine(t, "tongban/crossdistrict.rego", "import data.tongban.catalog"), []string{"opa fmt"}},
		{"no decision rule", map[string]string{"tongban/crossdistrict.rego": "package tongban.crossdistrict\n\ndecisions := 1\n", "tongban/crossdistrict_test.rego": "package tongban.crossdistrict_test\n\ntest_one if 1 == 1\n"},
			"", 0, []string{"no rule data.tongban.crossdistrict.decision"}},
		{"package outside roots", map[string]string{"tongban/other.rego": "package elsewhere\n\nx := 1\n"},
			"tongban/other.rego", 1, []string{"outside the manifest roots"}},
		{"bad manifest", map[string]string{ManifestPath: "{\"roots\": [\n"},
			ManifestPath, 0, []string{"manifest"}},
		{"data not JSON", map[string]string{CatalogPath: "{\n\"items\": {,}\n}\n"},
			CatalogPath, 2, []string{"data"}},
		{"catalog missing", map[string]string{CatalogPath: ""},
			CatalogPath, 0, []string{"missing"}},
		{"item key not a basic code", map[string]string{CatalogPath: catalogWith(t, `"000105002000": {`, `"00010500200": {`)},
			CatalogPath, 22, []string{"item 00010500200", "Property name"}},
		{"unknown mode", map[string]string{CatalogPath: catalogWith(t, `"modes": ["REMOTE_RECEIPT"],
      "directions": [["440605", "440103"], ["440103", "440605"]],
      "required_materials": {"M201"`, `"modes": ["FAX"],
      "directions": [["440605", "440103"], ["440103", "440605"]],
      "required_materials": {"M201"`)},
			CatalogPath, 51, []string{"item 000114001000", "modes"}},
		{"unknown department", map[string]string{CatalogPath: catalogWith(t, `"department": "hrss"`, `"department": "hr"`)},
			CatalogPath, 0, []string{"item 000141002000", `department "hr"`}},
		{"bad division", map[string]string{CatalogPath: catalogWith(t, `"directions": [["440605", "440103"]]`, `"directions": [["440605", "4401"]]`)},
			CatalogPath, 0, []string{"item 000103011000", "directions"}},
		{"direction not a pair", map[string]string{CatalogPath: catalogWith(t, `"directions": [["440605", "440103"]]`, `"directions": [["440605", "440103", "440605"]]`)},
			CatalogPath, 0, []string{"item 000103011000", "directions"}},
		{"bad date", map[string]string{CatalogPath: catalogWith(t, `"effective_from": "2027-01-01"`, `"effective_from": "2027-1-1"`)},
			CatalogPath, 0, []string{"item 000103011000", "effective_from"}},
		{"impossible date", map[string]string{CatalogPath: catalogWith(t, `"effective_from": "2027-01-01"`, `"effective_from": "2027-02-30"`)},
			CatalogPath, 0, []string{"item 000103011000", "effective_from", "not a date"}},
		{"until before from", map[string]string{CatalogPath: catalogWith(t, `"effective_from": "2027-01-01",
      "effective_until": null`, `"effective_from": "2027-01-01",
      "effective_until": "2026-01-01"`)},
			CatalogPath, 0, []string{"item 000103011000", "not after"}},
		{"no promised days for the target", map[string]string{CatalogPath: catalogWith(t, `"promised_days": {"440605": 15, "440103": 10}`, `"promised_days": {"440605": 15}`)},
			CatalogPath, 0, []string{"item 000103011000", "promised days", "440103"}},
		{"department has no code for the target", map[string]string{CatalogPath: catalogWith(t, `"codes": {"440605": "11440605MB2C32020N", "440103": "11440103MB2D32020J"}`, `"codes": {"440605": "11440605MB2C32020N"}`)},
			CatalogPath, 0, []string{"item 000114001000", "no code for division 440103"}},
		{"cross-district item without modes", map[string]string{CatalogPath: catalogWith(t, `"modes": ["JOINT"]`, `"modes": []`)},
			CatalogPath, 0, []string{"item 000131005000", "modes"}},
		{"hour rule under the day declaration", map[string]string{"tongban/crossdistrict.rego": string(must(Pilot().File("tongban/crossdistrict.rego"))) +
			"\n# Before 10:00 UTC every case misses a material.\nfailed contains \"materials_missing\" if time.clock(received_ns)[0] < 10\n"},
			"tongban/crossdistrict.rego", 1, []string{"decision_time_granularity: day is declared", "differs from the one at"}},
		{"unknown field", map[string]string{CatalogPath: catalogWith(t, `"name": "户口迁移",`, `"name": "户口迁移", "nmae": "x",`)},
			CatalogPath, 0, []string{"item 000102003000", "nmae"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validate(t, pilotWith(t, tt.changes))
			if r.OK {
				t.Fatalf("validated: %+v", r)
			}
			if !hasProblem(r, tt.file, tt.line, tt.words...) {
				t.Errorf("no problem in %s:%d with %q among\n%s", tt.file, tt.line, tt.words, problemList(r))
			}
		})
	}
}

func problemList(r *Report) string {
	var sb strings.Builder
	for _, p := range r.Problems {
		sb.WriteString("  " + p.String() + "\n")
	}
	return sb.String()
}

func must[T any](v T, ok bool) T {
	if !ok {
		panic("missing")
	}
	return v
}

func TestCompileRefuses(t *testing.T) {
	_, err := Compile(context.Background(), pilotWith(t, map[string]string{"tongban/broken.rego": "package tongban.broken\n\nallow if {\n"}))
	if !errors.Is(err, ErrCompile) || !strings.Contains(err.Error(), "tongban/broken.rego:4") {
		t.Errorf("err %v, want ErrCompile naming tongban/broken.rego:4", err)
	}
	var ce *CompileError
	if !errors.As(err, &ce) || len(ce.Problems) == 0 || ce.Problems[0].File != "tongban/broken.rego" {
		t.Errorf("CompileError %+v", ce)
	}
	_, err = Compile(context.Background(), pilotWith(t, map[string]string{"tongban/crossdistrict.rego": "package tongban.crossdistrict\n\nx := 1\n", "tongban/crossdistrict_test.rego": ""}))
	if !errors.Is(err, ErrCompile) || !strings.Contains(err.Error(), DecisionQuery) {
		t.Errorf("err %v, want ErrCompile for the missing decision", err)
	}
}

// TestUndefinedDecision: an inconsistent catalog (caught by Validate) makes
// the decision undefined at run time, an error rather than a decision.
func TestUndefinedDecision(t *testing.T) {
	b := pilotWith(t, map[string]string{CatalogPath: catalogWith(t, `"department": "hrss"`, `"department": "hr"`)})
	e, err := Compile(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	in := Input{From: nanhai, To: liwan, BasicCode: "000141002000", ApplicantKind: "PERSON", Channel: "ONLINE", Materials: []string{"M301"}, Time: at("2026-11-27T09:45:00+08:00")}
	if _, err := e.Decide(context.Background(), in); !errors.Is(err, ErrUndefinedDecision) {
		t.Errorf("err %v, want ErrUndefinedDecision", err)
	}
}
