package adapters

import (
	"errors"
	"mime"
	"slices"
	"strings"
)

// Codec converts one district's wire format to and from the canonical
// types. Decoders return a *ValidationError (422 validation_failed) naming
// every offending field, or an error wrapping ErrMalformed (400 malformed).
// Encoders write what they are given; they fail (ErrUnencodable) only on a
// value the wire format cannot carry.
type Codec interface {
	// Name is the district's short name ("nanhai", "liwan").
	Name() string
	// Division is the district's division code.
	Division() string
	// ContentType is the media type the codec writes.
	ContentType() string
	// AcceptsContentType reports whether a request's Content-Type is the
	// district's (415 unsupported_media_type otherwise).
	AcceptsContentType(ct string) bool
	// DecodeCase reads a new case the district sends (its case number
	// required).
	DecodeCase([]byte) (*Case, error)
	// DecodeDeliveredCase reads a case tongban delivered to the district (no
	// case number; origin and handling mode present).
	DecodeDeliveredCase([]byte) (*Case, error)
	// EncodeCase writes the delivered form when c.Origin != nil, else the
	// form the district sends.
	EncodeCase(*Case) ([]byte, error)
	DecodeStatus([]byte) (*StatusUpdate, error)
	EncodeStatus(*StatusUpdate) ([]byte, error)
	DecodeAck([]byte) (*Ack, error)
	EncodeAck(*Ack) ([]byte, error)
}

// ErrUnencodable is wrapped by encoding errors: a canonical value the wire
// format has no way to carry (a code outside the tables, a control
// character in XML). Records that passed a decoder's validation never
// cause it.
var ErrUnencodable = errors.New("unencodable")

// MediaTypeIs reports whether the Content-Type ct has media type want and a
// charset that is absent (allowed only when absentOK) or one of charsets.
// Media type and charset are compared case-insensitively; other parameters
// are ignored.
func MediaTypeIs(ct, want string, absentOK bool, charsets ...string) bool {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || !strings.EqualFold(mt, want) {
		return false
	}
	cs, ok := params["charset"]
	if !ok {
		return absentOK
	}
	return slices.ContainsFunc(charsets, func(c string) bool { return strings.EqualFold(c, cs) })
}

// ForDelivery returns the record to deliver to the owning district: the
// sender's number moves to Origin (with fromDivision, the sender's
// division), and the policy decision's handling mode, the target district's
// implementation code and its promised working days replace the sender's.
// The materials slice is copied; their contents are shared.
func (c Case) ForDelivery(fromDivision string, mode HandlingMode, targetImplCode string, promisedDays int) Case {
	d := c
	d.Origin = &Origin{Division: fromDivision, CaseNo: c.CaseNo}
	d.CaseNo = ""
	d.HandlingMode = mode
	d.Item.ImplCode = targetImplCode
	d.PromisedDays = promisedDays
	d.Materials = slices.Clone(c.Materials)
	return d
}

// StripBase64Space removes the whitespace (space, tab, line feed, carriage
// return) both districts allow inside base64 content.
func StripBase64Space(s string) string {
	if !strings.ContainsAny(s, " \t\n\r") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\n', '\r':
		default:
			b = append(b, s[i])
		}
	}
	return string(b)
}
