// Package nanhai is the codec of Nanhai District's approval system (南海区行政
// 审批系统): XML in GBK, element names of the national exchange table
// up_pro_accept, times yyyyMMddHHmmss in China's time. The contract is
// shared/contracts/districts.md.
package nanhai

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tongban/tongban/adapters"
)

// Codec is Nanhai's codec.
var Codec adapters.Codec = codec{}

type codec struct{}

// ContentTypeGBK is the media type Nanhai's documents are sent with.
const ContentTypeGBK = "application/xml; charset=GBK"

const timeLayout = "20060102150405"

// caseNoValid checks Nanhai's case numbers: 440605 + yyyyMMdd + 4 digits.
var caseNoValid = adapters.CaseNumberRule(adapters.DivisionNanhai, 4)

const caseNoFormat = "440605 + yyyyMMdd + 4 digits"

func (codec) Name() string        { return "nanhai" }
func (codec) Division() string    { return adapters.DivisionNanhai }
func (codec) ContentType() string { return ContentTypeGBK }

// AcceptsContentType accepts application/xml with a charset of the GBK
// family (GBK, GB2312, GB18030; all read as GBK) or with none, the XML
// declaration then being authoritative.
func (codec) AcceptsContentType(ct string) bool {
	return adapters.MediaTypeIs(ct, "application/xml", true, "GBK", "GB2312", "GB18030")
}

// Code tables A, B and D and the handling modes, Nanhai side.
var (
	kinds = map[string]adapters.ApplicantKind{
		"1": adapters.Person, "2": adapters.Enterprise, "3": adapters.Institution,
		"4": adapters.SocialOrg, "5": adapters.Government, "6": adapters.OtherOrg,
	}
	idTypes = map[string]adapters.IDType{
		"111": adapters.ResidentID, "001": adapters.USCC, "414": adapters.Passport,
		"516": adapters.HKMacaoPermit, "511": adapters.TaiwanPermit,
		"999": adapters.OtherPersonID, "099": adapters.OtherOrgID,
	}
	channels = map[string]adapters.Channel{"1": adapters.Counter, "2": adapters.Online, "3": adapters.Post}
	forms    = map[string]adapters.MaterialForm{"1": adapters.Original, "2": adapters.Copy, "3": adapters.Electronic}
	modes    = map[string]adapters.HandlingMode{"1": adapters.ModeOnline, "2": adapters.ModeRemoteReceipt, "3": adapters.ModeJoint}
)

// code returns the wire code of a canonical value in table m.
func code[V comparable](m map[string]V, v V) (string, bool) {
	for k, x := range m {
		if x == v {
			return k, true
		}
	}
	return "", false
}

// lookup maps a wire code through table m; an unknown code is a problem.
func lookup[V any](m map[string]V, s string, ref adapters.FieldRef, p *adapters.Problems, what string) V {
	var zero V
	if s == "" {
		return zero
	}
	v, ok := m[s]
	if !ok {
		p.Add(ref, adapters.CodeUnknown, fmt.Sprintf("%q is not a %s code", s, what))
	}
	return v
}

// Element names of each canonical field.
var names = map[adapters.Field]string{
	adapters.FieldCaseNo:              "PROJECT_NO",
	adapters.FieldBasicCode:           "CATALOG_CODE",
	adapters.FieldImplCode:            "TASK_CODE",
	adapters.FieldItemName:            "TASK_NAME",
	adapters.FieldOwnerDivision:       "TARGET_DIVISION",
	adapters.FieldApplicantKind:       "APPLYER_TYPE",
	adapters.FieldApplicantName:       "APPLYER_NAME",
	adapters.FieldApplicantIDType:     "APPLYER_PAGE_TYPE",
	adapters.FieldApplicantIDNumber:   "APPLYER_PAGE_CODE",
	adapters.FieldLegalRepresentative: "LEGAL",
	adapters.FieldContactName:         "CONTACT_NAME",
	adapters.FieldContactIDType:       "CONTACT_PAGE_TYPE",
	adapters.FieldContactIDNumber:     "CONTACT_PAGE_CODE",
	adapters.FieldContactMobile:       "CONTACT_MOBILE",
	adapters.FieldAddress:             "ADDRESS",
	adapters.FieldChannel:             "APPLY_TYPE",
	adapters.FieldAppliedAt:           "APPLY_DATE",
	adapters.FieldOfficeCode:          "ACCEPT_ORG_CODE",
	adapters.FieldOfficeName:          "ACCEPT_ORG_NAME",
	adapters.FieldClerk:               "HANDLE_USER_NAME",
	adapters.FieldReceivedAt:          "ACCEPT_DATE",
	adapters.FieldPromisedDays:        "PROMISE_DAYS",
	adapters.FieldOriginDivision:      "SOURCE_DIVISION",
	adapters.FieldOriginCaseNo:        "SOURCE_PROJECT_NO",
	adapters.FieldHandlingMode:        "HANDLE_MODE",
	adapters.FieldMaterials:           "MATERIALS",
	adapters.FieldMaterialCode:        "CODE",
	adapters.FieldMaterialTitle:       "NAME",
	adapters.FieldMaterialForm:        "GET_TYPE",
	adapters.FieldMaterialFileName:    "FILE_NAME",
	adapters.FieldMaterialSM3:         "SM3",
	adapters.FieldMaterialContent:     "CONTENT",
	adapters.FieldStatusCaseNo:        "PROJECT_NO",
	adapters.FieldState:               "EVENT_CODE",
	adapters.FieldAt:                  "EVENT_TIME",
	adapters.FieldOfficer:             "HANDLE_USER_NAME",
	adapters.FieldNote:                "HANDLE_EXPLAIN",
	adapters.FieldCertificateName:     "RESULT_CERT_NAME",
	adapters.FieldCertificateNumber:   "RESULT_CERT_NO",
	adapters.FieldAckCaseNo:           "PROJECT_NO",
	adapters.FieldAckAccepted:         "RESULT",
	adapters.FieldAckReason:           "MESSAGE",
}

// naming orders fields as districts.md's table for <CASE> lists them; the
// three elements of a delivered case follow PROMISE_DAYS.
var naming = adapters.Naming{
	Order: []adapters.Field{
		adapters.FieldCaseNo, adapters.FieldBasicCode, adapters.FieldImplCode,
		adapters.FieldItemName, adapters.FieldOwnerDivision,
		adapters.FieldApplicantKind, adapters.FieldApplicantName,
		adapters.FieldApplicantIDType, adapters.FieldApplicantIDNumber,
		adapters.FieldLegalRepresentative, adapters.FieldContactName,
		adapters.FieldContactIDType, adapters.FieldContactIDNumber,
		adapters.FieldContactMobile, adapters.FieldAddress, adapters.FieldChannel,
		adapters.FieldAppliedAt, adapters.FieldOfficeCode, adapters.FieldOfficeName,
		adapters.FieldClerk, adapters.FieldReceivedAt, adapters.FieldPromisedDays,
		adapters.FieldOriginDivision, adapters.FieldOriginCaseNo, adapters.FieldHandlingMode,
		adapters.FieldMaterials, adapters.FieldMaterial,
		adapters.FieldMaterialCode, adapters.FieldMaterialTitle, adapters.FieldMaterialForm,
		adapters.FieldMaterialFileName, adapters.FieldMaterialSM3, adapters.FieldMaterialSize,
		adapters.FieldMaterialContent,
		adapters.FieldStatusCaseNo, adapters.FieldState, adapters.FieldAt,
		adapters.FieldOfficer, adapters.FieldNote, adapters.FieldCertificateName,
		adapters.FieldCertificateNumber,
		adapters.FieldAckCaseNo, adapters.FieldAckAccepted, adapters.FieldAckReason,
	},
	Name: func(r adapters.FieldRef) string {
		if r.Field == adapters.FieldMaterial {
			return fmt.Sprintf("MATERIALS/MATERIAL[%d]", r.Index+1)
		}
		if r.Field.IsMaterialField() {
			return fmt.Sprintf("MATERIALS/MATERIAL[%d]/%s", r.Index+1, names[r.Field])
		}
		return names[r.Field]
	},
}

var caseElements = []string{
	"PROJECT_NO", "CATALOG_CODE", "TASK_CODE", "TASK_NAME", "TARGET_DIVISION",
	"APPLYER_TYPE", "APPLYER_NAME", "APPLYER_PAGE_TYPE", "APPLYER_PAGE_CODE", "LEGAL",
	"CONTACT_NAME", "CONTACT_PAGE_TYPE", "CONTACT_PAGE_CODE", "CONTACT_MOBILE",
	"ADDRESS", "APPLY_TYPE", "APPLY_DATE", "ACCEPT_ORG_CODE", "ACCEPT_ORG_NAME",
	"HANDLE_USER_NAME", "ACCEPT_DATE", "PROMISE_DAYS",
	"SOURCE_DIVISION", "SOURCE_PROJECT_NO", "HANDLE_MODE",
}

var materialElements = []string{"CODE", "NAME", "GET_TYPE", "FILE_NAME", "SM3", "CONTENT"}

func (codec) DecodeCase(b []byte) (*adapters.Case, error)          { return decodeCase(b, false) }
func (codec) DecodeDeliveredCase(b []byte) (*adapters.Case, error) { return decodeCase(b, true) }

func decodeCase(b []byte, delivered bool) (*adapters.Case, error) {
	root, err := parse(b, "CASE")
	if err != nil {
		return nil, err
	}
	l, err := root.leaves(caseElements...)
	if err != nil {
		return nil, err
	}
	var p adapters.Problems
	ref := adapters.Ref
	c := &adapters.Case{
		Item:          adapters.Item{BasicCode: l["CATALOG_CODE"], ImplCode: l["TASK_CODE"], Name: l["TASK_NAME"]},
		OwnerDivision: l["TARGET_DIVISION"],
		Applicant: adapters.Party{
			Kind:                lookup(kinds, l["APPLYER_TYPE"], ref(adapters.FieldApplicantKind), &p, "table A (APPLYER_TYPE)"),
			Name:                l["APPLYER_NAME"],
			IDType:              lookup(idTypes, l["APPLYER_PAGE_TYPE"], ref(adapters.FieldApplicantIDType), &p, "table B (ID type)"),
			IDNumber:            l["APPLYER_PAGE_CODE"],
			LegalRepresentative: l["LEGAL"],
		},
		Contact: adapters.Party{
			Name:     l["CONTACT_NAME"],
			IDType:   lookup(idTypes, l["CONTACT_PAGE_TYPE"], ref(adapters.FieldContactIDType), &p, "table B (ID type)"),
			IDNumber: l["CONTACT_PAGE_CODE"],
			Mobile:   mobile(l["CONTACT_MOBILE"], &p),
		},
		Address:   l["ADDRESS"],
		Channel:   lookup(channels, l["APPLY_TYPE"], ref(adapters.FieldChannel), &p, "table D (APPLY_TYPE)"),
		AppliedAt: parseTime(l["APPLY_DATE"], ref(adapters.FieldAppliedAt), &p),
		ReceivedBy: adapters.Reception{
			OfficeCode: l["ACCEPT_ORG_CODE"],
			OfficeName: l["ACCEPT_ORG_NAME"],
			Clerk:      l["HANDLE_USER_NAME"],
			ReceivedAt: parseTime(l["ACCEPT_DATE"], ref(adapters.FieldReceivedAt), &p),
		},
		PromisedDays: promiseDays(l["PROMISE_DAYS"], &p),
	}
	if delivered {
		c.HandlingMode = lookup(modes, l["HANDLE_MODE"], ref(adapters.FieldHandlingMode), &p, "HANDLE_MODE")
		c.Origin = &adapters.Origin{Division: l["SOURCE_DIVISION"], CaseNo: l["SOURCE_PROJECT_NO"]}
	} else {
		c.CaseNo = l["PROJECT_NO"]
	}
	ms, err := root.child("MATERIALS")
	if err != nil {
		return nil, err
	}
	if ms != nil {
		for _, mn := range ms.children {
			if mn.name != "MATERIAL" {
				continue
			}
			i := len(c.Materials)
			ml, err := mn.leaves(materialElements...)
			if err != nil {
				return nil, err
			}
			content := decodeContent(ml["CONTENT"], adapters.MaterialRef(adapters.FieldMaterialContent, i), &p)
			c.Materials = append(c.Materials, adapters.Material{
				Code:     ml["CODE"],
				Title:    ml["NAME"],
				Form:     lookup(forms, ml["GET_TYPE"], adapters.MaterialRef(adapters.FieldMaterialForm, i), &p, "table D (GET_TYPE)"),
				FileName: ml["FILE_NAME"],
				SM3:      strings.ToLower(ml["SM3"]),
				Size:     int64(len(content)),
				Content:  content,
			})
		}
	}
	adapters.ValidateCase(c, adapters.CaseRules{Delivered: delivered, CaseNo: caseNoValid, CaseNoFormat: caseNoFormat}, &p)
	if err := p.Err(naming); err != nil {
		return nil, err
	}
	return c, nil
}

// mobile turns Nanhai's 11 digits into E.164.
func mobile(s string, p *adapters.Problems) string {
	if s == "" {
		return ""
	}
	if len(s) != 11 || s[0] != '1' || !digits(s) {
		p.Add(adapters.Ref(adapters.FieldContactMobile), adapters.CodeFormat, "mobile must be 11 digits starting with 1")
		return ""
	}
	return "+86" + s
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func parseTime(s string, ref adapters.FieldRef, p *adapters.Problems) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := time.ParseInLocation(timeLayout, s, adapters.CST)
	if len(s) != len(timeLayout) || !digits(s) || err != nil {
		p.Add(ref, adapters.CodeFormat, "time must be yyyyMMddHHmmss")
		return time.Time{}
	}
	return t
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(adapters.CST).Format(timeLayout)
}

func promiseDays(s string, p *adapters.Problems) int {
	if s == "" {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if !digits(s) || err != nil || n <= 0 {
		p.Add(adapters.Ref(adapters.FieldPromisedDays), adapters.CodeFormat, "promised working days must be a positive integer")
		return 0
	}
	return int(n)
}

// decodeContent reads base64 (RFC 4648 §4, padded), ignoring whitespace.
func decodeContent(s string, ref adapters.FieldRef, p *adapters.Problems) []byte {
	s = adapters.StripBase64Space(s)
	if s == "" {
		return nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		p.Add(ref, adapters.CodeFormat, "content must be base64 (RFC 4648 §4, padded)")
		return nil
	}
	return b
}

func unencodable(format string, args ...any) error {
	return fmt.Errorf("%w: %s", adapters.ErrUnencodable, fmt.Sprintf(format, args...))
}

// EncodeCase writes <CASE>: the delivered form (no PROJECT_NO; SOURCE_*
// and HANDLE_MODE) when c.Origin is set. Elements follow districts.md's
// table order; empty optional elements are left out.
func (codec) EncodeCase(c *adapters.Case) ([]byte, error) {
	size := 0
	for _, m := range c.Materials {
		size += base64.StdEncoding.EncodedLen(len(m.Content)) + 256
	}
	w := newWriter("CASE", size+4096)
	if c.Origin == nil {
		w.elem("PROJECT_NO", c.CaseNo)
	}
	w.elem("CATALOG_CODE", c.Item.BasicCode)
	w.elem("TASK_CODE", c.Item.ImplCode)
	w.elem("TASK_NAME", c.Item.Name)
	w.elem("TARGET_DIVISION", c.OwnerDivision)
	kind, ok := code(kinds, c.Applicant.Kind)
	if !ok {
		return nil, unencodable("applicant kind %q", c.Applicant.Kind)
	}
	w.elem("APPLYER_TYPE", kind)
	w.elem("APPLYER_NAME", c.Applicant.Name)
	t, ok := code(idTypes, c.Applicant.IDType)
	if !ok {
		return nil, unencodable("ID type %q", c.Applicant.IDType)
	}
	w.elem("APPLYER_PAGE_TYPE", t)
	w.elem("APPLYER_PAGE_CODE", c.Applicant.IDNumber)
	w.opt("LEGAL", c.Applicant.LegalRepresentative)
	w.elem("CONTACT_NAME", c.Contact.Name)
	if t, ok = code(idTypes, c.Contact.IDType); !ok {
		return nil, unencodable("ID type %q", c.Contact.IDType)
	}
	w.elem("CONTACT_PAGE_TYPE", t)
	w.elem("CONTACT_PAGE_CODE", c.Contact.IDNumber)
	w.elem("CONTACT_MOBILE", strings.TrimPrefix(c.Contact.Mobile, "+86"))
	w.opt("ADDRESS", c.Address)
	ch, ok := code(channels, c.Channel)
	if !ok {
		return nil, unencodable("channel %q", c.Channel)
	}
	w.elem("APPLY_TYPE", ch)
	w.elem("APPLY_DATE", formatTime(c.AppliedAt))
	w.elem("ACCEPT_ORG_CODE", c.ReceivedBy.OfficeCode)
	w.elem("ACCEPT_ORG_NAME", c.ReceivedBy.OfficeName)
	w.elem("HANDLE_USER_NAME", c.ReceivedBy.Clerk)
	w.elem("ACCEPT_DATE", formatTime(c.ReceivedBy.ReceivedAt))
	if c.PromisedDays > 0 {
		w.elem("PROMISE_DAYS", strconv.Itoa(c.PromisedDays))
	}
	if c.Origin != nil {
		w.elem("SOURCE_DIVISION", c.Origin.Division)
		w.elem("SOURCE_PROJECT_NO", c.Origin.CaseNo)
		m, ok := code(modes, c.HandlingMode)
		if !ok {
			return nil, unencodable("handling mode %q", c.HandlingMode)
		}
		w.elem("HANDLE_MODE", m)
	}
	if len(c.Materials) > 0 {
		w.open("MATERIALS")
		for _, m := range c.Materials {
			w.open("MATERIAL")
			w.elem("CODE", m.Code)
			w.elem("NAME", m.Title)
			f, ok := code(forms, m.Form)
			if !ok {
				return nil, unencodable("material form %q", m.Form)
			}
			w.elem("GET_TYPE", f)
			w.elem("FILE_NAME", m.FileName)
			w.elem("SM3", strings.ToLower(m.SM3))
			w.base64("CONTENT", m.Content)
			w.close("MATERIAL")
		}
		w.close("MATERIALS")
	}
	return w.bytes("CASE")
}

var statusElements = []string{
	"PROJECT_NO", "EVENT_CODE", "EVENT_NAME", "EVENT_TIME", "HANDLE_USER_NAME",
	"HANDLE_EXPLAIN", "RESULT_CERT_NAME", "RESULT_CERT_NO",
}

// DecodeStatus reads <STATUS>. EVENT_NAME is ignored: the state is
// EVENT_CODE's.
func (codec) DecodeStatus(b []byte) (*adapters.StatusUpdate, error) {
	root, err := parse(b, "STATUS")
	if err != nil {
		return nil, err
	}
	l, err := root.leaves(statusElements...)
	if err != nil {
		return nil, err
	}
	var p adapters.Problems
	s := &adapters.StatusUpdate{
		CaseNo:  l["PROJECT_NO"],
		At:      parseTime(l["EVENT_TIME"], adapters.Ref(adapters.FieldAt), &p),
		Officer: l["HANDLE_USER_NAME"],
		Note:    l["HANDLE_EXPLAIN"],
	}
	if ec := l["EVENT_CODE"]; ec != "" {
		n, err := strconv.Atoi(ec)
		st, ok := adapters.StateByCode(n)
		if err != nil || !digits(ec) || !ok {
			p.Add(adapters.Ref(adapters.FieldState), adapters.CodeUnknown, fmt.Sprintf("%q is not an EVENT_CODE of table C", ec))
		}
		s.State = st
	}
	if l["RESULT_CERT_NAME"] != "" || l["RESULT_CERT_NO"] != "" {
		s.Certificate = &adapters.Certificate{Name: l["RESULT_CERT_NAME"], Number: l["RESULT_CERT_NO"]}
	}
	adapters.ValidateStatus(s, caseNoValid, caseNoFormat, &p)
	if err := p.Err(naming); err != nil {
		return nil, err
	}
	return s, nil
}

// EncodeStatus writes <STATUS>, EVENT_NAME from table C.
func (codec) EncodeStatus(s *adapters.StatusUpdate) ([]byte, error) {
	info, ok := s.State.Info()
	if !ok {
		return nil, unencodable("state %q", s.State)
	}
	w := newWriter("STATUS", 0)
	w.elem("PROJECT_NO", s.CaseNo)
	w.elem("EVENT_CODE", strconv.Itoa(info.Code))
	w.elem("EVENT_NAME", info.Name)
	w.elem("EVENT_TIME", formatTime(s.At))
	w.elem("HANDLE_USER_NAME", s.Officer)
	w.opt("HANDLE_EXPLAIN", s.Note)
	if s.Certificate != nil {
		w.elem("RESULT_CERT_NAME", s.Certificate.Name)
		w.elem("RESULT_CERT_NO", s.Certificate.Number)
	}
	return w.bytes("STATUS")
}

// DecodeAck reads <ACK>: RESULT 0 is an acceptance (MESSAGE ignored), any
// other number a refusal with MESSAGE as the reason.
func (codec) DecodeAck(b []byte) (*adapters.Ack, error) {
	root, err := parse(b, "ACK")
	if err != nil {
		return nil, err
	}
	l, err := root.leaves("PROJECT_NO", "RESULT", "MESSAGE")
	if err != nil {
		return nil, err
	}
	var p adapters.Problems
	a := &adapters.Ack{CaseNo: l["PROJECT_NO"]}
	switch r := strings.TrimSpace(l["RESULT"]); {
	case r == "":
		p.Add(adapters.Ref(adapters.FieldAckAccepted), adapters.CodeRequired, "required")
	case !digits(strings.TrimPrefix(r, "-")):
		p.Add(adapters.Ref(adapters.FieldAckAccepted), adapters.CodeFormat, "RESULT must be a number")
	default:
		a.Accepted = strings.Trim(r, "0") == ""
		if !a.Accepted {
			a.Reason = l["MESSAGE"]
		}
	}
	adapters.ValidateAck(a, &p)
	if err := p.Err(naming); err != nil {
		return nil, err
	}
	return a, nil
}

// EncodeAck writes <ACK>: RESULT 0 and MESSAGE 成功 on acceptance, RESULT 1
// and the reason on refusal.
func (codec) EncodeAck(a *adapters.Ack) ([]byte, error) {
	w := newWriter("ACK", 0)
	w.opt("PROJECT_NO", a.CaseNo)
	if a.Accepted {
		w.elem("RESULT", "0")
		w.elem("MESSAGE", "成功")
	} else {
		w.elem("RESULT", "1")
		w.opt("MESSAGE", a.Reason)
	}
	return w.bytes("ACK")
}
