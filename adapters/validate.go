package adapters

import (
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emmansun/gmsm/sm3"
)

// CaseRules are what differs between the records a codec validates.
type CaseRules struct {
	// Delivered is true for a record tongban delivered to its owning
	// district: no case number; handling mode and origin required.
	Delivered bool
	// CaseNo checks the sender's case number of a record that is not
	// delivered; CaseNoFormat describes it in messages.
	CaseNo       func(string) bool
	CaseNoFormat string
}

// ValidateCase adds to p every rule of districts.md that c breaks, skipping
// fields that already have a problem (those found while decoding the wire
// form: a code outside a table, a time that does not parse…).
func ValidateCase(c *Case, rules CaseRules, p *Problems) {
	v := validator{p: p}
	if !rules.Delivered {
		if v.required(Ref(FieldCaseNo), c.CaseNo) && rules.CaseNo != nil && !rules.CaseNo(c.CaseNo) {
			v.add(Ref(FieldCaseNo), CodeFormat, "case number must be "+rules.CaseNoFormat)
		}
	}
	if v.required(Ref(FieldBasicCode), c.Item.BasicCode) && !allDigits(c.Item.BasicCode, 12) {
		v.add(Ref(FieldBasicCode), CodeFormat, "basic code must be 12 digits")
	}
	v.text(Ref(FieldImplCode), c.Item.ImplCode, true, 36)
	v.text(Ref(FieldItemName), c.Item.Name, true, 200)
	v.division(Ref(FieldOwnerDivision), c.OwnerDivision)

	a := c.Applicant
	kindOK := false
	if v.required(Ref(FieldApplicantKind), string(a.Kind)) {
		if !a.Kind.Known() {
			v.add(Ref(FieldApplicantKind), CodeUnknown, "applicant kind not in table A")
		} else {
			kindOK = true
		}
	}
	v.text(Ref(FieldApplicantName), a.Name, true, 100)
	if v.idType(Ref(FieldApplicantIDType), a.IDType) && kindOK && !v.p.Has(Ref(FieldApplicantKind)) {
		if (a.Kind == Person) != a.IDType.ForPerson() {
			v.add(Ref(FieldApplicantIDType), CodeMismatch, fmt.Sprintf("ID type %s does not fit applicant kind %s", a.IDType, a.Kind))
		}
	}
	v.idNumber(Ref(FieldApplicantIDNumber), a.IDType, a.IDNumber)
	if kindOK {
		if a.Kind == Person {
			if strings.TrimSpace(a.LegalRepresentative) != "" {
				v.add(Ref(FieldLegalRepresentative), CodeForbidden, "a natural person has no legal representative")
			}
		} else {
			v.text(Ref(FieldLegalRepresentative), a.LegalRepresentative, true, 0)
		}
	}

	ct := c.Contact
	v.text(Ref(FieldContactName), ct.Name, true, 0)
	v.idType(Ref(FieldContactIDType), ct.IDType)
	v.idNumber(Ref(FieldContactIDNumber), ct.IDType, ct.IDNumber)
	if v.required(Ref(FieldContactMobile), ct.Mobile) && !MobileValid(ct.Mobile) {
		v.add(Ref(FieldContactMobile), CodeFormat, "mobile must be a mainland mobile number (+861 and 10 digits)")
	}
	v.text(Ref(FieldAddress), c.Address, false, 0)
	if v.required(Ref(FieldChannel), string(c.Channel)) && !c.Channel.Known() {
		v.add(Ref(FieldChannel), CodeUnknown, "channel not in table D")
	}
	appliedOK := v.time(Ref(FieldAppliedAt), c.AppliedAt)
	r := c.ReceivedBy
	if v.required(Ref(FieldOfficeCode), r.OfficeCode) {
		if code := usccCheck(r.OfficeCode); code != "" {
			v.add(Ref(FieldOfficeCode), code, "office code must be a 统一社会信用代码 (GB 32100)")
		}
	}
	v.text(Ref(FieldOfficeName), r.OfficeName, true, 0)
	v.text(Ref(FieldClerk), r.Clerk, true, 0)
	if v.time(Ref(FieldReceivedAt), r.ReceivedAt) && appliedOK && r.ReceivedAt.Before(c.AppliedAt) {
		v.add(Ref(FieldReceivedAt), CodeOrder, "received before the application was made")
	}
	if c.PromisedDays < 0 {
		v.add(Ref(FieldPromisedDays), CodeFormat, "promised working days must be a positive integer")
	}
	if rules.Delivered {
		if v.required(Ref(FieldHandlingMode), string(c.HandlingMode)) && !c.HandlingMode.Known() {
			v.add(Ref(FieldHandlingMode), CodeUnknown, "handling mode must be ONLINE, REMOTE_RECEIPT or JOINT")
		}
		if c.Origin == nil {
			v.add(Ref(FieldOrigin), CodeRequired, "origin is required on a delivered case")
		} else {
			v.division(Ref(FieldOriginDivision), c.Origin.Division)
			v.text(Ref(FieldOriginCaseNo), c.Origin.CaseNo, true, 0)
		}
	}
	for i := range c.Materials {
		v.material(i, &c.Materials[i])
	}
}

func (v validator) material(i int, m *Material) {
	v.text(MaterialRef(FieldMaterialCode, i), m.Code, true, 0)
	v.text(MaterialRef(FieldMaterialTitle, i), m.Title, true, 0)
	if v.required(MaterialRef(FieldMaterialForm, i), string(m.Form)) && !m.Form.Known() {
		v.add(MaterialRef(FieldMaterialForm, i), CodeUnknown, "material form not in table D")
	}
	v.text(MaterialRef(FieldMaterialFileName, i), m.FileName, true, 0)
	contentOK := !v.p.Has(MaterialRef(FieldMaterialContent, i)) && len(m.Content) > 0
	if v.required(MaterialRef(FieldMaterialSM3, i), m.SM3) {
		if len(m.SM3) != 64 || !isHex(m.SM3) {
			v.add(MaterialRef(FieldMaterialSM3, i), CodeFormat, "SM3 must be 64 hex digits")
		} else if contentOK {
			sum := sm3.Sum(m.Content)
			if !strings.EqualFold(hex.EncodeToString(sum[:]), m.SM3) {
				v.add(MaterialRef(FieldMaterialSM3, i), CodeDigest, "SM3 does not match the content")
			}
		}
	}
	if contentOK && m.Size != int64(len(m.Content)) {
		v.add(MaterialRef(FieldMaterialSize, i), CodeSize, fmt.Sprintf("size %d is not the decoded length %d", m.Size, len(m.Content)))
	}
	if len(m.Content) == 0 {
		v.add(MaterialRef(FieldMaterialContent, i), CodeRequired, "content is required")
	}
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// MobileValid reports whether s is a mainland China mobile number in E.164
// (+861 and 10 digits), the only kind Nanhai can hold.
func MobileValid(s string) bool {
	return len(s) == 14 && strings.HasPrefix(s, "+861") && allDigits(s[4:], 10)
}

// ValidateStatus adds to p every rule a status update breaks. caseNo checks
// the case number of the district the record comes from.
func ValidateStatus(s *StatusUpdate, caseNo func(string) bool, caseNoFormat string, p *Problems) {
	v := validator{p: p}
	if v.required(Ref(FieldStatusCaseNo), s.CaseNo) && caseNo != nil && !caseNo(s.CaseNo) {
		v.add(Ref(FieldStatusCaseNo), CodeFormat, "case number must be "+caseNoFormat)
	}
	if v.required(Ref(FieldState), string(s.State)) {
		if _, ok := s.State.Info(); !ok {
			v.add(Ref(FieldState), CodeUnknown, "state not in table C")
		}
	}
	v.time(Ref(FieldAt), s.At)
	v.text(Ref(FieldOfficer), s.Officer, true, 0)
	v.text(Ref(FieldNote), s.Note, false, 0)
	if s.Certificate != nil {
		v.text(Ref(FieldCertificateName), s.Certificate.Name, true, 0)
		v.text(Ref(FieldCertificateNumber), s.Certificate.Number, true, 0)
	}
}

// ValidateAck adds to p every rule an acknowledgement breaks: an accepted
// delivery names the partner's case number.
func ValidateAck(a *Ack, p *Problems) {
	v := validator{p: p}
	if a.Accepted {
		v.text(Ref(FieldAckCaseNo), a.CaseNo, true, 0)
	} else {
		v.text(Ref(FieldAckCaseNo), a.CaseNo, false, 0)
	}
	v.text(Ref(FieldAckReason), a.Reason, false, 0)
}

type validator struct{ p *Problems }

func (v validator) add(ref FieldRef, code, msg string) { v.p.Add(ref, code, msg) }

// required reports whether the field can be checked further: it has no
// problem yet and is not blank (a blank one gets "required").
func (v validator) required(ref FieldRef, s string) bool {
	if v.p.Has(ref) {
		return false
	}
	if strings.TrimSpace(s) == "" {
		v.add(ref, CodeRequired, "required")
		return false
	}
	return true
}

// text checks a free-text field: presence, characters an XML document can
// carry (both districts must be able to hold it) and, when max > 0, its
// length in code points.
func (v validator) text(ref FieldRef, s string, required bool, max int) {
	if v.p.Has(ref) {
		return
	}
	if required {
		if !v.required(ref, s) {
			return
		}
	}
	if !TextValid(s) {
		v.add(ref, CodeFormat, "contains characters that are not allowed (control characters or invalid UTF-8)")
		return
	}
	if max > 0 && utf8.RuneCountInString(s) > max {
		v.add(ref, CodeLength, fmt.Sprintf("longer than %d characters", max))
	}
}

// TextValid reports whether s is valid UTF-8 of characters XML 1.0 allows
// (no control characters other than tab, line feed and carriage return, no
// U+FFFE or U+FFFF).
func TextValid(s string) bool {
	for _, r := range s {
		switch {
		case r == utf8.RuneError:
			// Also a literal U+FFFD; refused alike, since it only appears
			// where a decoder replaced something it could not read.
			return false
		case r < 0x20 && r != '\t' && r != '\n' && r != '\r':
			return false
		case r == 0xFFFE || r == 0xFFFF:
			return false
		}
	}
	return true
}

func (v validator) division(ref FieldRef, s string) {
	if v.required(ref, s) && !allDigits(s, 6) {
		v.add(ref, CodeFormat, "division code must be 6 digits")
	}
}

func (v validator) idType(ref FieldRef, t IDType) bool {
	if !v.required(ref, string(t)) {
		return false
	}
	if !t.Known() {
		v.add(ref, CodeUnknown, "ID type not in table B")
		return false
	}
	return true
}

func (v validator) idNumber(ref FieldRef, t IDType, s string) {
	if !v.required(ref, s) {
		return
	}
	switch t {
	case ResidentID:
		if code := residentIDCheck(s); code != "" {
			v.add(ref, code, "resident ID must be 18 characters with a GB 11643 check digit")
		}
	case USCC:
		if code := usccCheck(s); code != "" {
			v.add(ref, code, "统一社会信用代码 must be 18 characters with a GB 32100 check character")
		}
	default:
		if !TextValid(s) {
			v.add(ref, CodeFormat, "contains characters that are not allowed")
		}
	}
}

// time checks a time is present and, in China's time, of a year 1 to 9999
// (both districts write four-digit years).
func (v validator) time(ref FieldRef, t time.Time) bool {
	if v.p.Has(ref) {
		return false
	}
	if t.IsZero() {
		v.add(ref, CodeRequired, "required")
		return false
	}
	if y := t.In(CST).Year(); y < 1 || y > 9999 {
		v.add(ref, CodeFormat, "year out of range")
		return false
	}
	return true
}
