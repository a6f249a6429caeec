// Package adapters holds tongban's canonical model of a case (办件) and of a
// status update, in domain words, and the validation every district codec
// shares. District codecs (nanhai, liwan) convert their wire formats to and
// from these types; they are pure: bytes in, Case out, and back.
//
// The wire contracts are ../shared/contracts/districts.md.
package adapters

import (
	"errors"
	"time"
)

// Division codes of the pilot districts.
const (
	DivisionNanhai = "440605"
	DivisionLiwan  = "440103"
)

// ApplicantKind is table A of districts.md, by its Liwan name.
type ApplicantKind string

const (
	Person      ApplicantKind = "PERSON"
	Enterprise  ApplicantKind = "ENTERPRISE"
	Institution ApplicantKind = "INSTITUTION"
	SocialOrg   ApplicantKind = "SOCIAL_ORG"
	Government  ApplicantKind = "GOVERNMENT"
	OtherOrg    ApplicantKind = "OTHER_ORG"
)

// IDType is table B of districts.md, by its Liwan name.
type IDType string

const (
	ResidentID    IDType = "RESIDENT_ID"
	USCC          IDType = "USCC"
	Passport      IDType = "PASSPORT"
	HKMacaoPermit IDType = "HK_MACAO_PERMIT"
	TaiwanPermit  IDType = "TAIWAN_PERMIT"
	OtherPersonID IDType = "OTHER_PERSON_ID"
	OtherOrgID    IDType = "OTHER_ORG_ID"
)

// Channel is table D (APPLY_TYPE / channel).
type Channel string

const (
	Counter Channel = "COUNTER"
	Online  Channel = "ONLINE"
	Post    Channel = "POST"
)

// MaterialForm is table D (GET_TYPE / form).
type MaterialForm string

const (
	Original   MaterialForm = "ORIGINAL"
	Copy       MaterialForm = "COPY"
	Electronic MaterialForm = "ELECTRONIC"
)

// HandlingMode is the cross-district handling mode decided by policy
// (catalog.md).
type HandlingMode string

const (
	ModeOnline        HandlingMode = "ONLINE"
	ModeRemoteReceipt HandlingMode = "REMOTE_RECEIPT"
	ModeJoint         HandlingMode = "JOINT"
)

// State is table C of districts.md (16 states), by its Liwan name.
type State string

const (
	Received              State = "RECEIVED"                // 1 已接件
	Withdrawn             State = "WITHDRAWN"               // 2 已撤件
	Accepted              State = "ACCEPTED"                // 3 窗口受理
	NotAccepted           State = "NOT_ACCEPTED"            // 4 不受理
	Rejected              State = "REJECTED"                // 5 不予受理
	SupplementRequested   State = "SUPPLEMENT_REQUESTED"    // 6 补正(开始)
	SupplementReceived    State = "SUPPLEMENT_RECEIVED"     // 7 补正(结束)
	InReview              State = "IN_REVIEW"               // 8 部门受理
	Suspended             State = "SUSPENDED"               // 9 特别程序(开始)
	Resumed               State = "RESUMED"                 // 10 特别程序(结束)
	Approved              State = "APPROVED"                // 11 办结(通过)
	ApprovedWithTolerance State = "APPROVED_WITH_TOLERANCE" // 12 办结(容缺通过)
	Denied                State = "DENIED"                  // 13 办结(不通过)
	Retracted             State = "RETRACTED"               // 14 撤回
	Revoked               State = "REVOKED"                 // 15 撤销
	WithdrawalPending     State = "WITHDRAWAL_PENDING"      // 16 撤件待确认
)

// Party is an applicant or a contact person.
type Party struct {
	Kind                ApplicantKind // applicants only; empty for a contact
	Name                string
	IDType              IDType
	IDNumber            string
	LegalRepresentative string // applicants of kinds other than PERSON
	Mobile              string // contacts only, E.164 (+86…)
}

// Item identifies the service item (事项).
type Item struct {
	BasicCode string // 事项基本编码, 12 digits, shared by all districts
	ImplCode  string // 实施编码 in the district the record is for
	Name      string
}

// Reception is who received the case at a window, and when.
type Reception struct {
	OfficeCode string // 统一社会信用代码 of the office
	OfficeName string
	Clerk      string
	ReceivedAt time.Time
}

// Material is one document handed in with the case.
type Material struct {
	Code     string
	Title    string
	Form     MaterialForm
	FileName string
	SM3      string // lower-case hex of Content
	Size     int64  // declared size (Liwan sizeBytes); Nanhai: len(Content)
	Content  []byte
}

// Origin names the sending district's case on a delivered record.
type Origin struct {
	Division string
	CaseNo   string
}

// Case is the canonical 办件.
type Case struct {
	CaseNo        string // the sender's own number; empty on a record delivered to the owner
	Item          Item
	OwnerDivision string // TARGET_DIVISION / ownerDivision
	Applicant     Party
	Contact       Party
	Address       string
	Channel       Channel
	AppliedAt     time.Time
	ReceivedBy    Reception
	PromisedDays  int // 0 when absent
	Materials     []Material

	// Set by tongban on a record delivered to the owning district.
	HandlingMode HandlingMode
	Origin       *Origin
}

// Certificate is the result certificate issued on a final approval.
type Certificate struct {
	Name   string
	Number string
}

// StatusUpdate is the canonical status update of a case.
type StatusUpdate struct {
	CaseNo      string // the number of the case in the district the record is for
	State       State
	At          time.Time
	Officer     string
	Note        string
	Certificate *Certificate
}

// Ack is a partner's acknowledgement of a delivery.
type Ack struct {
	CaseNo   string // the partner's case number (assigned on a new case)
	Accepted bool
	Reason   string // when refused
}

// FieldError is one offending field, named by its wire name
// (a Nanhai element path or a Liwan JSON Pointer).
type FieldError struct {
	Field   string `json:"field"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ValidationError reports every offending field of a record, in the order
// of districts.md's rules tables. It maps to 422 validation_failed.
type ValidationError struct {
	Errors []FieldError
}

func (e *ValidationError) Error() string {
	if len(e.Errors) == 0 {
		return "validation failed"
	}
	s := "validation failed: " + e.Errors[0].Field + ": " + e.Errors[0].Message
	if n := len(e.Errors) - 1; n > 0 {
		s += " (and more)"
	}
	return s
}

// ErrMalformed is wrapped by every decoding error that is not a field rule:
// bytes that do not parse, a bad encoding, a DOCTYPE, a duplicated JSON key.
// It maps to 400 malformed.
var ErrMalformed = errors.New("malformed")
