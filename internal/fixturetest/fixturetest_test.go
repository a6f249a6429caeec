package fixturetest

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"golang.org/x/text/encoding/simplifiedchinese"
)

// recorder is a testing.TB that records failures instead of reporting them.
type recorder struct {
	testing.TB
	failed []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.failed = append(r.failed, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatal(args ...any) {
	r.failed = append(r.failed, fmt.Sprint(args...))
	panic(r)
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = append(r.failed, fmt.Sprintf(format, args...))
	panic(r)
}

// failures runs check against a recorder and returns what it reported.
func failures(t *testing.T, check func(tb testing.TB)) (failed []string) {
	r := &recorder{TB: t}
	defer func() {
		if v := recover(); v != nil && v != r {
			panic(v)
		}
		failed = r.failed
	}()
	check(r)
	return nil
}

func TestJSONEqual(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{`{"t":"2026-11-27T09:45:00+08:00"}`, `{"t":"2026-11-27T01:45:00Z"}`, true},
		{`{"t":"2026-11-27T09:45:00+08:00"}`, `{"t":"2026-11-27T09:45:00Z"}`, false},
		{`{"a":"x","b":[1,"y"]}`, `{"b":[1,"y"],"a":"x"}`, true},
		{`{"a":"x"}`, `{"a":"x","b":null}`, false},
		{`{"a":"x"}`, `{"a":"X"}`, false},
		{`[1,2]`, `[2,1]`, false},
		{`{"n":1}`, `{"n":"1"}`, false},
	} {
		var a, b any
		if err := json.Unmarshal([]byte(tc.a), &a); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(tc.b), &b); err != nil {
			t.Fatal(err)
		}
		if got := JSONEqual(a, b); got != tc.want {
			t.Errorf("JSONEqual(%s, %s) = %v", tc.a, tc.b, got)
		}
	}
}

func gbk(t *testing.T, s string) []byte {
	t.Helper()
	b, err := simplifiedchinese.GBK.NewEncoder().Bytes([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const nanhaiDoc = `<?xml version="1.0" encoding="GBK"?><CASE><CASE_NO>N1</CASE_NO><APPLYER_NAME>张三</APPLYER_NAME>` +
	`<MATERIALS><MATERIAL><CODE>M1</CODE><NAME>营业执照</NAME></MATERIAL></MATERIALS></CASE>`

func TestNanhaiElements(t *testing.T) {
	got := NanhaiElements(t, gbk(t, nanhaiDoc))
	want := `{"CASE_NO":"N1","APPLYER_NAME":"张三","MATERIALS":[{"CODE":"M1","NAME":"营业执照"}]}`
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if !JSONEqual(any(map[string]any(got)), w) {
		t.Errorf("elements %v, want %s", got, want)
	}
	// No GBK declaration, and text with spaces kept as it stands.
	f := failures(t, func(tb testing.TB) {
		NanhaiElements(tb, []byte(`<?xml version="1.0" encoding="UTF-8"?><CASE/>`))
	})
	if len(f) != 1 {
		t.Errorf("a UTF-8 declaration: failures %q, want one", f)
	}
	spaced := NanhaiElements(t, gbk(t, `<?xml version="1.0" encoding="GBK"?><CASE><MATERIALS><MATERIAL><CODE> M1 </CODE></MATERIAL></MATERIALS></CASE>`))
	if m := spaced["MATERIALS"].([]any)[0].(map[string]any); m["CODE"] != " M1 " {
		t.Errorf("material code %q, want the text as it stands", m["CODE"])
	}
}

func TestCheckDelivered(t *testing.T) {
	liwan := Expectation{From: "nanhai", DeliveredLiwan: json.RawMessage(`{"caseNo":"N1","at":"2026-11-27T09:45:00+08:00"}`)}
	nanhai := Expectation{From: "liwan", DeliveredNanhai: json.RawMessage(`{"CASE_NO":"N1","APPLYER_NAME":"张三","MATERIALS":[{"CODE":"M1","NAME":"营业执照"}]}`)}
	for _, tc := range []struct {
		name   string
		exp    Expectation
		record []byte
		fails  bool
	}{
		{"liwan equal, time as an instant", liwan, []byte(`{"at":"2026-11-27T01:45:00Z","caseNo":"N1"}`), false},
		{"liwan different", liwan, []byte(`{"caseNo":"N2","at":"2026-11-27T09:45:00+08:00"}`), true},
		{"liwan extra field", liwan, []byte(`{"caseNo":"N1","at":"2026-11-27T09:45:00+08:00","x":1}`), true},
		{"liwan not JSON", liwan, []byte(`<x/>`), true},
		{"nanhai equal", nanhai, gbk(t, nanhaiDoc), false},
		{"nanhai different", nanhai, gbk(t, `<?xml version="1.0" encoding="GBK"?><CASE><CASE_NO>N1</CASE_NO></CASE>`), true},
		{"delivered to the sender", Expectation{From: "liwan", DeliveredLiwan: liwan.DeliveredLiwan}, []byte(`{"caseNo":"N1","at":"2026-11-27T09:45:00+08:00"}`), true},
		{"nothing expected", Expectation{From: "nanhai"}, []byte(`{}`), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := failures(t, func(tb testing.TB) { CheckDelivered(tb, tc.exp, tc.record) })
			if (len(f) > 0) != tc.fails {
				t.Errorf("failures %q, want failing %v", f, tc.fails)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	roots := []string{filepath.Join("..", "..", "gateway", "testdata", "fixtures"), filepath.Join(t.TempDir(), "absent")}
	all := Load(t, roots...)
	s := all["liwan-physician"]
	if s == nil || s.Exp.From != "liwan" || s.Exp.Kind != "case" || s.File != filepath.Join(roots[0], "liwan-physician", "case.json") || len(s.Input) == 0 {
		t.Fatalf("liwan-physician: %+v", s)
	}
	if st := all["nanhai-status-approved"]; st == nil || st.Exp.Setup == nil || st.Exp.Setup.Fixture == "" || st.Exp.CaseNo == "" {
		t.Errorf("nanhai-status-approved: %+v", st)
	}
	if f := failures(t, func(tb testing.TB) { Load(tb, t.TempDir()) }); len(f) != 1 {
		t.Errorf("no samples: failures %q, want one", f)
	}
}
