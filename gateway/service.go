// Package gateway is tongban's go-kit service: partner districts submit cases
// and status updates, the service decides by policy, translates, records the
// exchange in the signed log and queues its delivery.
//
// The path of one exchange is in ../../shared/ARCHITECTURE.md; the wire
// contracts are gateway-api.md, signing.md, districts.md and catalog.md.
package gateway

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/gateway/exchangelog"
	"github.com/tongban/tongban/gateway/store"
	"github.com/tongban/tongban/httpsig"
	"github.com/tongban/tongban/policies"
)

// Service is what partner district systems can ask of tongban.
type Service interface {
	// Submit accepts a new case from the calling partner, in its own format.
	Submit(ctx context.Context, req Request) (*Receipt, error)
	// UpdateStatus accepts a status update of a case, found by the caller's
	// own case number inside the update, or by exchange id when given.
	UpdateStatus(ctx context.Context, req StatusRequest) (*Receipt, error)
	// Exchange returns an exchange by id, to one of its two districts.
	Exchange(ctx context.Context, caller certs.Identity, id string) (*ExchangeView, error)
	// FindCase returns the exchange of a case by either district's number.
	FindCase(ctx context.Context, caller certs.Identity, caseNo string) (*ExchangeView, error)
}

// Middleware decorates a Service (logging, metrics).
type Middleware func(Service) Service

// Request is a signed, verified request body from a caller.
type Request struct {
	Caller      certs.Identity
	Signed      httpsig.Signed // the request's signature, recorded in the log
	ContentType string
	Body        []byte
}

// StatusRequest is a status update, optionally addressed by exchange id.
type StatusRequest struct {
	Request
	ExchangeID string
}

// Receipt is the body of tongban's signed answer to an accepted POST.
type Receipt struct {
	ExchangeID string           `json:"exchangeId"`
	State      string           `json:"state"`
	LogIndex   uint64           `json:"logIndex"`
	LeafHash   string           `json:"leafHash"`
	Decision   *ReceiptDecision `json:"decision,omitempty"`
	// Replayed is true when this is the receipt of an earlier identical
	// request (answered 200 instead of 202).
	Replayed bool `json:"-"`
}

// ReceiptDecision summarises the policy decision in a receipt.
type ReceiptDecision struct {
	Allow    bool   `json:"allow"`
	Mode     string `json:"mode"`
	Revision string `json:"revision"`
}

// Partner is a district system tongban exchanges with.
type Partner struct {
	ID       string // "nanhai", "liwan"
	Division string
	Endpoint string // base URL of its delivery endpoint
	Codec    adapters.Codec
}

// Partners indexes partners by division code.
type Partners map[string]*Partner

// NewPartners indexes ps by division.
func NewPartners(ps ...*Partner) Partners {
	m := make(Partners, len(ps))
	for _, p := range ps {
		m[p.Division] = p
	}
	return m
}

// Options wires a service.
type Options struct {
	Store    store.Store
	Policy   *policies.Switch
	Partners Partners
	Logger   *slog.Logger
	Now      func() time.Time
	NewID    func() string
	// OnAccepted is called after an accepted case or status is committed
	// (the delivery worker's wake-up).
	OnAccepted func()
}

type service struct {
	store    store.Store
	policy   *policies.Switch
	partners Partners
	log      *slog.Logger
	now      func() time.Time
	newID    func() string
	accepted func()
}

// NewService returns the core service.
func NewService(o Options) Service { return newService(o) }

func newService(o Options) *service {
	s := &service{store: o.Store, policy: o.Policy, partners: o.Partners, log: o.Logger, now: o.Now, newID: o.NewID, accepted: o.OnAccepted}
	if s.accepted == nil {
		s.accepted = func() {}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.newID == nil {
		s.newID = NewExchangeID
	}
	return s
}

// partnerOf is the partner that signed, or forbidden.
func (s *service) partnerOf(id certs.Identity) (*Partner, error) {
	if id.Role != certs.RolePartner {
		return nil, newError(CodeForbidden, "only partner district systems may call this route")
	}
	p := s.partners[id.Division]
	if p == nil {
		return nil, newError(CodeForbidden, "no partner is configured for division %s", id.Division)
	}
	return p, nil
}

// checkMediaType refuses a body labelled other than the caller's format.
func (s *service) checkMediaType(p *Partner, req Request) error {
	if !p.Codec.AcceptsContentType(req.ContentType) {
		return newError(CodeUnsupportedMedia, "%s sends %s, not %q", p.ID, p.Codec.ContentType(), req.ContentType)
	}
	return nil
}

func (s *service) Submit(ctx context.Context, req Request) (_ *Receipt, err error) {
	defer func() {
		if err != nil {
			err = s.deny(ctx, req, err)
		}
	}()
	from, err := s.partnerOf(req.Caller)
	if err != nil {
		return nil, err
	}
	if err := s.checkMediaType(from, req); err != nil {
		return nil, err
	}
	c, err := from.Codec.DecodeCase(req.Body)
	if err != nil {
		return nil, asError(err)
	}
	t, err := TranslateCase(ctx, s.policy.Load(), s.partners, from, c)
	if err != nil {
		// A resubmission of an accepted case is answered with its receipt
		// even when the policy would now refuse it. A case the policy
		// accepts needs no lookup: its insert finds the earlier one.
		prev, ferr := s.store.FindExchangeOf(ctx, from.Division, c.CaseNo)
		switch {
		case ferr == nil && prev.From == from.Division && prev.SourceCaseNo == c.CaseNo:
			return s.replay(prev.RequestDigest, req.Signed.Digest, prev.Receipt)
		case ferr != nil && !errors.Is(ferr, store.ErrNotFound):
			return nil, internal(ferr)
		}
		return nil, err
	}
	in, d, to, translated := t.Input, t.Decision, t.To, t.Record
	// Hashed once: for the log entry, and stored with the delivery so that
	// its signature does not hash the record again.
	translatedSM3 := certs.SM3(translated)

	now := s.now()
	id := s.newID()
	inputJSON, decisionJSON, err := marshalDecision(in, d)
	if err != nil {
		return nil, internal(err)
	}
	entry, err := store.NewLogAppend(&exchangelog.ExchangeEntry{
		Header: exchangelog.Header{Time: now}, Exchange: id,
		From: from.Division, To: to.Division, Item: c.Item.BasicCode, SourceCase: c.CaseNo,
		PolicyInput: inputJSON, Decision: decisionJSON,
		Request: logSigned(req.Signed), Translated: exchangelog.Digest{Digest: hex.EncodeToString(translatedSM3[:])},
	}, now)
	if err != nil {
		return nil, internal(err)
	}
	ex := &store.Exchange{
		ID: id, From: from.Division, To: to.Division, SourceCaseNo: c.CaseNo, Item: c.Item.BasicCode,
		Mode: d.Mode, Revision: d.Revision, RequestDigest: req.Signed.Digest, ContentType: req.ContentType,
		Request: req.Body, Translated: translated, TranslatedSM3: translatedSM3,
		PolicyInput: inputJSON, Decision: decisionJSON,
		DeliveryState: store.StateQueued, CreatedAt: now,
	}
	rc := &Receipt{ExchangeID: id, State: store.StateQueued, Decision: &ReceiptDecision{Allow: true, Mode: d.Mode, Revision: d.Revision}}
	settle := foldNonce(ctx, &entry)
	saved, err := s.store.CreateExchange(ctx, ex, entry, receiptBytes(rc))
	if err = settle(err); errors.Is(err, store.ErrDuplicate) && saved != nil {
		return s.replay(saved.RequestDigest, req.Signed.Digest, saved.Receipt)
	}
	if err != nil {
		return nil, internalUnlessRefused(err)
	}
	s.accepted()
	return decodeReceipt(saved.Receipt, false)
}

// replay answers a resubmission: the same receipt for the same body, a
// conflict for a different one.
func (s *service) replay(prevDigest, digest string, receipt []byte) (*Receipt, error) {
	if prevDigest != digest {
		return nil, newError(CodeDuplicateConflict, "this case number was already accepted with different content")
	}
	return decodeReceipt(receipt, true)
}

func (s *service) UpdateStatus(ctx context.Context, req StatusRequest) (_ *Receipt, err error) {
	defer func() {
		if err != nil {
			err = s.deny(ctx, req.Request, err)
		}
	}()
	caller, err := s.partnerOf(req.Caller)
	if err != nil {
		return nil, err
	}
	if err := s.checkMediaType(caller, req.Request); err != nil {
		return nil, err
	}
	u, err := caller.Codec.DecodeStatus(req.Body)
	if err != nil {
		return nil, asError(err)
	}
	ex, err := s.findForStatus(ctx, caller, req.ExchangeID, u.CaseNo)
	if err != nil {
		return nil, err
	}
	recipient, err := s.mayUpdate(ex, caller, u.State)
	if err != nil {
		return nil, err
	}
	out := *u
	out.CaseNo = ex.SourceCaseNo
	if recipient.Division == ex.To {
		out.CaseNo = ex.TargetCaseNo
	}
	translated, err := recipient.Codec.EncodeStatus(&out)
	if err != nil {
		return nil, internal(err)
	}
	translatedSM3 := certs.SM3(translated)
	now := s.now()
	entry, err := store.NewLogAppend(&exchangelog.StatusEntry{
		Header: exchangelog.Header{Time: now}, Exchange: ex.ID,
		From: caller.Division, To: recipient.Division, State: string(u.State),
		Request: logSigned(req.Signed), Translated: exchangelog.Digest{Digest: hex.EncodeToString(translatedSM3[:])},
	}, now)
	if err != nil {
		return nil, internal(err)
	}
	st := &store.StatusUpdate{
		ExchangeID: ex.ID, From: caller.Division, To: recipient.Division, State: string(u.State), At: u.At,
		RequestDigest: req.Signed.Digest, Request: req.Body, Translated: translated, TranslatedSM3: translatedSM3,
		CreatedAt: now,
	}
	rc := &Receipt{ExchangeID: ex.ID, State: store.StateQueued}
	terminal := func(state string) bool { return adapters.State(state).Terminal() }
	settle := foldNonce(ctx, &entry)
	saved, err := s.store.AddStatus(ctx, st, terminal, entry, receiptBytes(rc))
	switch err = settle(err); {
	case errors.Is(err, store.ErrDuplicate) && saved != nil:
		return decodeReceipt(saved.Receipt, true)
	case errors.Is(err, store.ErrInvalidTransition):
		return nil, newError(CodeInvalidTransition, "the case has reached a terminal state")
	case err != nil:
		return nil, internalUnlessRefused(err)
	}
	s.accepted()
	return decodeReceipt(saved.Receipt, false)
}

// findForStatus finds the exchange a status update is about, among those the
// caller takes part in.
func (s *service) findForStatus(ctx context.Context, caller *Partner, exchangeID, caseNo string) (*store.Exchange, error) {
	var ex *store.Exchange
	var err error
	if exchangeID != "" {
		ex, err = s.store.GetExchange(ctx, exchangeID)
	} else {
		ex, err = s.store.FindExchangeOf(ctx, caller.Division, caseNo)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, newError(CodeNotFound, "no such case for this partner")
	}
	if err != nil {
		return nil, internal(err)
	}
	own := ex.SourceCaseNo
	if caller.Division == ex.To {
		own = ex.TargetCaseNo
	}
	if caller.Division != ex.From && caller.Division != ex.To {
		return nil, newError(CodeNotFound, "no such case for this partner")
	}
	if exchangeID != "" && caseNo != own {
		return nil, newError(CodeNotFound, "the case number does not belong to this exchange")
	}
	return ex, nil
}

// mayUpdate applies gateway-api.md's rule on who may send which state, and
// returns the partner the update is delivered to.
func (s *service) mayUpdate(ex *store.Exchange, caller *Partner, state adapters.State) (*Partner, error) {
	other := ex.To
	if caller.Division == ex.To {
		other = ex.From
	}
	recipient := s.partners[other]
	if recipient == nil {
		return nil, internal(errors.New("no partner for division " + other))
	}
	handles := caller.Division == ex.To || adapters.HandlingMode(ex.Mode) == adapters.ModeJoint
	if !handles && !state.Withdrawal() {
		return nil, newError(CodeForbidden, "only the handling district sends this state; the applicant's district may send withdrawals only")
	}
	if caller.Division == ex.From && ex.TargetCaseNo == "" {
		// The handling district has not acknowledged the case yet, so it has
		// no number to address the update to.
		return nil, newError(CodeInvalidTransition, "case not yet delivered")
	}
	return recipient, nil
}

// Exchange and FindCase: an empty id or number is not found
// (Store.ExchangeDetails).
func (s *service) Exchange(ctx context.Context, caller certs.Identity, id string) (*ExchangeView, error) {
	return s.view(ctx, caller, id, "")
}

func (s *service) FindCase(ctx context.Context, caller certs.Identity, caseNo string) (*ExchangeView, error) {
	return s.view(ctx, caller, "", caseNo)
}

// view reads the exchange with its status updates and deliveries from one
// snapshot of the store: read apart, a delivery committed between the
// reads showed "delivered" without the partner's case number.
func (s *service) view(ctx context.Context, caller certs.Identity, id, caseNo string) (*ExchangeView, error) {
	ex, sts, dls, err := s.store.ExchangeDetails(ctx, id, caseNo)
	if errors.Is(err, store.ErrNotFound) {
		return nil, newError(CodeNotFound, "no such exchange")
	}
	if err != nil {
		return nil, internal(err)
	}
	if caller.Role != certs.RolePartner || (caller.Division != ex.From && caller.Division != ex.To) {
		return nil, newError(CodeNotFound, "no such exchange")
	}
	return newExchangeView(ex, sts, dls, s.partners), nil
}

// deny records an authenticated refusal in the exchange log (exchange-log.md
// kind "denied") and returns the domain error to answer with.
func (s *service) deny(ctx context.Context, req Request, err error) error {
	if refusedBySignature(err) {
		return err // answered as the verifier would, and not logged
	}
	e := asError(err)
	if e.Code == CodeInternal {
		s.log.ErrorContext(ctx, "internal error", "err", e.Err)
		return e
	}
	from := req.Caller.Division
	if req.Caller.Role != certs.RolePartner {
		from = req.Caller.KeyID
	}
	f := &exchangelog.DeniedEntry{Header: exchangelog.Header{Time: s.now()}, From: from, Request: logSigned(req.Signed), Code: e.Code}
	for _, fe := range e.Fields {
		f.Fields = append(f.Fields, fe.Field)
	}
	if e.Decision != nil && e.PolicyInput != nil {
		in, d, merr := marshalDecision(*e.PolicyInput, *e.Decision)
		if merr != nil {
			return internal(merr)
		}
		f.PolicyInput, f.Decision = in, d
	}
	entry, merr := store.NewLogAppend(f, f.Time)
	if merr != nil {
		return internal(merr)
	}
	settle := foldNonce(ctx, &entry)
	if _, aerr := s.store.AppendEntry(ctx, entry); aerr != nil {
		if aerr = settle(aerr); refusedBySignature(aerr) {
			return aerr
		}
		s.log.ErrorContext(ctx, "recording a denial failed", "err", aerr)
		return internal(aerr)
	}
	settle(nil)
	return e
}

// foldNonce puts the request's deferred signature nonce (httpsig
// Verifier.Defer: the routes that write) into entry, so that it is recorded
// in the transaction that appends it rather than in one of its own. The
// returned function takes the store's answer: the nonce is settled when the
// transaction committed or found it replayed (then the answer is 401
// replayed); otherwise (a duplicate, an error: nothing was written) the
// verifier's middleware records it before the response goes out.
func foldNonce(ctx context.Context, entry *store.LogAppend) func(error) error {
	vf, ok := httpsig.FromContext(ctx)
	if !ok || vf.Pending == nil || vf.Pending.Settled() {
		return func(err error) error { return err }
	}
	p := vf.Pending
	entry.Nonce = &store.Nonce{KeyID: p.KeyID, Value: p.Nonce, Until: p.Until}
	return func(err error) error {
		switch {
		case err == nil:
			p.Settle()
		case errors.Is(err, store.ErrReplayed):
			p.Settle()
			return httpsig.ErrReplayed.WithDetail("this nonce was already used")
		}
		return err
	}
}

// refusedBySignature: err is the verifier's refusal (replayed, found when
// the deferred nonce was recorded).
func refusedBySignature(err error) bool {
	var se *httpsig.Error
	return errors.As(err, &se)
}

// internalUnlessRefused is internal(err), except for the verifier's
// refusals, answered as they are.
func internalUnlessRefused(err error) error {
	if refusedBySignature(err) {
		return err
	}
	return internal(err)
}

// Translation is the pure part of the exchange pipeline: what the policy
// saw and decided, and the record for the owning district.
type Translation struct {
	Input    policies.Input
	Decision policies.Decision // with its Revision
	To       *Partner
	Record   []byte // the record exactly as delivered to To
}

// TranslateCase decides a decoded case from partner from by policy and
// translates it for the owning district. A denial is a policy_denied Error
// carrying the decision and its input.
func TranslateCase(ctx context.Context, engine *policies.Engine, partners Partners, from *Partner, c *adapters.Case) (*Translation, error) {
	in := policyInput(from.Division, c)
	d, err := engine.Decide(ctx, in)
	if err != nil {
		return nil, internal(err)
	}
	d.Revision = engine.Revision()
	if !d.Allow {
		return nil, &Error{Code: CodePolicyDenied, Detail: denialDetail(d), Decision: &d, PolicyInput: &in}
	}
	to := partners[c.OwnerDivision]
	if to == nil {
		return nil, &Error{Code: CodeValidationFailed, Detail: "no partner handles the owning division",
			Fields: []adapters.FieldError{{Field: ownerField(from), Code: "unknown_partner", Message: "tongban has no partner for division " + c.OwnerDivision}}}
	}
	delivered := c.ForDelivery(from.Division, adapters.HandlingMode(d.Mode), d.TargetImplCode, d.PromisedDays)
	record, err := to.Codec.EncodeCase(&delivered)
	if err != nil {
		return nil, internal(err)
	}
	return &Translation{Input: in, Decision: d, To: to, Record: record}, nil
}

func policyInput(from string, c *adapters.Case) policies.Input {
	codes := make([]string, 0, len(c.Materials))
	for _, m := range c.Materials {
		codes = append(codes, m.Code)
	}
	return policies.Input{
		From: from, To: c.OwnerDivision, BasicCode: c.Item.BasicCode,
		ApplicantKind: string(c.Applicant.Kind), Channel: string(c.Channel),
		Materials: codes, Time: c.ReceivedBy.ReceivedAt,
	}
}

func marshalDecision(in policies.Input, d policies.Decision) (json.RawMessage, json.RawMessage, error) {
	ib, err := json.Marshal(in)
	if err != nil {
		return nil, nil, err
	}
	db, err := json.Marshal(d)
	if err != nil {
		return nil, nil, err
	}
	return ib, db, nil
}

func denialDetail(d policies.Decision) string {
	s := ""
	for i, r := range d.Reasons {
		if i > 0 {
			s += "; "
		}
		s += r.Code + ": " + r.Message
	}
	return s
}

func ownerField(p *Partner) string {
	if p.Codec.Name() == "nanhai" {
		return "TARGET_DIVISION"
	}
	return "/ownerDivision"
}

func logSigned(s httpsig.Signed) exchangelog.Signed {
	return exchangelog.Signed{Digest: s.Digest, SignatureBase: s.SignatureBase, Signature: s.Signature, KeyID: s.KeyID}
}

func receiptBytes(rc *Receipt) func(store.LogPosition) ([]byte, error) {
	return func(pos store.LogPosition) ([]byte, error) {
		rc.LogIndex = pos.Index
		rc.LeafHash = hex.EncodeToString(pos.LeafHash[:])
		return json.Marshal(rc)
	}
}

func decodeReceipt(b []byte, replayed bool) (*Receipt, error) {
	var rc Receipt
	if err := json.Unmarshal(b, &rc); err != nil {
		return nil, internal(err)
	}
	rc.Replayed = replayed
	return &rc, nil
}

// seqDeliveryID is the outbox id and Idempotency-Key of the n-th status
// update of an exchange.
func seqDeliveryID(exchangeID string, n int) string {
	if n == 0 {
		return exchangeID
	}
	return exchangeID + "." + strconv.Itoa(n)
}

// PilotPartners are the two pilot districts with their default endpoints
// (where `tongban sim` listens by default).
func PilotPartners() Partners {
	return NewPartners(
		&Partner{ID: "nanhai", Division: adapters.DivisionNanhai, Endpoint: DefaultNanhaiEndpoint, Codec: codecs["nanhai"]},
		&Partner{ID: "liwan", Division: adapters.DivisionLiwan, Endpoint: DefaultLiwanEndpoint, Codec: codecs["liwan"]},
	)
}

// ByID finds a partner by its id.
func (ps Partners) ByID(id string) *Partner {
	for _, p := range ps {
		if p.ID == id {
			return p
		}
	}
	return nil
}

// Other is the partner that is not p, when there are exactly two.
func (ps Partners) Other(p *Partner) *Partner {
	for _, q := range ps {
		if q.Division != p.Division && len(ps) == 2 {
			return q
		}
	}
	return nil
}

// TranslateStatus decodes a status update from partner from, addresses it to
// caseNo (the receiving district's number) and encodes it for to.
func TranslateStatus(from, to *Partner, body []byte, caseNo string) ([]byte, error) {
	u, err := from.Codec.DecodeStatus(body)
	if err != nil {
		return nil, asError(err)
	}
	u.CaseNo = caseNo
	out, err := to.Codec.EncodeStatus(u)
	if err != nil {
		return nil, internal(err)
	}
	return out, nil
}
