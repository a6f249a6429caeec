package adapters

import (
	"sort"
)

// Field identifies a field of a Case, StatusUpdate or Ack independently of
// any wire format. Codecs name fields (Naming) and order them as their
// rules tables do; the shared validation reports problems by Field.
type Field int

// Fields of a case, of a status update and of an acknowledgement. Container
// fields (FieldItem, FieldApplicant, …) exist for wire formats with nested
// objects: a problem on a container hides problems on the fields inside it.
const (
	FieldCaseNo Field = iota + 1
	FieldItem
	FieldBasicCode
	FieldImplCode
	FieldItemName
	FieldOwnerDivision
	FieldApplicant
	FieldApplicantKind
	FieldApplicantName
	FieldApplicantIDType
	FieldApplicantIDNumber
	FieldLegalRepresentative
	FieldContact
	FieldContactName
	FieldContactIDType
	FieldContactIDNumber
	FieldContactMobile
	FieldAddress
	FieldChannel
	FieldAppliedAt
	FieldReceivedBy
	FieldOfficeCode
	FieldOfficeName
	FieldClerk
	FieldReceivedAt
	FieldPromisedDays
	FieldHandlingMode
	FieldOrigin
	FieldOriginDivision
	FieldOriginCaseNo
	FieldMaterials
	// Material-level fields: a FieldRef carries the material's index.
	FieldMaterial
	FieldMaterialCode
	FieldMaterialTitle
	FieldMaterialForm
	FieldMaterialFileName
	FieldMaterialSM3
	FieldMaterialSize
	FieldMaterialContent

	FieldStatusCaseNo
	FieldState
	FieldAt
	FieldOfficer
	FieldNote
	FieldCertificate
	FieldCertificateName
	FieldCertificateNumber

	FieldAckCaseNo
	FieldAckAccepted
	FieldAckReason
)

// container of each field that sits inside a nested object.
var container = map[Field]Field{
	FieldBasicCode: FieldItem, FieldImplCode: FieldItem, FieldItemName: FieldItem,
	FieldApplicantKind: FieldApplicant, FieldApplicantName: FieldApplicant,
	FieldApplicantIDType: FieldApplicant, FieldApplicantIDNumber: FieldApplicant,
	FieldLegalRepresentative: FieldApplicant,
	FieldContactName:         FieldContact, FieldContactIDType: FieldContact,
	FieldContactIDNumber: FieldContact, FieldContactMobile: FieldContact,
	FieldOfficeCode: FieldReceivedBy, FieldOfficeName: FieldReceivedBy,
	FieldClerk: FieldReceivedBy, FieldReceivedAt: FieldReceivedBy,
	FieldOriginDivision: FieldOrigin, FieldOriginCaseNo: FieldOrigin,
	FieldMaterial:     FieldMaterials,
	FieldMaterialCode: FieldMaterial, FieldMaterialTitle: FieldMaterial,
	FieldMaterialForm: FieldMaterial, FieldMaterialFileName: FieldMaterial,
	FieldMaterialSM3: FieldMaterial, FieldMaterialSize: FieldMaterial,
	FieldMaterialContent:   FieldMaterial,
	FieldCertificateName:   FieldCertificate,
	FieldCertificateNumber: FieldCertificate,
}

// IsMaterialField reports whether f is a field of one material (its
// FieldRef carries the material index).
func (f Field) IsMaterialField() bool {
	return f >= FieldMaterial && f <= FieldMaterialContent
}

// FieldRef is a field and, for a material-level field, the 0-based index of
// the material.
type FieldRef struct {
	Field Field
	Index int
}

// Ref is the FieldRef of a field outside the materials.
func Ref(f Field) FieldRef { return FieldRef{Field: f} }

// MaterialRef is the FieldRef of field f of material i (0-based).
func MaterialRef(f Field, i int) FieldRef { return FieldRef{Field: f, Index: i} }

func (r FieldRef) parent() (FieldRef, bool) {
	p, ok := container[r.Field]
	if !ok {
		return FieldRef{}, false
	}
	if p.IsMaterialField() {
		return FieldRef{Field: p, Index: r.Index}, true
	}
	return FieldRef{Field: p}, true
}

// Naming is how a codec names and orders fields on its wire.
type Naming struct {
	// Order lists the fields as the codec's rules table does. Material-level
	// fields must be contiguous; they sort by material index first.
	Order []Field
	// Name gives the wire name of a field (an element path or a JSON
	// Pointer).
	Name func(FieldRef) string
}

// Problem is one field error before it is named.
type Problem struct {
	Ref     FieldRef
	Code    string
	Message string
}

// Problems collects field errors of one record: at most one per field (its
// first failing rule), and none on a field whose container already failed.
// The zero value is ready to use.
type Problems struct {
	list []Problem
	seen map[FieldRef]bool
}

// Field error codes (FieldError.Code).
const (
	CodeRequired   = "required"
	CodeFormat     = "format"
	CodeCheckDigit = "check_digit"
	CodeLength     = "length"
	CodeUnknown    = "code_unknown"
	CodeMismatch   = "mismatch"
	CodeOrder      = "order"
	CodeDigest     = "digest"
	CodeSize       = "size"
	CodeType       = "type"
	CodeForbidden  = "forbidden"
)

// Has reports whether ref, or a container of it, already has a problem.
func (p *Problems) Has(ref FieldRef) bool {
	for {
		if p.seen[ref] {
			return true
		}
		var ok bool
		if ref, ok = ref.parent(); !ok {
			return false
		}
	}
}

// Add records a problem unless Has(ref).
func (p *Problems) Add(ref FieldRef, code, message string) {
	if p.Has(ref) {
		return
	}
	if p.seen == nil {
		p.seen = make(map[FieldRef]bool)
	}
	p.seen[ref] = true
	p.list = append(p.list, Problem{Ref: ref, Code: code, Message: message})
}

// Len is the number of problems recorded.
func (p *Problems) Len() int { return len(p.list) }

// Err returns nil when no problem was recorded, else a *ValidationError
// with the problems named and ordered by n.
func (p *Problems) Err(n Naming) error {
	if len(p.list) == 0 {
		return nil
	}
	pos := make(map[Field]int, len(n.Order))
	firstMaterial := -1
	for i, f := range n.Order {
		pos[f] = i
		if f.IsMaterialField() && firstMaterial < 0 {
			firstMaterial = i
		}
	}
	type key struct{ a, b, c int }
	keyOf := func(r FieldRef) key {
		fp, ok := pos[r.Field]
		if !ok {
			fp = len(n.Order)
		}
		if r.Field.IsMaterialField() && firstMaterial >= 0 {
			return key{firstMaterial, r.Index, fp}
		}
		return key{fp, 0, 0}
	}
	list := append([]Problem(nil), p.list...)
	sort.SliceStable(list, func(i, j int) bool {
		a, b := keyOf(list[i].Ref), keyOf(list[j].Ref)
		if a.a != b.a {
			return a.a < b.a
		}
		if a.b != b.b {
			return a.b < b.b
		}
		return a.c < b.c
	})
	ve := &ValidationError{Errors: make([]FieldError, len(list))}
	for i, pr := range list {
		ve.Errors[i] = FieldError{Field: n.Name(pr.Ref), Code: pr.Code, Message: pr.Message}
	}
	return ve
}
