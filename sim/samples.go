package sim

import (
	"fmt"
	"strings"
	"time"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/certs"
)

// cst is China Standard Time (UTC+8), in which both districts number their
// cases by day.
var cst = time.FixedZone("CST", 8*60*60)

// SampleOptions adjusts a generated sample case.
type SampleOptions struct {
	// At is when the applicant applied (the window receives it 15 minutes
	// later); its day in UTC+8 is the day in the case number. Zero means
	// 09:30 today in UTC+8.
	At time.Time
	// MaterialSize, when positive, makes each material file that many
	// bytes (a PDF header, then filler that does not compress); zero keeps
	// the small stand-in files of the shared fixtures. For load tests with
	// realistic case sizes.
	MaterialSize int
}

func (o SampleOptions) at(now time.Time) time.Time {
	if !o.At.IsZero() {
		return o.At
	}
	n := now.In(cst)
	return time.Date(n.Year(), n.Month(), n.Day(), 9, 30, 15, 0, cst)
}

// samplePDF is a small stand-in material file, as in the shared fixtures;
// with size > 0 it is padded to exactly size bytes (or cut to it).
func samplePDF(word string, size int) []byte {
	b := []byte("%PDF-1.4\n% sample material: " + word + "\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")
	if size <= 0 {
		return b
	}
	if size <= len(b) {
		return b[:size]
	}
	out := make([]byte, size)
	n := copy(out, b)
	// xorshift filler seeded by the word: deterministic, incompressible.
	x := uint64(len(word)) | 0x9e3779b97f4a7c15
	for _, c := range []byte(word) {
		x = x*31 + uint64(c)
	}
	for i := n; i < size; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		out[i] = byte(x)
	}
	return out
}

func sampleMaterial(code, title string, form adapters.MaterialForm, fileName, word string, size int) adapters.Material {
	content := samplePDF(word, size)
	return adapters.Material{
		Code: code, Title: title, Form: form, FileName: fileName,
		SM3: certs.SM3Hex(content), Size: int64(len(content)), Content: content,
	}
}

// sampleCase is a valid new case as the district of division sends it to
// tongban, for an item owned by the other pilot district: Nanhai sends a
// company set-up (fixture nanhai-llc-setup, owned by Liwan), Liwan a
// physician registration (fixture liwan-physician, owned by Nanhai).
func sampleCase(division, caseNo string, at time.Time, size int) (*adapters.Case, error) {
	at = at.In(cst)
	switch division {
	case adapters.DivisionNanhai:
		return &adapters.Case{
			CaseNo:        caseNo,
			Item:          adapters.Item{BasicCode: "000105001000", ImplCode: "11440605MB2C31010E000105001000", Name: "内资有限责任公司设立登记"},
			OwnerDivision: adapters.DivisionLiwan,
			Applicant: adapters.Party{Kind: adapters.Enterprise, Name: "佛山市南海区桂城智造科技有限公司",
				IDType: adapters.USCC, IDNumber: "91440605MA4W00000A", LegalRepresentative: "张伟"},
			Contact:      adapters.Party{Name: "张伟", IDType: adapters.ResidentID, IDNumber: "440605199001010014", Mobile: "+8613800138000"},
			Address:      "佛山市南海区桂城街道南海大道北88号",
			Channel:      adapters.Counter,
			AppliedAt:    at,
			ReceivedBy:   adapters.Reception{OfficeCode: "11440605MB2C12340A", OfficeName: "佛山市南海区行政服务中心", Clerk: "李娜", ReceivedAt: at.Add(15 * time.Minute)},
			PromisedDays: 6,
			Materials: []adapters.Material{
				sampleMaterial("M001", "公司登记(备案)申请书", adapters.Original, "shenqingshu.pdf", "申请书", size),
				sampleMaterial("M002", "公司章程", adapters.Electronic, "zhangcheng.pdf", "章程", size),
				sampleMaterial("M003", "股东主体资格证明", adapters.Copy, "gudong.pdf", "股东", size),
				sampleMaterial("M004", "法定代表人任职文件", adapters.Original, "renzhi.pdf", "任职", size),
			},
		}, nil
	case adapters.DivisionLiwan:
		return &adapters.Case{
			CaseNo:        caseNo,
			Item:          adapters.Item{BasicCode: "000114001000", ImplCode: "11440103MB2D32020J000114001000", Name: "医师执业注册"},
			OwnerDivision: adapters.DivisionNanhai,
			Applicant:     adapters.Party{Kind: adapters.Person, Name: "陈静", IDType: adapters.ResidentID, IDNumber: "440103198506150026"},
			Contact:       adapters.Party{Name: "陈静", IDType: adapters.ResidentID, IDNumber: "440103198506150026", Mobile: "+8613912345678"},
			Address:       "广州市荔湾区中山七路50号",
			Channel:       adapters.Counter,
			AppliedAt:     at,
			ReceivedBy:    adapters.Reception{OfficeCode: "11440103MB2D56780W", OfficeName: "广州市荔湾区政务服务中心", Clerk: "黄敏", ReceivedAt: at.Add(15 * time.Minute)},
			PromisedDays:  20,
			Materials: []adapters.Material{
				sampleMaterial("M201", "医师执业注册申请审核表", adapters.Original, "shenhebiao.pdf", "审核表", size),
				sampleMaterial("M202", "医师资格证书", adapters.Copy, "zige.pdf", "资格证", size),
				sampleMaterial("M203", "健康证明", adapters.Original, "jiankang.pdf", "健康", size),
				sampleMaterial("M204", "拟执业机构聘用证明", adapters.Original, "pinyong.pdf", "聘用", size),
			},
		}, nil
	}
	return nil, fmt.Errorf("sim: no sample case for division %q", division)
}

// sampleStatus is a status update of the case the district numbers caseNo.
// A final approval carries the certificate issued.
func sampleStatus(division, caseNo string, state adapters.State, at time.Time) *adapters.StatusUpdate {
	st := &adapters.StatusUpdate{CaseNo: caseNo, State: state, At: at.In(cst), Officer: "刘洋"}
	if division == adapters.DivisionLiwan {
		st.Officer = "黄敏"
	}
	if state == adapters.Approved || state == adapters.ApprovedWithTolerance {
		st.Certificate = &adapters.Certificate{Name: "办结证明", Number: strings.ReplaceAll(caseNo, "LW", "") + "01"}
	}
	return st
}
