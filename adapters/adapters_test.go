package adapters

import (
	"reflect"
	"testing"
	"time"
)

func TestStates(t *testing.T) {
	if len(States) != 16 {
		t.Fatalf("%d states", len(States))
	}
	terminal := map[int]bool{11: true, 12: true, 13: true, 15: true}
	withdrawal := map[int]bool{2: true, 14: true, 16: true}
	for i, info := range States {
		if info.Code != i+1 {
			t.Errorf("%s has code %d at %d", info.State, info.Code, i)
		}
		got, ok := info.State.Info()
		if !ok || got != info {
			t.Errorf("%s.Info() = %v %v", info.State, got, ok)
		}
		if s, ok := StateByCode(info.Code); !ok || s != info.State {
			t.Errorf("StateByCode(%d) = %s", info.Code, s)
		}
		if info.State.Terminal() != terminal[info.Code] {
			t.Errorf("%s.Terminal() = %v", info.State, info.State.Terminal())
		}
		if info.State.Withdrawal() != withdrawal[info.Code] {
			t.Errorf("%s.Withdrawal() = %v", info.State, info.State.Withdrawal())
		}
	}
	if info, _ := Approved.Info(); info.Code != 11 || info.Name != "办结(通过)" {
		t.Errorf("Approved: %+v", info)
	}
	if info, _ := WithdrawalPending.Info(); info.Code != 16 || info.Name != "撤件待确认" {
		t.Errorf("WithdrawalPending: %+v", info)
	}
	for _, c := range []int{0, 17, -1} {
		if _, ok := StateByCode(c); ok {
			t.Errorf("StateByCode(%d) ok", c)
		}
	}
	if _, ok := State("DONE").Info(); ok {
		t.Error("unknown state has info")
	}
}

func TestResidentID(t *testing.T) {
	for s, want := range map[string]string{
		"440605199001010014": "",
		"440103198506150026": "",
		"11010519491231002X": "",
		"44060519700101004X": "",
		"440605199001010015": CodeCheckDigit,
		"110105194912310021": CodeCheckDigit,
		"11010519491231002x": CodeFormat,
		"4406051990010100":   CodeLength,
		"44060519900101001４": CodeLength, // a full-width digit is 3 bytes
		"A40605199001010014": CodeFormat,
		"":                   CodeLength,
	} {
		if got := residentIDCheck(s); got != want {
			t.Errorf("%q: %q, want %q", s, got, want)
		}
		if ResidentIDValid(s) != (want == "") {
			t.Errorf("ResidentIDValid(%q)", s)
		}
	}
}

func TestUSCC(t *testing.T) {
	for s, want := range map[string]string{
		"91440605MA4W00000A": "",
		"11440605MB2C12340A": "",
		"11440103MB2D56780W": "",
		"52440103MA59XXXXX8": "",
		"12440103455860000E": "",
		"91440101MA5CU1NP4W": "",
		"91440605MA4W00000B": CodeCheckDigit,
		"91440605MA4W00000I": CodeFormat,
		"91440605MA4W0000OA": CodeFormat,
		"91440605MA4W0000SA": CodeFormat,
		"91440605MA4W0000VA": CodeFormat,
		"91440605MA4W0000ZA": CodeFormat,
		"91440605ma4w00000a": CodeFormat,
		"91440605MA4W00000":  CodeLength,
	} {
		if got := usccCheck(s); got != want {
			t.Errorf("%q: %q, want %q", s, got, want)
		}
		if USCCValid(s) != (want == "") {
			t.Errorf("USCCValid(%q)", s)
		}
	}
	// A check value of 0 (31 - 0 when the sum is a multiple of 31) is '0'.
	found := false
	for i := 0; i < 31*31 && !found; i++ {
		base := "9144060" + string(usccAlphabet[i%31]) + string(usccAlphabet[i/31]) + "00000000"
		if c := USCCCheckChar(base); c == '0' {
			found = true
			if !USCCValid(base + "0") {
				t.Errorf("%s0 should be valid", base)
			}
		}
	}
	if !found {
		t.Error("no code with check character 0 found")
	}
	if USCCCheckChar("short") != 0 || USCCCheckChar("I1440605MA4W00000") != 0 {
		t.Error("USCCCheckChar of bad input")
	}
}

func TestCaseNumberRule(t *testing.T) {
	nanhai, liwan := CaseNumberRule("440605", 4), CaseNumberRule("LW", 5)
	for s, want := range map[string]bool{
		"440605202611270001":  true,
		"440605202802290001":  true,
		"440605202702290001":  false,
		"440605202611310001":  false,
		"44060520261127001":   false,
		"4406052026112700012": false,
		"440103202611270001":  false,
		"44060520261127000A":  false,
	} {
		if nanhai(s) != want {
			t.Errorf("nanhai %q: %v", s, !want)
		}
	}
	for s, want := range map[string]bool{
		"LW2026112700123":  true,
		"LW202611270012":   false,
		"lw2026112700123":  false,
		"LW2026113200123":  false,
		"LW20261127001234": false,
	} {
		if liwan(s) != want {
			t.Errorf("liwan %q: %v", s, !want)
		}
	}
}

func TestMobileValid(t *testing.T) {
	for s, want := range map[string]bool{
		"+8613800138000":  true,
		"+8619912345678":  true,
		"13800138000":     false,
		"+8623800138000":  false,
		"+861380013800":   false,
		"+86138001380000": false,
		"+85213800138000": false,
	} {
		if MobileValid(s) != want {
			t.Errorf("%q", s)
		}
	}
}

func TestForDelivery(t *testing.T) {
	c := Case{
		CaseNo: "440605202611270001", Item: Item{BasicCode: "000105001000", ImplCode: "sender", Name: "n"},
		PromisedDays: 3, Materials: []Material{{Code: "M1"}},
	}
	d := c.ForDelivery(DivisionNanhai, ModeRemoteReceipt, "target", 6)
	want := Case{
		Item: Item{BasicCode: "000105001000", ImplCode: "target", Name: "n"}, PromisedDays: 6,
		Materials: []Material{{Code: "M1"}}, HandlingMode: ModeRemoteReceipt,
		Origin: &Origin{Division: DivisionNanhai, CaseNo: "440605202611270001"},
	}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("%+v", d)
	}
	d.Materials[0].Code = "changed"
	if c.Materials[0].Code != "M1" || c.CaseNo == "" || c.Origin != nil || c.Item.ImplCode != "sender" {
		t.Error("ForDelivery changed its receiver")
	}
}

func TestProblemsOrderAndContainers(t *testing.T) {
	n := Naming{
		Order: []Field{FieldCaseNo, FieldApplicant, FieldApplicantName, FieldReceivedAt, FieldOfficeCode,
			FieldMaterials, FieldMaterial, FieldMaterialCode, FieldMaterialSM3},
		Name: func(r FieldRef) string {
			if r.Field.IsMaterialField() {
				return "m" + string(rune('0'+r.Index)) + "/" + map[Field]string{FieldMaterial: "", FieldMaterialCode: "code", FieldMaterialSM3: "sm3"}[r.Field]
			}
			return map[Field]string{FieldCaseNo: "no", FieldApplicant: "a", FieldApplicantName: "a/name", FieldReceivedAt: "at", FieldOfficeCode: "office"}[r.Field]
		},
	}
	var p Problems
	if p.Err(n) != nil {
		t.Fatal("no problems, but an error")
	}
	p.Add(MaterialRef(FieldMaterialSM3, 1), CodeDigest, "x")
	p.Add(MaterialRef(FieldMaterialCode, 1), CodeRequired, "x")
	p.Add(MaterialRef(FieldMaterialSM3, 0), CodeFormat, "x")
	p.Add(Ref(FieldOfficeCode), CodeCheckDigit, "x")
	p.Add(Ref(FieldReceivedAt), CodeOrder, "x")
	p.Add(Ref(FieldReceivedAt), CodeFormat, "second problem on a field is dropped")
	p.Add(Ref(FieldApplicant), CodeType, "x")
	p.Add(Ref(FieldApplicantName), CodeRequired, "hidden by its container")
	p.Add(MaterialRef(FieldMaterial, 2), CodeType, "x")
	p.Add(MaterialRef(FieldMaterialCode, 2), CodeRequired, "hidden by its container")
	p.Add(Ref(FieldCaseNo), CodeRequired, "x")
	err := p.Err(n).(*ValidationError)
	var got []string
	for _, fe := range err.Errors {
		got = append(got, fe.Field+":"+fe.Code)
	}
	want := []string{"no:required", "a:type", "at:order", "office:check_digit", "m0/sm3:format", "m1/code:required", "m1/sm3:digest", "m2/:type"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%v\nwant %v", got, want)
	}
	if err.Error() == "" || p.Len() != 8 {
		t.Error(err.Error(), p.Len())
	}
}

func TestTimeYearRange(t *testing.T) {
	var p Problems
	v := validator{p: &p}
	if v.time(Ref(FieldAppliedAt), time.Date(9999, 12, 31, 20, 0, 0, 0, time.UTC)) {
		t.Error("a time in year 10000 of China accepted")
	}
	if !v.time(Ref(FieldAt), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Error("a normal time refused")
	}
}

func TestMediaTypeIs(t *testing.T) {
	if !MediaTypeIs("application/json", "application/json", true) || MediaTypeIs("application/json", "application/json", false, "utf-8") {
		t.Error("absent charset")
	}
	if MediaTypeIs("application/json; charset", "application/json", true) {
		t.Error("unparsable")
	}
}

func TestTextValid(t *testing.T) {
	for s, want := range map[string]bool{"张伟 𠮷\t\n\r": true, "a\x00": false, "a\x1f": false, "\uFFFE": false, "\xff": false, "\uFFFD": false} {
		if TextValid(s) != want {
			t.Errorf("%q", s)
		}
	}
}
