package exchangelog

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Entry kinds (exchange-log.md, "Entries").
const (
	KindExchange         = "exchange"
	KindDenied           = "denied"
	KindStatus           = "status"
	KindDelivered        = "delivered"
	KindRefusedByPartner = "refused_by_partner"
	KindDead             = "dead"
	KindRedriven         = "redriven"
	KindPolicyActivated  = "policy_activated"
	KindKeyRotated       = "key_rotated"
)

// EntryVersion is the value of every entry's "v".
const EntryVersion = 1

// Problem codes that change the fields of a denied entry.
const (
	codeValidationFailed = "validation_failed"
	codePolicyDenied     = "policy_denied"
)

// Roles of a key_rotated entry.
const (
	RoleGateway = "gateway"
	RoleLog     = "log"
)

// ErrInvalidEntry is returned (wrapped) for an entry that does not have
// exactly the fields its kind requires, or whose fields are malformed.
var ErrInvalidEntry = errors.New("exchangelog: invalid entry")

// CST is the +08:00 zone in which entry times are written.
var CST = time.FixedZone("CST", 8*60*60)

// Header holds the fields common to every entry. [Marshal] sets V and Kind.
type Header struct {
	V    int       `json:"v"`
	Kind string    `json:"kind"`
	Time time.Time `json:"time"`
}

func (h *Header) header() *Header { return h }

// Signed records a signed HTTP message (signing.md): the hex SM3 of its body,
// its RFC 9421 signature base, the base64 DER SM2 signature and the signer's
// key id (hex SM3 of its certificate). The JSON shape is that of
// httpsig.Signed.
type Signed struct {
	Digest        string `json:"digest"`
	SignatureBase string `json:"signature_base"`
	Signature     string `json:"signature"`
	KeyID         string `json:"keyid"`
}

// Digest is the {"digest"} object of a translated record.
type Digest struct {
	Digest string `json:"digest"`
}

// ExchangeEntry records an accepted case.
type ExchangeEntry struct {
	Header
	Exchange    string          `json:"exchange"`
	From        string          `json:"from"`
	To          string          `json:"to"`
	Item        string          `json:"item"`
	SourceCase  string          `json:"source_case"`
	PolicyInput json.RawMessage `json:"policy_input"`
	Decision    json.RawMessage `json:"decision"`
	Request     Signed          `json:"request"`
	Translated  Digest          `json:"translated"`
}

// DeniedEntry records a POST refused after its signature verified. Fields is
// set only for validation_failed, PolicyInput and Decision only for
// policy_denied; Exchange only when the request addressed an exchange.
type DeniedEntry struct {
	Header
	Exchange    string          `json:"exchange,omitempty"`
	From        string          `json:"from"`
	Request     Signed          `json:"request"`
	Code        string          `json:"code"`
	Fields      []string        `json:"fields,omitempty"`
	PolicyInput json.RawMessage `json:"policy_input,omitempty"`
	Decision    json.RawMessage `json:"decision,omitempty"`
}

// StatusEntry records an accepted status update.
type StatusEntry struct {
	Header
	Exchange   string `json:"exchange"`
	From       string `json:"from"`
	To         string `json:"to"`
	State      string `json:"state"`
	Request    Signed `json:"request"`
	Translated Digest `json:"translated"`
}

// DeliveredEntry records a partner's acknowledgement of a delivery. Of is the
// log index of the exchange or status entry delivered.
type DeliveredEntry struct {
	Header
	Exchange    string `json:"exchange"`
	To          string `json:"to"`
	Delivery    Signed `json:"delivery"`
	Ack         Signed `json:"ack"`
	PartnerCase string `json:"partner_case,omitempty"`
	Of          uint64 `json:"of"`
}

// RefusedByPartnerEntry records a verified acknowledgement that refuses the
// case.
type RefusedByPartnerEntry struct {
	Header
	Exchange    string `json:"exchange"`
	To          string `json:"to"`
	Delivery    Signed `json:"delivery"`
	Ack         Signed `json:"ack"`
	PartnerCase string `json:"partner_case,omitempty"`
	Of          uint64 `json:"of"`
	Reason      string `json:"reason"`
}

// DeadEntry records a delivery that gave up.
type DeadEntry struct {
	Header
	Exchange  string `json:"exchange"`
	To        string `json:"to"`
	Of        uint64 `json:"of"`
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error"`
}

// RedrivenEntry records an administrator re-queueing a dead delivery.
type RedrivenEntry struct {
	Header
	Exchange string `json:"exchange"`
	Of       uint64 `json:"of"`
	By       string `json:"by"`
}

// PolicyActivatedEntry records a policy revision becoming active. Previous
// is "" for the first activation.
type PolicyActivatedEntry struct {
	Header
	Revision string `json:"revision"`
	Previous string `json:"previous"`
	By       string `json:"by"`
	Request  Signed `json:"request"`
}

// KeyRotatedEntry records a change of the gateway or log key.
// NewCertificate is the base64 DER of the new certificate.
type KeyRotatedEntry struct {
	Header
	Role           string `json:"role"`
	OldKeyID       string `json:"old_keyid"`
	NewKeyID       string `json:"new_keyid"`
	NewCertificate string `json:"new_certificate"`
}

// Entry is one of the entry types above.
type Entry interface {
	header() *Header
	kind() string
	// ExchangeID is the exchange the entry belongs to ("" when none).
	ExchangeID() string
	check() error
}

func (*ExchangeEntry) kind() string         { return KindExchange }
func (*DeniedEntry) kind() string           { return KindDenied }
func (*StatusEntry) kind() string           { return KindStatus }
func (*DeliveredEntry) kind() string        { return KindDelivered }
func (*RefusedByPartnerEntry) kind() string { return KindRefusedByPartner }
func (*DeadEntry) kind() string             { return KindDead }
func (*RedrivenEntry) kind() string         { return KindRedriven }
func (*PolicyActivatedEntry) kind() string  { return KindPolicyActivated }
func (*KeyRotatedEntry) kind() string       { return KindKeyRotated }

// ExchangeID returns the exchange the entry belongs to.
func (e *ExchangeEntry) ExchangeID() string { return e.Exchange }

// ExchangeID returns the exchange the entry belongs to ("" when none).
func (e *DeniedEntry) ExchangeID() string { return e.Exchange }

// ExchangeID returns the exchange the entry belongs to.
func (e *StatusEntry) ExchangeID() string { return e.Exchange }

// ExchangeID returns the exchange the entry belongs to.
func (e *DeliveredEntry) ExchangeID() string { return e.Exchange }

// ExchangeID returns the exchange the entry belongs to.
func (e *RefusedByPartnerEntry) ExchangeID() string { return e.Exchange }

// ExchangeID returns the exchange the entry belongs to.
func (e *DeadEntry) ExchangeID() string { return e.Exchange }

// ExchangeID returns the exchange the entry belongs to.
func (e *RedrivenEntry) ExchangeID() string { return e.Exchange }

// ExchangeID returns "": a policy activation belongs to no exchange.
func (e *PolicyActivatedEntry) ExchangeID() string { return "" }

// ExchangeID returns "": a key rotation belongs to no exchange.
func (e *KeyRotatedEntry) ExchangeID() string { return "" }

// Kind returns the entry's kind.
func Kind(e Entry) string { return e.kind() }

// HasDecision reports whether the entry, once marshalled, carries a
// top-level policy_input: every exchange entry, and a denied entry of a
// policy denial. The store indexes these for policy simulations.
func HasDecision(e Entry) bool {
	switch e := e.(type) {
	case *ExchangeEntry:
		return true
	case *DeniedEntry:
		return len(e.PolicyInput) > 0
	}
	return false
}

// Marshal serializes an entry once, as compact JSON with the fields in a
// fixed order, no HTML escaping and no trailing newline. It sets the entry's
// V and Kind and writes its Time in +08:00. The result is what the store
// keeps and what [LeafHash] hashes.
func Marshal(e Entry) ([]byte, error) {
	h := e.header()
	if h.Time.IsZero() {
		return nil, fmt.Errorf("%w: %s: time is zero", ErrInvalidEntry, e.kind())
	}
	h.V = EntryVersion
	h.Kind = e.kind()
	h.Time = h.Time.In(CST)
	if err := e.check(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidEntry, e.kind(), err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidEntry, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// fieldSet lists, per kind, the keys an entry must have and those it may
// have, besides v, kind and time.
var fieldSets = map[string]struct{ required, optional []string }{
	KindExchange:         {required: []string{"exchange", "from", "to", "item", "source_case", "policy_input", "decision", "request", "translated"}},
	KindDenied:           {required: []string{"from", "request", "code"}, optional: []string{"exchange", "fields", "policy_input", "decision"}},
	KindStatus:           {required: []string{"exchange", "from", "to", "state", "request", "translated"}},
	KindDelivered:        {required: []string{"exchange", "to", "delivery", "ack", "of"}, optional: []string{"partner_case"}},
	KindRefusedByPartner: {required: []string{"exchange", "to", "delivery", "ack", "of", "reason"}, optional: []string{"partner_case"}},
	KindDead:             {required: []string{"exchange", "to", "of", "attempts", "last_error"}},
	KindRedriven:         {required: []string{"exchange", "of", "by"}},
	KindPolicyActivated:  {required: []string{"revision", "previous", "by", "request"}},
	KindKeyRotated:       {required: []string{"role", "old_keyid", "new_keyid", "new_certificate"}},
}

func newEntry(kind string) Entry {
	switch kind {
	case KindExchange:
		return new(ExchangeEntry)
	case KindDenied:
		return new(DeniedEntry)
	case KindStatus:
		return new(StatusEntry)
	case KindDelivered:
		return new(DeliveredEntry)
	case KindRefusedByPartner:
		return new(RefusedByPartnerEntry)
	case KindDead:
		return new(DeadEntry)
	case KindRedriven:
		return new(RedrivenEntry)
	case KindPolicyActivated:
		return new(PolicyActivatedEntry)
	case KindKeyRotated:
		return new(KeyRotatedEntry)
	}
	return nil
}

// ParseEntry decodes an entry and checks that it has exactly the fields of
// its kind, v 1, a time in +08:00, and well-formed values.
func ParseEntry(b []byte) (Entry, error) {
	if bytes.ContainsAny(b, "\n") {
		return nil, fmt.Errorf("%w: newline inside entry", ErrInvalidEntry)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(b, &keys); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidEntry, err)
	}
	var kind string
	if err := json.Unmarshal(keys["kind"], &kind); err != nil {
		return nil, fmt.Errorf("%w: kind: missing or not a string", ErrInvalidEntry)
	}
	set, ok := fieldSets[kind]
	if !ok {
		return nil, fmt.Errorf("%w: unknown kind %q", ErrInvalidEntry, kind)
	}
	for _, k := range append([]string{"v", "kind", "time"}, set.required...) {
		if _, ok := keys[k]; !ok {
			return nil, fmt.Errorf("%w: %s: missing %q", ErrInvalidEntry, kind, k)
		}
	}
	for k := range keys {
		if k != "v" && k != "kind" && k != "time" && !slices.Contains(set.required, k) && !slices.Contains(set.optional, k) {
			return nil, fmt.Errorf("%w: %s: unexpected field %q", ErrInvalidEntry, kind, k)
		}
	}
	e := newEntry(kind)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(e); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidEntry, kind, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the entry", ErrInvalidEntry)
	}
	h := e.header()
	if h.V != EntryVersion {
		return nil, fmt.Errorf("%w: v is %d, want %d", ErrInvalidEntry, h.V, EntryVersion)
	}
	if _, off := h.Time.Zone(); off != 8*60*60 {
		return nil, fmt.Errorf("%w: time not in +08:00", ErrInvalidEntry)
	}
	if err := e.check(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidEntry, kind, err)
	}
	return e, nil
}

func nonEmpty(pairs ...string) error {
	for i := 0; i < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			return fmt.Errorf("%s is empty", pairs[i])
		}
	}
	return nil
}

func isHexDigest(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == HashSize && s == hex.EncodeToString(b)
}

func checkObject(name string, raw json.RawMessage) error {
	// Valid JSON whose first token is '{' is an object: scanned, not
	// decoded into a map (it is checked for every entry marshalled).
	if t := bytes.TrimLeft(raw, " \t\r\n"); len(t) == 0 || t[0] != '{' || !json.Valid(raw) {
		return fmt.Errorf("%s is not a JSON object", name)
	}
	return nil
}

func (s *Signed) check(name string) error {
	if !isHexDigest(s.Digest) {
		return fmt.Errorf("%s.digest is not a hex SM3 digest", name)
	}
	if !isHexDigest(s.KeyID) {
		return fmt.Errorf("%s.keyid is not a hex SM3 key id", name)
	}
	return nonEmpty(name+".signature_base", s.SignatureBase, name+".signature", s.Signature)
}

func (d *Digest) check(name string) error {
	if !isHexDigest(d.Digest) {
		return fmt.Errorf("%s.digest is not a hex SM3 digest", name)
	}
	return nil
}

func (e *ExchangeEntry) check() error {
	if err := nonEmpty("exchange", e.Exchange, "from", e.From, "to", e.To, "item", e.Item, "source_case", e.SourceCase); err != nil {
		return err
	}
	if err := checkObject("policy_input", e.PolicyInput); err != nil {
		return err
	}
	if err := checkObject("decision", e.Decision); err != nil {
		return err
	}
	if err := e.Request.check("request"); err != nil {
		return err
	}
	return e.Translated.check("translated")
}

func (e *DeniedEntry) check() error {
	if err := nonEmpty("from", e.From, "code", e.Code); err != nil {
		return err
	}
	if err := e.Request.check("request"); err != nil {
		return err
	}
	switch {
	case e.Code == codeValidationFailed && len(e.Fields) == 0:
		return errors.New("validation_failed without fields")
	case e.Code != codeValidationFailed && e.Fields != nil:
		return errors.New("fields only belong to validation_failed")
	}
	if e.Code == codePolicyDenied {
		if err := checkObject("policy_input", e.PolicyInput); err != nil {
			return err
		}
		return checkObject("decision", e.Decision)
	}
	if e.PolicyInput != nil || e.Decision != nil {
		return errors.New("policy_input and decision only belong to policy_denied")
	}
	return nil
}

func (e *StatusEntry) check() error {
	if err := nonEmpty("exchange", e.Exchange, "from", e.From, "to", e.To, "state", e.State); err != nil {
		return err
	}
	if err := e.Request.check("request"); err != nil {
		return err
	}
	return e.Translated.check("translated")
}

func checkDelivery(exchange, to string, delivery, ack *Signed) error {
	if err := nonEmpty("exchange", exchange, "to", to); err != nil {
		return err
	}
	if err := delivery.check("delivery"); err != nil {
		return err
	}
	return ack.check("ack")
}

func (e *DeliveredEntry) check() error {
	return checkDelivery(e.Exchange, e.To, &e.Delivery, &e.Ack)
}

func (e *RefusedByPartnerEntry) check() error {
	if err := checkDelivery(e.Exchange, e.To, &e.Delivery, &e.Ack); err != nil {
		return err
	}
	return nonEmpty("reason", e.Reason)
}

func (e *DeadEntry) check() error {
	if e.Attempts < 0 {
		return errors.New("attempts is negative")
	}
	return nonEmpty("exchange", e.Exchange, "to", e.To)
}

func (e *RedrivenEntry) check() error {
	if !isHexDigest(e.By) {
		return errors.New("by is not a key id")
	}
	return nonEmpty("exchange", e.Exchange)
}

func (e *PolicyActivatedEntry) check() error {
	if !isHexDigest(e.By) {
		return errors.New("by is not a key id")
	}
	if err := nonEmpty("revision", e.Revision); err != nil {
		return err
	}
	return e.Request.check("request")
}

func (e *KeyRotatedEntry) check() error {
	if e.Role != RoleGateway && e.Role != RoleLog {
		return fmt.Errorf("role %q is neither %q nor %q", e.Role, RoleGateway, RoleLog)
	}
	if !isHexDigest(e.OldKeyID) || !isHexDigest(e.NewKeyID) {
		return errors.New("old_keyid and new_keyid must be key ids")
	}
	return nonEmpty("new_certificate", e.NewCertificate)
}
