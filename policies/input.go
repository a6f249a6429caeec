package policies

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// ErrInvalidInput reports a decision input document that cannot be read.
var ErrInvalidInput = errors.New("policies: invalid decision input")

// chinaTime is the offset every input time is written with (+08:00).
var chinaTime = time.FixedZone("CST", 8*60*60)

// Input is what the gateway asks the policy about one case, built from the
// canonical case (contracts/catalog.md): no names, no ID numbers.
type Input struct {
	// From is the division of the partner whose signature the request
	// carries; To is the record's target division.
	From, To string
	// BasicCode is the item's basic code (基本编码).
	BasicCode string
	// ApplicantKind is the canonical applicant kind (PERSON, ENTERPRISE, …).
	ApplicantKind string
	// Channel is COUNTER, ONLINE or POST.
	Channel string
	// Materials are the codes of the materials handed in.
	Materials []string
	// Time is when the receiving window received the case.
	Time time.Time
}

// inputDoc is the JSON shape of the input document.
type inputDoc struct {
	From      string       `json:"from"`
	To        string       `json:"to"`
	Item      inputItem    `json:"item"`
	Applicant inputPartner `json:"applicant"`
	Channel   string       `json:"channel"`
	Materials []string     `json:"materials"`
	Time      string       `json:"time"`
}

type inputItem struct {
	BasicCode string `json:"basic_code"`
}

type inputPartner struct {
	Kind string `json:"kind"`
}

// timeString writes t in RFC 3339 with offset +08:00 (fractions of a second
// only when present).
func timeString(t time.Time) string { return t.In(chinaTime).Format(time.RFC3339Nano) }

// MarshalJSON writes the input document of contracts/catalog.md.
func (in Input) MarshalJSON() ([]byte, error) {
	if y := in.Time.In(chinaTime).Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("%w: time %v is outside RFC 3339 years in +08:00", ErrInvalidInput, in.Time)
	}
	materials := in.Materials
	if materials == nil {
		materials = []string{}
	}
	return json.Marshal(inputDoc{
		From:      in.From,
		To:        in.To,
		Item:      inputItem{BasicCode: in.BasicCode},
		Applicant: inputPartner{Kind: in.ApplicantKind},
		Channel:   in.Channel,
		Materials: materials,
		Time:      timeString(in.Time),
	})
}

// UnmarshalJSON reads an input document (for `tongban policy eval FILE` and
// for simulations over logged inputs). The time is required and must be
// RFC 3339; it keeps the offset it was written with.
func (in *Input) UnmarshalJSON(b []byte) error {
	var doc inputDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}
	if doc.Time == "" {
		return fmt.Errorf("%w: time is missing", ErrInvalidInput)
	}
	t, err := time.Parse(time.RFC3339Nano, doc.Time)
	if err != nil {
		return fmt.Errorf("%w: time: %v", ErrInvalidInput, err)
	}
	*in = Input{
		From:          doc.From,
		To:            doc.To,
		BasicCode:     doc.Item.BasicCode,
		ApplicantKind: doc.Applicant.Kind,
		Channel:       doc.Channel,
		Materials:     doc.Materials,
		Time:          t,
	}
	return nil
}

// Value is the input document as an OPA value, built directly.
func (in Input) Value() ast.Value {
	materials := make([]*ast.Term, len(in.Materials))
	for i, m := range in.Materials {
		materials[i] = ast.StringTerm(m)
	}
	return ast.NewObject(
		[2]*ast.Term{ast.InternedTerm("from"), ast.StringTerm(in.From)},
		[2]*ast.Term{ast.InternedTerm("to"), ast.StringTerm(in.To)},
		[2]*ast.Term{ast.InternedTerm("item"), ast.ObjectTerm(
			[2]*ast.Term{ast.InternedTerm("basic_code"), ast.StringTerm(in.BasicCode)},
		)},
		[2]*ast.Term{ast.InternedTerm("applicant"), ast.ObjectTerm(
			[2]*ast.Term{ast.InternedTerm("kind"), ast.StringTerm(in.ApplicantKind)},
		)},
		[2]*ast.Term{ast.InternedTerm("channel"), ast.StringTerm(in.Channel)},
		[2]*ast.Term{ast.InternedTerm("materials"), ast.ArrayTerm(materials...)},
		[2]*ast.Term{ast.InternedTerm("time"), ast.StringTerm(timeString(in.Time))},
	)
}
