package nanhai

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/internal/ruletest"
)

func decodeBase(t *testing.T) *adapters.Case {
	t.Helper()
	c, err := Codec.DecodeCase(baseDoc(t, "case").Render(t))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDecodeCaseValues(t *testing.T) {
	c := decodeBase(t)
	if want := time.Date(2026, 11, 27, 1, 30, 15, 0, time.UTC); !c.AppliedAt.Equal(want) {
		t.Errorf("AppliedAt %v, want %v (UTC+8)", c.AppliedAt, want)
	}
	if c.Contact.Mobile != "+8613800138000" {
		t.Errorf("mobile %q, want E.164", c.Contact.Mobile)
	}
	if c.Applicant.Kind != adapters.Enterprise || c.Applicant.IDType != adapters.USCC || c.Contact.IDType != adapters.ResidentID {
		t.Errorf("codes: %+v %+v", c.Applicant, c.Contact)
	}
	if c.Channel != adapters.Counter || c.Materials[1].Form != adapters.Electronic || c.PromisedDays != 6 {
		t.Errorf("channel %s form %s days %d", c.Channel, c.Materials[1].Form, c.PromisedDays)
	}
	if c.Materials[1].Size != int64(len(c.Materials[1].Content)) || c.Materials[1].Size != 345 {
		t.Errorf("size %d", c.Materials[1].Size)
	}
}

// TestEncodeMatchesFixture: the writer's output of the fixture's case is
// the fixture, byte for byte (element order, indentation, GBK).
func TestEncodeMatchesFixture(t *testing.T) {
	for _, name := range []string{"nanhai-llc-setup/case.xml", "nanhai-hukou-denied/case.xml", "nanhai-status-approved/status.xml"} {
		in, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "fixtures", name))
		if errors.Is(err, os.ErrNotExist) {
			t.Skip("shared/fixtures not present")
		}
		if err != nil {
			t.Fatal(err)
		}
		var out []byte
		if strings.HasSuffix(name, "status.xml") {
			s, err := Codec.DecodeStatus(in)
			if err != nil {
				t.Fatal(err)
			}
			out, err = Codec.EncodeStatus(s)
			if err != nil {
				t.Fatal(err)
			}
		} else {
			c, err := Codec.DecodeCase(in)
			if err != nil {
				t.Fatal(err)
			}
			if out, err = Codec.EncodeCase(c); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(out, in) {
			t.Errorf("%s: encoded\n%s\nwant\n%s", name, out, in)
		}
	}
}

func TestMalformed(t *testing.T) {
	valid := baseDoc(t, "case").XML()
	gbkDecl := `<?xml version="1.0" encoding="GBK"?>` + "\n"
	withName := func(name string) string {
		return strings.Replace(valid, "<APPLYER_NAME>佛山市南海区桂城智造科技有限公司</APPLYER_NAME>", "<APPLYER_NAME>"+name+"</APPLYER_NAME>", 1)
	}
	rawName := func(raw []byte) []byte {
		parts := strings.SplitN(gbkDecl+withName("@@"), "@@", 2)
		return append(append(ruletest.GBK(t, parts[0]), raw...), ruletest.GBK(t, parts[1])...)
	}
	tests := []struct {
		name string
		body []byte
	}{
		{"empty", nil},
		{"not XML", []byte("hello")},
		{"JSON", []byte(`{"caseId":"LW2026112700123"}`)},
		{"declared UTF-8", ruletest.GBK(t, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+valid)},
		{"declared utf-8 lower case", ruletest.GBK(t, `<?xml version="1.0" encoding="utf-8"?>`+"\n"+valid)},
		{"declared ISO-8859-1", ruletest.GBK(t, `<?xml version="1.0" encoding="ISO-8859-1"?>`+"\n"+valid)},
		{"declared Big5", ruletest.GBK(t, `<?xml version='1.0' encoding='Big5'?>`+"\n"+valid)},
		{"GB18030 four-byte sequence (𠮷)", rawName([]byte{0x95, 0x32, 0x82, 0x36})},
		{"byte 0xFF", rawName([]byte{0xFF})},
		{"lead byte without trail", rawName([]byte{0xB0, '<'})},
		{"trail byte 0x7F", rawName([]byte{0x81, 0x7F})},
		{"UTF-8 BOM", append([]byte{0xEF, 0xBB, 0xBF}, ruletest.GBK(t, gbkDecl+valid)...)},
		{"DOCTYPE", ruletest.GBK(t, gbkDecl+"<!DOCTYPE CASE>\n"+valid)},
		{"billion laughs", ruletest.GBK(t, gbkDecl+`<!DOCTYPE CASE [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
`+withName("&lol3;"))},
		{"external entity", ruletest.GBK(t, gbkDecl+`<!DOCTYPE CASE [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>`+"\n"+withName("&xxe;"))},
		{"undefined entity", ruletest.GBK(t, gbkDecl+withName("&nbsp;"))},
		{"character reference to NUL", ruletest.GBK(t, gbkDecl+withName("&#x0;"))},
		{"wrong root", ruletest.GBK(t, gbkDecl+strings.ReplaceAll(valid, "CASE>", "STATUS>"))},
		{"two roots", ruletest.GBK(t, gbkDecl+valid+valid)},
		{"text after root", ruletest.GBK(t, gbkDecl+valid+"trailing")},
		{"unclosed", ruletest.GBK(t, gbkDecl+strings.TrimSuffix(valid, "</CASE>\n"))},
		{"mismatched tags", ruletest.GBK(t, gbkDecl+strings.Replace(valid, "</TASK_NAME>", "</TASK_NAM>", 1))},
		{"duplicate element", ruletest.GBK(t, gbkDecl+strings.Replace(valid, "<LEGAL>", "<LEGAL>李四</LEGAL><LEGAL>", 1))},
		{"element inside a leaf", ruletest.GBK(t, gbkDecl+withName("佛山<B>某</B>公司"))},
		{"duplicate MATERIALS", ruletest.GBK(t, gbkDecl+strings.Replace(valid, "</CASE>", "<MATERIALS/></CASE>", 1))},
		{"nested too deep", ruletest.GBK(t, gbkDecl+strings.Replace(valid, "</CASE>", strings.Repeat("<X>", 20)+strings.Repeat("</X>", 20)+"</CASE>", 1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Codec.DecodeCase(tt.body)
			if !errors.Is(err, adapters.ErrMalformed) {
				t.Errorf("error %v, want ErrMalformed", err)
			}
			var ve *adapters.ValidationError
			if errors.As(err, &ve) {
				t.Errorf("a malformed body is not a validation error")
			}
		})
	}
	for _, name := range []string{"status", "ack"} {
		if _, err := Codec.DecodeStatus([]byte("<" + name + ">")); !errors.Is(err, adapters.ErrMalformed) {
			t.Errorf("status %q: %v", name, err)
		}
		if _, err := Codec.DecodeAck([]byte("<STATUS/>")); !errors.Is(err, adapters.ErrMalformed) {
			t.Errorf("ack: %v", err)
		}
	}
}

func TestDeclarations(t *testing.T) {
	body := baseDoc(t, "case").XML()
	for _, decl := range []string{
		`<?xml version="1.0" encoding="GBK"?>`,
		`<?xml version="1.0" encoding="gbk"?>`,
		`<?xml version="1.0" encoding="GB2312"?>`,
		`<?xml version="1.0" encoding="gb18030"?>`,
		`<?xml version='1.0' encoding='GBK' standalone='yes'?>`,
		`<?xml version="1.0"?>`, // no encoding: the Content-Type's GBK applies
		``,
	} {
		if _, err := Codec.DecodeCase(ruletest.GBK(t, decl+"\n"+body)); err != nil {
			t.Errorf("%s: %v", decl, err)
		}
	}
}

// TestRareCharacters: characters GBK lacks travel as character
// references, hex or decimal on input, hex on output.
func TestRareCharacters(t *testing.T) {
	d := baseDoc(t, "case")
	d.Set("APPLYER_NAME", "佛山市𠮷野家餐饮有限公司") // ruletest.GBK writes &#134071;
	d.Set("CONTACT_NAME", "吉𠮷 & <Co> \"€\"")
	c, err := Codec.DecodeCase(d.Render(t))
	if err != nil {
		t.Fatal(err)
	}
	if c.Applicant.Name != "佛山市𠮷野家餐饮有限公司" || c.Contact.Name != "吉𠮷 & <Co> \"€\"" {
		t.Fatalf("names %q %q", c.Applicant.Name, c.Contact.Name)
	}
	out, err := Codec.EncodeCase(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte("&#x20BB7;")) || bytes.Contains(out, []byte("&#134071;")) {
		t.Errorf("𠮷 not written as &#x20BB7;:\n%s", out)
	}
	if !bytes.Contains(out, []byte("&amp; &lt;Co&gt;")) {
		t.Errorf("markup not escaped:\n%s", out)
	}
	hexForm := bytes.Replace(d.Render(t), []byte("&#134071;"), []byte("&#x20BB7;"), -1)
	c2, err := Codec.DecodeCase(hexForm)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Codec.DecodeCase(out)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, c) || !reflect.DeepEqual(c2, c) {
		t.Errorf("round trip changed the case")
	}
	if !hasNonGBK("𠮷") || hasNonGBK("张伟€") {
		t.Error("hasNonGBK")
	}
}

func TestRoundTrip(t *testing.T) {
	c := decodeBase(t)
	c.Address = "line 1\nline 2\r\n\ttabbed  "
	c.Applicant.LegalRepresentative = "  张伟  "
	c.Materials[0].Content = []byte{0, 1, 2, 0xFF}
	c.Materials[0].SM3 = sm3hex(c.Materials[0].Content)
	c.Materials[0].Size = 4
	for _, tc := range []struct {
		name string
		c    adapters.Case
	}{
		{"sent", *c},
		{"delivered", c.ForDelivery(adapters.DivisionLiwan, adapters.ModeJoint, "11440605MB2C32020N000114001000", 20)},
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
		s := adapters.StatusUpdate{CaseNo: "440605202611270201", State: info.State,
			At: time.Date(2026, 12, 3, 16, 0, 0, 0, adapters.CST), Officer: "刘洋", Note: "备注"}
		if info.State == adapters.Approved {
			s.Certificate = &adapters.Certificate{Name: "医师执业证书", Number: "144440605000123"}
		}
		out, err := Codec.EncodeStatus(&s)
		if err != nil {
			t.Fatal(err)
		}
		want := "<EVENT_CODE>" + itoa(info.Code) + "</EVENT_CODE>"
		if !bytes.Contains(out, []byte(want)) || !bytes.Contains(out, ruletest.GBK(t, "<EVENT_NAME>"+info.Name+"</EVENT_NAME>")) {
			t.Errorf("%s: %s", info.State, out)
		}
		back, err := Codec.DecodeStatus(out)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*back, s) {
			t.Errorf("%s: %+v, want %+v", info.State, *back, s)
		}
	}
	if _, err := Codec.EncodeStatus(&adapters.StatusUpdate{State: "NOPE"}); !errors.Is(err, adapters.ErrUnencodable) {
		t.Errorf("unknown state: %v", err)
	}
}

func TestAckRoundTrip(t *testing.T) {
	for _, a := range []adapters.Ack{
		{CaseNo: "440605202611270201", Accepted: true},
		{Accepted: false, Reason: "材料不全"},
		{CaseNo: "440605202611270201", Accepted: false, Reason: "重复提交"},
	} {
		out, err := Codec.EncodeAck(&a)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Codec.DecodeAck(out)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if !reflect.DeepEqual(*back, a) {
			t.Errorf("%+v, want %+v", *back, a)
		}
	}
	a, err := Codec.DecodeAck(ruletest.GBK(t, `<?xml version="1.0" encoding="GBK"?><ACK><PROJECT_NO>440605202611270201</PROJECT_NO><RESULT>0</RESULT><MESSAGE>成功</MESSAGE></ACK>`))
	if err != nil || !a.Accepted || a.CaseNo != "440605202611270201" {
		t.Errorf("contract example: %+v %v", a, err)
	}
	a, err = Codec.DecodeAck(ruletest.GBK(t, `<ACK><RESULT>2</RESULT><MESSAGE>事项未开通</MESSAGE></ACK>`))
	if err != nil || a.Accepted || a.Reason != "事项未开通" {
		t.Errorf("refusal: %+v %v", a, err)
	}
}

func TestEncodeUnencodable(t *testing.T) {
	c := decodeBase(t)
	bad := *c
	bad.Address = "bell\x07"
	if _, err := Codec.EncodeCase(&bad); !errors.Is(err, adapters.ErrUnencodable) {
		t.Errorf("control character: %v", err)
	}
	bad = *c
	bad.Channel = "FAX"
	if _, err := Codec.EncodeCase(&bad); !errors.Is(err, adapters.ErrUnencodable) {
		t.Errorf("unknown channel: %v", err)
	}
}

func TestContentType(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/xml; charset=GBK":     true,
		"application/xml;charset=gbk":      true,
		"Application/XML; Charset=\"GBK\"": true,
		"application/xml; charset=GB2312":  true,
		"application/xml; charset=gb18030": true,
		"application/xml":                  true,
		"application/xml; charset=UTF-8":   false,
		"text/xml; charset=GBK":            false,
		"application/json":                 false,
		"":                                 false,
		"application/xml; charset=":        false,
	} {
		if got := Codec.AcceptsContentType(ct); got != want {
			t.Errorf("%q: %v, want %v", ct, got, want)
		}
	}
	if !Codec.AcceptsContentType(Codec.ContentType()) || Codec.Name() != "nanhai" || Codec.Division() != "440605" {
		t.Error("identity")
	}
}
