package adapters_test

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emmansun/gmsm/sm3"
	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/adapters/liwan"
	"github.com/tongban/tongban/adapters/nanhai"
)

// runes to draw text from: ASCII, GBK Chinese, characters GBK lacks, markup
// and whitespace.
var alphabet = []rune("aZ09 -_.&<>\"'\t\n\r张伟陈静荔湾南海区€·（）𠮷𡈼㐀\u2028\u00e9ö")

func randText(r *rand.Rand, min, max int) string {
	n := min + r.IntN(max-min+1)
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteRune(alphabet[r.IntN(len(alphabet))])
	}
	s := b.String()
	if strings.TrimSpace(s) == "" {
		s += "x"
	}
	return s
}

func randDigits(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + r.IntN(10))
	}
	return string(b)
}

func randResidentID(r *rand.Rand) string {
	s := randDigits(r, 17)
	w := []int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	sum := 0
	for i := range 17 {
		sum += int(s[i]-'0') * w[i]
	}
	return s + string("10X98765432"[sum%11])
}

func randUSCC(r *rand.Rand) string {
	const a = "0123456789ABCDEFGHJKLMNPQRTUWXY"
	b := make([]byte, 17)
	for i := range b {
		b[i] = a[r.IntN(len(a))]
	}
	return string(b) + string(adapters.USCCCheckChar(string(b)))
}

func randParty(r *rand.Rand, kind adapters.ApplicantKind) adapters.Party {
	p := adapters.Party{Kind: kind, Name: randText(r, 1, 100)}
	person := []adapters.IDType{adapters.ResidentID, adapters.Passport, adapters.HKMacaoPermit, adapters.TaiwanPermit, adapters.OtherPersonID}
	org := []adapters.IDType{adapters.USCC, adapters.OtherOrgID}
	if kind == adapters.Person || kind == "" {
		p.IDType = person[r.IntN(len(person))]
	} else {
		p.IDType = org[r.IntN(len(org))]
		p.LegalRepresentative = randText(r, 1, 10)
	}
	switch p.IDType {
	case adapters.ResidentID:
		p.IDNumber = randResidentID(r)
	case adapters.USCC:
		p.IDNumber = randUSCC(r)
	default:
		p.IDNumber = randText(r, 1, 20)
	}
	return p
}

// randCase makes a valid case as Nanhai would send it.
func randCase(r *rand.Rand) adapters.Case {
	kinds := []adapters.ApplicantKind{adapters.Person, adapters.Enterprise, adapters.Institution, adapters.SocialOrg, adapters.Government, adapters.OtherOrg}
	applied := time.Date(2000+r.IntN(50), time.Month(1+r.IntN(12)), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), 0, adapters.CST)
	c := adapters.Case{
		CaseNo:        "440605" + applied.Format("20060102") + randDigits(r, 4),
		Item:          adapters.Item{BasicCode: randDigits(r, 12), ImplCode: randText(r, 1, 36), Name: randText(r, 1, 200)},
		OwnerDivision: adapters.DivisionLiwan,
		Applicant:     randParty(r, kinds[r.IntN(len(kinds))]),
		Contact:       randParty(r, ""),
		Channel:       []adapters.Channel{adapters.Counter, adapters.Online, adapters.Post}[r.IntN(3)],
		AppliedAt:     applied,
		ReceivedBy: adapters.Reception{OfficeCode: randUSCC(r), OfficeName: randText(r, 1, 30), Clerk: randText(r, 1, 10),
			ReceivedAt: applied.Add(time.Duration(r.IntN(100000)) * time.Second)},
	}
	c.Contact.Kind = ""
	c.Contact.Mobile = "+861" + randDigits(r, 10)
	if r.IntN(2) == 0 {
		c.Address = randText(r, 1, 50)
	}
	if r.IntN(2) == 0 {
		c.PromisedDays = 1 + r.IntN(60)
	}
	for i := range r.IntN(4) {
		content := make([]byte, 1+r.IntN(300))
		for j := range content {
			content[j] = byte(r.IntN(256))
		}
		sum := sm3.Sum(content)
		c.Materials = append(c.Materials, adapters.Material{
			Code: fmt.Sprintf("M%03d", i), Title: randText(r, 1, 20),
			Form:     []adapters.MaterialForm{adapters.Original, adapters.Copy, adapters.Electronic}[r.IntN(3)],
			FileName: randText(r, 1, 20) + ".pdf", SM3: hex.EncodeToString(sum[:]), Size: int64(len(content)), Content: content,
		})
	}
	return c
}

// TestCrossCodecRoundTrip: random valid cases travel Nanhai → canonical →
// Nanhai, then are delivered to Liwan and back to Nanhai, and nothing is
// lost on the way.
func TestCrossCodecRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		c := randCase(r)
		out, err := nanhai.Codec.EncodeCase(&c)
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		back, err := nanhai.Codec.DecodeCase(out)
		if err != nil {
			t.Fatalf("%d: %v\n%s", i, err, out)
		}
		if !reflect.DeepEqual(*back, c) {
			t.Fatalf("%d: Nanhai round trip\n%+v\nwant\n%+v", i, *back, c)
		}

		toLiwan := back.ForDelivery(adapters.DivisionNanhai, adapters.ModeRemoteReceipt, "11440103MB2D31010A000105001000", 6)
		out, err = liwan.Codec.EncodeCase(&toLiwan)
		if err != nil {
			t.Fatal(err)
		}
		atLiwan, err := liwan.Codec.DecodeDeliveredCase(out)
		if err != nil {
			t.Fatalf("%d: %v\n%s", i, err, out)
		}
		if !reflect.DeepEqual(*atLiwan, toLiwan) {
			t.Fatalf("%d: delivered to Liwan\n%+v\nwant\n%+v", i, *atLiwan, toLiwan)
		}

		// Liwan sends a case of its own with the same content.
		fromLiwan := c
		fromLiwan.CaseNo = "LW" + c.AppliedAt.Format("20060102") + randDigits(r, 5)
		fromLiwan.OwnerDivision = adapters.DivisionNanhai
		out, err = liwan.Codec.EncodeCase(&fromLiwan)
		if err != nil {
			t.Fatal(err)
		}
		got, err := liwan.Codec.DecodeCase(out)
		if err != nil {
			t.Fatalf("%d: %v\n%s", i, err, out)
		}
		if !reflect.DeepEqual(*got, fromLiwan) {
			t.Fatalf("%d: Liwan round trip\n%+v\nwant\n%+v", i, *got, fromLiwan)
		}
		toNanhai := got.ForDelivery(adapters.DivisionLiwan, adapters.ModeJoint, "11440605MB2C32020N000114001000", 20)
		out, err = nanhai.Codec.EncodeCase(&toNanhai)
		if err != nil {
			t.Fatal(err)
		}
		atNanhai, err := nanhai.Codec.DecodeDeliveredCase(out)
		if err != nil {
			t.Fatalf("%d: %v\n%s", i, err, out)
		}
		if !reflect.DeepEqual(*atNanhai, toNanhai) {
			t.Fatalf("%d: delivered to Nanhai\n%+v\nwant\n%+v", i, *atNanhai, toNanhai)
		}
	}
}

// TestCrossCodecStatus: every state crosses both ways.
func TestCrossCodecStatus(t *testing.T) {
	for _, info := range adapters.States {
		s := adapters.StatusUpdate{CaseNo: "440605202611270201", State: info.State,
			At: time.Date(2026, 12, 3, 16, 0, 0, 0, adapters.CST), Officer: "刘洋", Note: "说明 𠮷"}
		if info.State.Terminal() {
			s.Certificate = &adapters.Certificate{Name: "证", Number: "1"}
		}
		out, err := nanhai.Codec.EncodeStatus(&s)
		if err != nil {
			t.Fatal(err)
		}
		fromNanhai, err := nanhai.Codec.DecodeStatus(out)
		if err != nil {
			t.Fatal(err)
		}
		fromNanhai.CaseNo = "LW2026112700123"
		out, err = liwan.Codec.EncodeStatus(fromNanhai)
		if err != nil {
			t.Fatal(err)
		}
		atLiwan, err := liwan.Codec.DecodeStatus(out)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(atLiwan, fromNanhai) {
			t.Errorf("%s: %+v, want %+v", info.State, atLiwan, fromNanhai)
		}
	}
}
