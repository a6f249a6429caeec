package liwan

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/internal/ruletest"
)

func decodeBase(t *testing.T) *adapters.Case {
	t.Helper()
	c, err := Codec.DecodeCase(ruletest.RenderJSON(t, baseDoc(t, "case")))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDecodeCaseValues(t *testing.T) {
	d := baseDoc(t, "case")
	ruletest.SetPointer(t, d, "/appliedAt", "2026-11-27T02:02:11Z", false)
	c, err := Codec.DecodeCase(ruletest.RenderJSON(t, d))
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 11, 27, 10, 2, 11, 0, adapters.CST); !c.AppliedAt.Equal(want) || c.AppliedAt.Location() != adapters.CST {
		t.Errorf("AppliedAt %v, want %v in CST", c.AppliedAt, want)
	}
	if c.CaseNo != "LW2026112700123" || c.Applicant.Kind != adapters.Person || c.Materials[1].Form != adapters.Copy || c.Materials[0].Size != 74 {
		t.Errorf("%+v", c)
	}
	out, err := Codec.EncodeCase(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte(`"appliedAt":"2026-11-27T10:02:11+08:00"`)) {
		t.Errorf("time not written in +08:00: %s", out)
	}
}

func TestMalformed(t *testing.T) {
	valid := string(ruletest.RenderJSON(t, baseDoc(t, "case")))
	tests := []struct {
		name string
		body string
	}{
		{"empty", ""},
		{"not JSON", "hello"},
		{"XML", `<?xml version="1.0" encoding="GBK"?><CASE/>`},
		{"truncated", valid[:len(valid)-1]},
		{"duplicate top-level key", `{"caseId":"LW2026112700123",` + valid[1:]},
		{"duplicate key after unescaping", `{"\u0063aseId":"LW2026112700123",` + valid[1:]},
		{"duplicate nested key", strings.Replace(valid, `"kind":"PERSON"`, `"kind":"PERSON","kind":"ENTERPRISE"`, 1)},
		{"duplicate key in a material", strings.Replace(valid, `"code":"M201"`, `"code":"M201","code":"M201"`, 1)},
		{"invalid UTF-8", strings.Replace(valid, "陈静", "\xff\xfe", 1)},
		{"GBK bytes", strings.Replace(valid, "陈静", "\xb3\xc2\xbe\xb2", 1)},
		{"UTF-8 BOM", "\xef\xbb\xbf" + valid},
		{"trailing data", valid + " {}"},
		{"trailing garbage", valid + "x"},
		{"top-level array", "[" + valid + "]"},
		{"top-level string", `"LW2026112700123"`},
		{"top-level null", `null`},
		{"nested too deep", strings.Replace(valid, `"address"`, `"deep":`+strings.Repeat("[", 40)+strings.Repeat("]", 40)+`,"address"`, 1)},
		{"single quotes", strings.ReplaceAll(valid, `"`, `'`)},
		{"trailing comma", strings.TrimSuffix(valid, "}") + ",}"},
		{"comment", "/* c */" + valid},
		{"NaN", strings.Replace(valid, `"promisedWorkingDays":20`, `"promisedWorkingDays":NaN`, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Codec.DecodeCase([]byte(tt.body))
			if !errors.Is(err, adapters.ErrMalformed) {
				t.Errorf("error %v, want ErrMalformed", err)
			}
		})
	}
	for _, body := range []string{`{"caseId":"a","caseId":"b"}`, `[]`, "{\"note\":\"\xff\"}"} {
		if _, err := Codec.DecodeStatus([]byte(body)); !errors.Is(err, adapters.ErrMalformed) {
			t.Errorf("status %q: %v", body, err)
		}
		if _, err := Codec.DecodeAck([]byte(body)); !errors.Is(err, adapters.ErrMalformed) {
			t.Errorf("ack %q: %v", body, err)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	c := decodeBase(t)
	c.Address = "line 1\nline 2\r\n\t\"quoted\" <&> 𠮷 \u2028"
	c.Materials[0].Content = []byte{0, 1, 2, 0xFF}
	c.Materials[0].SM3 = sm3hex(c.Materials[0].Content)
	c.Materials[0].Size = 4
	c.AppliedAt = c.AppliedAt.Add(500 * time.Millisecond) // sub-second instants survive
	for _, tc := range []struct {
		name string
		c    adapters.Case
	}{
		{"sent", *c},
		{"delivered", c.ForDelivery(adapters.DivisionNanhai, adapters.ModeOnline, "11440103MB2D32020J000114001000", 9)},
		{"no optional fields", func() adapters.Case {
			d := *c
			d.Address, d.PromisedDays, d.Materials = "", 0, nil
			return d
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Codec.EncodeCase(&tc.c)
			if err != nil {
				t.Fatal(err)
			}
			decode := Codec.DecodeCase
			if tc.c.Origin != nil {
				decode = Codec.DecodeDeliveredCase
				if bytes.Contains(out, []byte(`"caseId"`)) {
					t.Errorf("delivered case has a caseId: %s", out)
				}
			}
			back, err := decode(out)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if !reflect.DeepEqual(*back, tc.c) {
				t.Errorf("round trip:\n%+v\nwant\n%+v", *back, tc.c)
			}
		})
	}
}

func TestStatusRoundTripAllStates(t *testing.T) {
	for _, info := range adapters.States {
		s := adapters.StatusUpdate{CaseNo: "LW2026112700123", State: info.State,
			At: time.Date(2026, 12, 3, 16, 0, 0, 0, adapters.CST), Officer: "刘洋"}
		if info.State == adapters.Approved {
			s.Certificate = &adapters.Certificate{Name: "医师执业证书", Number: "144440605000123"}
			s.Note = "准予"
		}
		out, err := Codec.EncodeStatus(&s)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(out, []byte(`"state":"`+string(info.State)+`"`)) {
			t.Errorf("%s", out)
		}
		back, err := Codec.DecodeStatus(out)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*back, s) {
			t.Errorf("%s: %+v, want %+v", info.State, *back, s)
		}
	}
	// The contract's example.
	s, err := Codec.DecodeStatus([]byte(`{"caseId": "LW2026112700123", "state": "APPROVED", "at": "2026-12-03T16:00:00+08:00",
 "officer": "刘洋", "note": "…", "certificate": {"name": "营业执照", "number": "91440103MA59XXXXX8"}}`))
	if err != nil || s.Certificate == nil || s.Certificate.Name != "营业执照" {
		t.Errorf("%+v %v", s, err)
	}
}

func TestAck(t *testing.T) {
	for body, want := range map[string]adapters.Ack{
		`{"accepted": true, "caseId": "LW2026112700123"}`: {Accepted: true, CaseNo: "LW2026112700123"},
		`{"accepted": false, "reason": "材料不全"}`:           {Reason: "材料不全"},
		`{"accepted": false}`:                             {},
	} {
		a, err := Codec.DecodeAck([]byte(body))
		if err != nil || *a != want {
			t.Errorf("%s: %+v %v", body, a, err)
			continue
		}
		out, err := Codec.EncodeAck(a)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Codec.DecodeAck(out)
		if err != nil || *back != want {
			t.Errorf("round trip %s: %+v %v", out, back, err)
		}
	}
}

func TestContentType(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/json":                true,
		"application/json; charset=utf-8": true,
		"APPLICATION/JSON; charset=UTF-8": true,
		"application/json; charset=GBK":   false,
		"application/xml":                 false,
		"text/json":                       false,
		"application/json-patch+json":     false,
		"":                                false,
	} {
		if got := Codec.AcceptsContentType(ct); got != want {
			t.Errorf("%q: %v, want %v", ct, got, want)
		}
	}
	if !Codec.AcceptsContentType(Codec.ContentType()) || Codec.Name() != "liwan" || Codec.Division() != "440103" {
		t.Error("identity")
	}
}
