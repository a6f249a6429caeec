// Package liwan is the codec of Liwan District's government service system
// (荔湾区政务服务系统): JSON in UTF-8, camelCase names, RFC 3339 times. The
// contract is shared/contracts/districts.md.
package liwan

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tongban/tongban/adapters"
)

// Codec is Liwan's codec.
var Codec adapters.Codec = codec{}

type codec struct{}

// ContentTypeJSON is the media type of Liwan's documents.
const ContentTypeJSON = "application/json"

// caseNoValid checks Liwan's case numbers: LW + yyyyMMdd + 5 digits.
var caseNoValid = adapters.CaseNumberRule("LW", 5)

const caseNoFormat = "LW + yyyyMMdd + 5 digits"

func (codec) Name() string        { return "liwan" }
func (codec) Division() string    { return adapters.DivisionLiwan }
func (codec) ContentType() string { return ContentTypeJSON }

// AcceptsContentType accepts application/json with no charset or UTF-8.
func (codec) AcceptsContentType(ct string) bool {
	return adapters.MediaTypeIs(ct, ContentTypeJSON, true, "utf-8")
}

// JSON Pointers of each canonical field.
var pointers = map[adapters.Field]string{
	adapters.FieldCaseNo:              "/caseId",
	adapters.FieldItem:                "/item",
	adapters.FieldBasicCode:           "/item/basicCode",
	adapters.FieldImplCode:            "/item/implCode",
	adapters.FieldItemName:            "/item/name",
	adapters.FieldOwnerDivision:       "/ownerDivision",
	adapters.FieldApplicant:           "/applicant",
	adapters.FieldApplicantKind:       "/applicant/kind",
	adapters.FieldApplicantName:       "/applicant/name",
	adapters.FieldApplicantIDType:     "/applicant/idType",
	adapters.FieldApplicantIDNumber:   "/applicant/idNumber",
	adapters.FieldLegalRepresentative: "/applicant/legalRepresentative",
	adapters.FieldContact:             "/contact",
	adapters.FieldContactName:         "/contact/name",
	adapters.FieldContactIDType:       "/contact/idType",
	adapters.FieldContactIDNumber:     "/contact/idNumber",
	adapters.FieldContactMobile:       "/contact/mobile",
	adapters.FieldAddress:             "/address",
	adapters.FieldChannel:             "/channel",
	adapters.FieldAppliedAt:           "/appliedAt",
	adapters.FieldReceivedBy:          "/receivedBy",
	adapters.FieldReceivedAt:          "/receivedBy/receivedAt",
	adapters.FieldOfficeCode:          "/receivedBy/officeCode",
	adapters.FieldOfficeName:          "/receivedBy/officeName",
	adapters.FieldClerk:               "/receivedBy/clerk",
	adapters.FieldPromisedDays:        "/promisedWorkingDays",
	adapters.FieldHandlingMode:        "/handlingMode",
	adapters.FieldOrigin:              "/origin",
	adapters.FieldOriginDivision:      "/origin/division",
	adapters.FieldOriginCaseNo:        "/origin/caseNo",
	adapters.FieldMaterials:           "/materials",
	adapters.FieldMaterialCode:        "code",
	adapters.FieldMaterialTitle:       "title",
	adapters.FieldMaterialForm:        "form",
	adapters.FieldMaterialFileName:    "fileName",
	adapters.FieldMaterialSM3:         "sm3",
	adapters.FieldMaterialSize:        "sizeBytes",
	adapters.FieldMaterialContent:     "content",
	adapters.FieldStatusCaseNo:        "/caseId",
	adapters.FieldState:               "/state",
	adapters.FieldAt:                  "/at",
	adapters.FieldOfficer:             "/officer",
	adapters.FieldNote:                "/note",
	adapters.FieldCertificate:         "/certificate",
	adapters.FieldCertificateName:     "/certificate/name",
	adapters.FieldCertificateNumber:   "/certificate/number",
	adapters.FieldAckCaseNo:           "/caseId",
	adapters.FieldAckAccepted:         "/accepted",
	adapters.FieldAckReason:           "/reason",
}

// naming orders fields as districts.md's Liwan rules table does (appliedAt
// and receivedBy.receivedAt share a row before the office fields); a
// container comes just before its first field; handlingMode and origin of a
// delivered case follow promisedWorkingDays.
var naming = adapters.Naming{
	Order: []adapters.Field{
		adapters.FieldCaseNo, adapters.FieldItem, adapters.FieldBasicCode,
		adapters.FieldImplCode, adapters.FieldItemName, adapters.FieldOwnerDivision,
		adapters.FieldApplicant, adapters.FieldApplicantKind, adapters.FieldApplicantName,
		adapters.FieldApplicantIDType, adapters.FieldApplicantIDNumber,
		adapters.FieldLegalRepresentative, adapters.FieldContact, adapters.FieldContactName,
		adapters.FieldContactIDType, adapters.FieldContactIDNumber, adapters.FieldContactMobile,
		adapters.FieldAddress, adapters.FieldChannel, adapters.FieldAppliedAt,
		adapters.FieldReceivedBy, adapters.FieldReceivedAt, adapters.FieldOfficeCode,
		adapters.FieldOfficeName, adapters.FieldClerk, adapters.FieldPromisedDays,
		adapters.FieldHandlingMode, adapters.FieldOrigin, adapters.FieldOriginDivision,
		adapters.FieldOriginCaseNo,
		adapters.FieldMaterials, adapters.FieldMaterial,
		adapters.FieldMaterialCode, adapters.FieldMaterialTitle, adapters.FieldMaterialForm,
		adapters.FieldMaterialFileName, adapters.FieldMaterialSM3, adapters.FieldMaterialSize,
		adapters.FieldMaterialContent,
		adapters.FieldStatusCaseNo, adapters.FieldState, adapters.FieldAt,
		adapters.FieldOfficer, adapters.FieldNote, adapters.FieldCertificate,
		adapters.FieldCertificateName, adapters.FieldCertificateNumber,
		adapters.FieldAckAccepted, adapters.FieldAckCaseNo, adapters.FieldAckReason,
	},
	Name: func(r adapters.FieldRef) string {
		if r.Field == adapters.FieldMaterial {
			return fmt.Sprintf("/materials/%d", r.Index)
		}
		if r.Field.IsMaterialField() {
			return fmt.Sprintf("/materials/%d/%s", r.Index, pointers[r.Field])
		}
		return pointers[r.Field]
	},
}

func (codec) DecodeCase(b []byte) (*adapters.Case, error)          { return decodeCase(b, false) }
func (codec) DecodeDeliveredCase(b []byte) (*adapters.Case, error) { return decodeCase(b, true) }

func decodeCase(b []byte, delivered bool) (*adapters.Case, error) {
	doc, err := parse(b)
	if err != nil {
		return nil, err
	}
	var p adapters.Problems
	r := reader{p: &p}
	ref := adapters.Ref
	c := &adapters.Case{}
	if !delivered {
		c.CaseNo = r.str(doc, "caseId", ref(adapters.FieldCaseNo))
	}
	if item := r.object(doc, "item", ref(adapters.FieldItem), true); item != nil {
		c.Item = adapters.Item{
			BasicCode: r.str(item, "basicCode", ref(adapters.FieldBasicCode)),
			ImplCode:  r.str(item, "implCode", ref(adapters.FieldImplCode)),
			Name:      r.str(item, "name", ref(adapters.FieldItemName)),
		}
	}
	c.OwnerDivision = r.str(doc, "ownerDivision", ref(adapters.FieldOwnerDivision))
	if a := r.object(doc, "applicant", ref(adapters.FieldApplicant), true); a != nil {
		c.Applicant = adapters.Party{
			Kind:                adapters.ApplicantKind(r.str(a, "kind", ref(adapters.FieldApplicantKind))),
			Name:                r.str(a, "name", ref(adapters.FieldApplicantName)),
			IDType:              adapters.IDType(r.str(a, "idType", ref(adapters.FieldApplicantIDType))),
			IDNumber:            r.str(a, "idNumber", ref(adapters.FieldApplicantIDNumber)),
			LegalRepresentative: r.str(a, "legalRepresentative", ref(adapters.FieldLegalRepresentative)),
		}
	}
	if ct := r.object(doc, "contact", ref(adapters.FieldContact), true); ct != nil {
		c.Contact = adapters.Party{
			Name:     r.str(ct, "name", ref(adapters.FieldContactName)),
			IDType:   adapters.IDType(r.str(ct, "idType", ref(adapters.FieldContactIDType))),
			IDNumber: r.str(ct, "idNumber", ref(adapters.FieldContactIDNumber)),
			Mobile:   r.str(ct, "mobile", ref(adapters.FieldContactMobile)),
		}
	}
	c.Address = r.str(doc, "address", ref(adapters.FieldAddress))
	c.Channel = adapters.Channel(r.str(doc, "channel", ref(adapters.FieldChannel)))
	c.AppliedAt = r.time(doc, "appliedAt", ref(adapters.FieldAppliedAt))
	if rb := r.object(doc, "receivedBy", ref(adapters.FieldReceivedBy), true); rb != nil {
		c.ReceivedBy = adapters.Reception{
			OfficeCode: r.str(rb, "officeCode", ref(adapters.FieldOfficeCode)),
			OfficeName: r.str(rb, "officeName", ref(adapters.FieldOfficeName)),
			Clerk:      r.str(rb, "clerk", ref(adapters.FieldClerk)),
			ReceivedAt: r.time(rb, "receivedAt", ref(adapters.FieldReceivedAt)),
		}
	}
	if n, ok := r.integer(doc, "promisedWorkingDays", ref(adapters.FieldPromisedDays), 32); ok && !p.Has(ref(adapters.FieldPromisedDays)) {
		if n <= 0 {
			p.Add(ref(adapters.FieldPromisedDays), adapters.CodeFormat, "promised working days must be a positive integer")
		}
		c.PromisedDays = int(n)
	}
	if delivered {
		c.HandlingMode = adapters.HandlingMode(r.str(doc, "handlingMode", ref(adapters.FieldHandlingMode)))
		if o := r.object(doc, "origin", ref(adapters.FieldOrigin), true); o != nil {
			c.Origin = &adapters.Origin{
				Division: r.str(o, "division", ref(adapters.FieldOriginDivision)),
				CaseNo:   r.str(o, "caseNo", ref(adapters.FieldOriginCaseNo)),
			}
		}
	}
	if v, ok := doc["materials"]; ok && v != nil {
		list, isList := v.([]any)
		if !isList {
			r.wrongType(ref(adapters.FieldMaterials), "an array", v)
		}
		for i, mv := range list {
			c.Materials = append(c.Materials, r.material(mv, i))
		}
	}
	adapters.ValidateCase(c, adapters.CaseRules{Delivered: delivered, CaseNo: caseNoValid, CaseNoFormat: caseNoFormat}, &p)
	if err := p.Err(naming); err != nil {
		return nil, err
	}
	return c, nil
}

func (r reader) material(v any, i int) adapters.Material {
	mref := func(f adapters.Field) adapters.FieldRef { return adapters.MaterialRef(f, i) }
	m, ok := v.(map[string]any)
	if !ok {
		r.wrongType(mref(adapters.FieldMaterial), "an object", v)
		return adapters.Material{}
	}
	mat := adapters.Material{
		Code:     r.str(m, "code", mref(adapters.FieldMaterialCode)),
		Title:    r.str(m, "title", mref(adapters.FieldMaterialTitle)),
		Form:     adapters.MaterialForm(r.str(m, "form", mref(adapters.FieldMaterialForm))),
		FileName: r.str(m, "fileName", mref(adapters.FieldMaterialFileName)),
		SM3:      strings.ToLower(r.str(m, "sm3", mref(adapters.FieldMaterialSM3))),
	}
	size, present := r.integer(m, "sizeBytes", mref(adapters.FieldMaterialSize), 63)
	if !present {
		r.p.Add(mref(adapters.FieldMaterialSize), adapters.CodeRequired, "required")
	}
	mat.Size = size
	if s := r.str(m, "content", mref(adapters.FieldMaterialContent)); s != "" {
		mat.Content = decodeContent(s, mref(adapters.FieldMaterialContent), r.p)
	}
	return mat
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

type wireItem struct {
	BasicCode string `json:"basicCode"`
	ImplCode  string `json:"implCode"`
	Name      string `json:"name"`
}

type wireApplicant struct {
	Kind                string `json:"kind"`
	Name                string `json:"name"`
	IDType              string `json:"idType"`
	IDNumber            string `json:"idNumber"`
	LegalRepresentative string `json:"legalRepresentative,omitempty"`
}

type wireContact struct {
	Name     string `json:"name"`
	IDType   string `json:"idType"`
	IDNumber string `json:"idNumber"`
	Mobile   string `json:"mobile"`
}

type wireReception struct {
	OfficeCode string `json:"officeCode"`
	OfficeName string `json:"officeName"`
	Clerk      string `json:"clerk"`
	ReceivedAt string `json:"receivedAt"`
}

type wireMaterial struct {
	Code      string `json:"code"`
	Title     string `json:"title"`
	Form      string `json:"form"`
	FileName  string `json:"fileName"`
	SM3       string `json:"sm3"`
	SizeBytes int64  `json:"sizeBytes"`
	Content   []byte `json:"content"` // encoding/json writes []byte as standard base64, into its own buffer
}

type wireOrigin struct {
	Division string `json:"division"`
	CaseNo   string `json:"caseNo"`
}

type wireCase struct {
	CaseID              string         `json:"caseId,omitempty"`
	Item                wireItem       `json:"item"`
	OwnerDivision       string         `json:"ownerDivision"`
	Applicant           wireApplicant  `json:"applicant"`
	Contact             wireContact    `json:"contact"`
	Address             string         `json:"address,omitempty"`
	Channel             string         `json:"channel"`
	AppliedAt           string         `json:"appliedAt"`
	ReceivedBy          wireReception  `json:"receivedBy"`
	PromisedWorkingDays int            `json:"promisedWorkingDays,omitempty"`
	Materials           []wireMaterial `json:"materials"`
	HandlingMode        string         `json:"handlingMode,omitempty"`
	Origin              *wireOrigin    `json:"origin,omitempty"`
}

func marshal(v any) ([]byte, error) {
	return marshalSized(v, 0)
}

// marshalSized is marshal into a buffer of sizeHint bytes to begin with.
func marshalSized(v any, sizeHint int) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(sizeHint)
	e := json.NewEncoder(&buf)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		return nil, fmt.Errorf("%w: %v", adapters.ErrUnencodable, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// EncodeCase writes a case: the delivered form (no caseId; handlingMode
// and origin) when c.Origin is set. Times are written in +08:00.
func (codec) EncodeCase(c *adapters.Case) ([]byte, error) {
	w := wireCase{
		Item:          wireItem{c.Item.BasicCode, c.Item.ImplCode, c.Item.Name},
		OwnerDivision: c.OwnerDivision,
		Applicant: wireApplicant{string(c.Applicant.Kind), c.Applicant.Name, string(c.Applicant.IDType),
			c.Applicant.IDNumber, c.Applicant.LegalRepresentative},
		Contact:             wireContact{c.Contact.Name, string(c.Contact.IDType), c.Contact.IDNumber, c.Contact.Mobile},
		Address:             c.Address,
		Channel:             string(c.Channel),
		AppliedAt:           formatTime(c.AppliedAt),
		ReceivedBy:          wireReception{c.ReceivedBy.OfficeCode, c.ReceivedBy.OfficeName, c.ReceivedBy.Clerk, formatTime(c.ReceivedBy.ReceivedAt)},
		PromisedWorkingDays: c.PromisedDays,
		Materials:           make([]wireMaterial, len(c.Materials)),
	}
	if c.Origin != nil {
		w.HandlingMode = string(c.HandlingMode)
		w.Origin = &wireOrigin{c.Origin.Division, c.Origin.CaseNo}
	} else {
		w.CaseID = c.CaseNo
	}
	size := 2048
	for i, m := range c.Materials {
		w.Materials[i] = wireMaterial{m.Code, m.Title, string(m.Form), m.FileName, strings.ToLower(m.SM3),
			int64(len(m.Content)), m.Content}
		if m.Content == nil {
			w.Materials[i].Content = []byte{} // "", not null
		}
		size += base64.StdEncoding.EncodedLen(len(m.Content)) + 512
	}
	return marshalSized(w, size)
}

type wireCertificate struct {
	Name   string `json:"name"`
	Number string `json:"number"`
}

type wireStatus struct {
	CaseID      string           `json:"caseId"`
	State       string           `json:"state"`
	At          string           `json:"at"`
	Officer     string           `json:"officer"`
	Note        string           `json:"note,omitempty"`
	Certificate *wireCertificate `json:"certificate,omitempty"`
}

// DecodeStatus reads a status update.
func (codec) DecodeStatus(b []byte) (*adapters.StatusUpdate, error) {
	doc, err := parse(b)
	if err != nil {
		return nil, err
	}
	var p adapters.Problems
	r := reader{p: &p}
	ref := adapters.Ref
	s := &adapters.StatusUpdate{
		CaseNo:  r.str(doc, "caseId", ref(adapters.FieldStatusCaseNo)),
		State:   adapters.State(r.str(doc, "state", ref(adapters.FieldState))),
		At:      r.time(doc, "at", ref(adapters.FieldAt)),
		Officer: r.str(doc, "officer", ref(adapters.FieldOfficer)),
		Note:    r.str(doc, "note", ref(adapters.FieldNote)),
	}
	if cert := r.object(doc, "certificate", ref(adapters.FieldCertificate), false); cert != nil {
		s.Certificate = &adapters.Certificate{
			Name:   r.str(cert, "name", ref(adapters.FieldCertificateName)),
			Number: r.str(cert, "number", ref(adapters.FieldCertificateNumber)),
		}
	}
	adapters.ValidateStatus(s, caseNoValid, caseNoFormat, &p)
	if err := p.Err(naming); err != nil {
		return nil, err
	}
	return s, nil
}

// EncodeStatus writes a status update, its time in +08:00.
func (codec) EncodeStatus(s *adapters.StatusUpdate) ([]byte, error) {
	w := wireStatus{CaseID: s.CaseNo, State: string(s.State), At: formatTime(s.At), Officer: s.Officer, Note: s.Note}
	if s.Certificate != nil {
		w.Certificate = &wireCertificate{s.Certificate.Name, s.Certificate.Number}
	}
	return marshal(w)
}

// DecodeAck reads {"accepted": true, "caseId": …} or {"accepted": false,
// "reason": …}; caseId of a refusal and reason of an acceptance are
// ignored.
func (codec) DecodeAck(b []byte) (*adapters.Ack, error) {
	doc, err := parse(b)
	if err != nil {
		return nil, err
	}
	var p adapters.Problems
	r := reader{p: &p}
	a := &adapters.Ack{}
	switch v := doc["accepted"].(type) {
	case bool:
		a.Accepted = v
	case nil:
		p.Add(adapters.Ref(adapters.FieldAckAccepted), adapters.CodeRequired, "required")
	default:
		r.wrongType(adapters.Ref(adapters.FieldAckAccepted), "a boolean", v)
	}
	caseID := r.str(doc, "caseId", adapters.Ref(adapters.FieldAckCaseNo))
	reason := r.str(doc, "reason", adapters.Ref(adapters.FieldAckReason))
	if a.Accepted {
		a.CaseNo = caseID
	} else {
		a.Reason = reason
	}
	adapters.ValidateAck(a, &p)
	if err := p.Err(naming); err != nil {
		return nil, err
	}
	return a, nil
}

type wireAck struct {
	Accepted bool   `json:"accepted"`
	CaseID   string `json:"caseId,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// EncodeAck writes an acknowledgement.
func (codec) EncodeAck(a *adapters.Ack) ([]byte, error) {
	w := wireAck{Accepted: a.Accepted}
	if a.Accepted {
		w.CaseID = a.CaseNo
	} else {
		w.Reason = a.Reason
	}
	return marshal(w)
}
