package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/gateway/exchangelog"
	"github.com/tongban/tongban/gateway/store"
	"github.com/tongban/tongban/httpsig"
	"github.com/tongban/tongban/policies"
)

// maxBundleBytes limits an uploaded policy bundle.
const maxBundleBytes = 8 << 20

// handlerFunc is a signed route's handler: it answers a document or an
// error, which the route turns into JSON or problem+json.
type handlerFunc func(ctx context.Context, vr *httpsig.Verified, r *http.Request) (status int, doc any, err error)

// route wraps h: only the given roles may call it (403 forbidden, and an
// authenticated POST refused is a denied log entry).
func (s *Server) route(h handlerFunc, roles ...certs.Role) http.Handler {
	enc := ErrorEncoder(s.logger)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := context.WithValue(context.WithValue(r.Context(), requestKey, r), writerKey, w)
		vr, err := verified(ctx)
		if err == nil && !slices.Contains(roles, vr.Identity.Role) {
			err = newError(CodeForbidden, "the %s role may not call this route", vr.Identity.Role)
		}
		status, doc := 0, any(nil)
		if err == nil {
			status, doc, err = h(ctx, vr, r)
		}
		if err != nil {
			if r.Method == http.MethodPost && vr != nil {
				err = s.core.deny(ctx, Request{Caller: vr.Identity, Signed: vr.Request, ContentType: r.Header.Get("Content-Type"), Body: vr.Body}, err)
			}
			enc(ctx, err, w)
			return
		}
		if b, ok := doc.([]byte); ok {
			w.WriteHeader(status)
			_, _ = w.Write(b)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(doc)
	})
}

func (s *Server) adminRoutes(m map[string]http.Handler) {
	admin := func(h handlerFunc) http.Handler { return s.route(h, certs.RoleAdmin) }
	m["GET /admin/v1/policy"] = admin(s.activePolicy)
	m["POST /admin/v1/policy/drafts"] = admin(s.uploadDraft)
	m["POST /admin/v1/policy/drafts/{id}/validate"] = admin(s.validateDraft)
	m["POST /admin/v1/policy/drafts/{id}/simulate"] = admin(s.simulateDraft)
	m["POST /admin/v1/policy/drafts/{id}/activate"] = admin(s.activateDraft)
	m["GET /admin/v1/policy/history"] = admin(s.policyHistory)
	m["POST /admin/v1/policy/rollback/{revision}"] = admin(s.rollback)
	m["GET /admin/v1/deliveries"] = admin(s.listDeliveries)
	m["POST /admin/v1/deliveries/{id}/retry"] = admin(s.redrive)
	m["GET /admin/v1/partners"] = admin(s.listPartners)
}

// PolicyView describes the active policy bundle.
type PolicyView struct {
	Revision    string     `json:"revision"`
	Files       []string   `json:"files"`
	ActivatedBy string     `json:"activatedBy,omitempty"`
	ActivatedAt *time.Time `json:"activatedAt,omitempty"`
	Catalog     any        `json:"catalog,omitempty"`
}

func (s *Server) activePolicy(ctx context.Context, _ *httpsig.Verified, _ *http.Request) (int, any, error) {
	e := s.Policy.Load()
	v := PolicyView{Revision: e.Revision(), Files: e.Bundle().Paths(), Catalog: e.Catalog()}
	acts, err := s.Store.Activations(ctx)
	if err != nil {
		return 0, nil, internal(err)
	}
	for _, a := range acts {
		if a.Revision == v.Revision {
			at := a.At.In(chinaTime)
			v.ActivatedBy, v.ActivatedAt = a.By, &at
			break
		}
	}
	return http.StatusOK, v, nil
}

// DraftView is an uploaded draft.
type DraftView struct {
	ID         string          `json:"id"`
	Revision   string          `json:"revision"`
	Files      []string        `json:"files"`
	UploadedBy string          `json:"uploadedBy"`
	UploadedAt time.Time       `json:"uploadedAt"`
	Validated  bool            `json:"validated"`
	Report     json.RawMessage `json:"report,omitempty"`
}

func (s *Server) uploadDraft(ctx context.Context, vr *httpsig.Verified, _ *http.Request) (int, any, error) {
	b, err := policies.BundleFromTar(bytes.NewReader(vr.Body), maxBundleBytes)
	if err != nil {
		return 0, nil, &Error{Code: CodeMalformed, Detail: "the draft must be a tar of the bundle: " + err.Error()}
	}
	d := &store.Draft{ID: NewExchangeID(), Revision: b.Revision(), Bundle: b.Tar(), UploadedBy: vr.Identity.KeyID, UploadedAt: time.Now()}
	if err := s.Store.SaveDraft(ctx, d); err != nil {
		return 0, nil, internal(err)
	}
	return http.StatusCreated, DraftView{ID: d.ID, Revision: d.Revision, Files: b.Paths(), UploadedBy: d.UploadedBy, UploadedAt: d.UploadedAt.In(chinaTime)}, nil
}

func (s *Server) draft(ctx context.Context, id string) (*store.Draft, *policies.Bundle, error) {
	d, err := s.Store.GetDraft(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, newError(CodeNotFound, "no such draft")
	}
	if err != nil {
		return nil, nil, internal(err)
	}
	b, err := policies.BundleFromTar(bytes.NewReader(d.Bundle), maxBundleBytes)
	if err != nil {
		return nil, nil, internal(err)
	}
	return d, b, nil
}

func (s *Server) validateDraft(ctx context.Context, _ *httpsig.Verified, r *http.Request) (int, any, error) {
	d, b, err := s.draft(ctx, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	rep, err := b.Validate(ctx)
	if err != nil {
		return 0, nil, internal(err)
	}
	raw, err := json.Marshal(rep)
	if err != nil {
		return 0, nil, internal(err)
	}
	if err := s.Store.MarkDraftValidated(ctx, d.ID, rep.OK, raw); err != nil {
		return 0, nil, internal(err)
	}
	return http.StatusOK, rep, nil
}

// SimulationChange is one past decision that the draft would change.
type SimulationChange struct {
	LogIndex uint64            `json:"logIndex"`
	Exchange string            `json:"exchange,omitempty"`
	Input    policies.Input    `json:"input"`
	Before   policies.Decision `json:"before"`
	After    policies.Decision `json:"after"`
}

// SimulationReport is a draft's impact on past traffic.
type SimulationReport struct {
	Draft       string             `json:"draft"`
	Revision    string             `json:"revision"`
	Evaluated   int                `json:"evaluated"`
	Changed     int                `json:"changed"`
	AllowToDeny int                `json:"allowToDeny"`
	DenyToAllow int                `json:"denyToAllow"`
	Changes     []SimulationChange `json:"changes"`
}

func (s *Server) simulateDraft(ctx context.Context, _ *httpsig.Verified, r *http.Request) (int, any, error) {
	d, b, err := s.draft(ctx, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	if !d.Validated {
		return 0, nil, newError(CodeInvalidTransition, "validate the draft before simulating it")
	}
	n := 1000
	if q := r.URL.Query().Get("n"); q != "" {
		if n, err = strconv.Atoi(q); err != nil || n < 1 || n > 100000 {
			return 0, nil, newError(CodeMalformed, "n must be an integer from 1 to 100000")
		}
	}
	engine, err := policies.Compile(ctx, b)
	if err != nil {
		return 0, nil, internal(err)
	}
	past, err := s.Store.RecentDecisions(ctx, n)
	if err != nil {
		return 0, nil, internal(err)
	}
	rep := SimulationReport{Draft: d.ID, Revision: b.Revision(), Changes: []SimulationChange{}}
	for _, e := range past {
		var rec struct {
			Exchange    string            `json:"exchange"`
			PolicyInput *policies.Input   `json:"policy_input"`
			Decision    policies.Decision `json:"decision"`
		}
		if err := json.Unmarshal(e.Bytes, &rec); err != nil || rec.PolicyInput == nil {
			continue
		}
		after, err := engine.Decide(ctx, *rec.PolicyInput)
		if err != nil {
			return 0, nil, internal(err)
		}
		after.Revision = engine.Revision()
		rep.Evaluated++
		if sameOutcome(rec.Decision, after) {
			continue
		}
		rep.Changed++
		switch {
		case rec.Decision.Allow && !after.Allow:
			rep.AllowToDeny++
		case !rec.Decision.Allow && after.Allow:
			rep.DenyToAllow++
		}
		rep.Changes = append(rep.Changes, SimulationChange{LogIndex: e.Index, Exchange: rec.Exchange, Input: *rec.PolicyInput, Before: rec.Decision, After: after})
	}
	return http.StatusOK, rep, nil
}

func sameOutcome(a, b policies.Decision) bool {
	return a.Allow == b.Allow && a.Mode == b.Mode && a.TargetImplCode == b.TargetImplCode &&
		a.PromisedDays == b.PromisedDays && slices.Equal(a.ReasonCodes(), b.ReasonCodes()) &&
		slices.Equal(a.MissingMaterials, b.MissingMaterials)
}

// activation serialises activations so "previous" is always right.
var activation sync.Mutex

func (s *Server) activateDraft(ctx context.Context, vr *httpsig.Verified, r *http.Request) (int, any, error) {
	d, b, err := s.draft(ctx, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	if !d.Validated {
		return 0, nil, newError(CodeInvalidTransition, "only a validated draft can be activated")
	}
	return s.activate(ctx, vr, b)
}

func (s *Server) activate(ctx context.Context, vr *httpsig.Verified, b *policies.Bundle) (int, any, error) {
	engine, err := policies.Compile(ctx, b)
	if err != nil {
		return 0, nil, internal(err)
	}
	activation.Lock()
	defer activation.Unlock()
	prev := s.Policy.Load().Revision()
	now := time.Now()
	entry, err := logAppend(&exchangelog.PolicyActivatedEntry{
		Header: exchangelog.Header{Time: now}, Revision: b.Revision(), Previous: prev,
		By: vr.Identity.KeyID, Request: logSigned(vr.Request),
	}, now)
	if err != nil {
		return 0, nil, internal(err)
	}
	a := &store.Activation{Revision: b.Revision(), Previous: prev, Bundle: b.Tar(), By: vr.Identity.KeyID, At: now}
	if err := s.Store.Activate(ctx, a, entry); err != nil {
		return 0, nil, internal(err)
	}
	s.Policy.Activate(engine)
	s.logger.InfoContext(ctx, "policy activated", "revision", a.Revision, "previous", prev, "by", a.By)
	return http.StatusOK, map[string]any{"revision": a.Revision, "previous": prev, "activatedBy": a.By, "logIndex": a.LogIndex}, nil
}

// HistoryItem is one past activation.
type HistoryItem struct {
	Revision string    `json:"revision"`
	Previous string    `json:"previous"`
	By       string    `json:"by"`
	At       time.Time `json:"at"`
	LogIndex uint64    `json:"logIndex"`
	Active   bool      `json:"active"`
}

func (s *Server) policyHistory(ctx context.Context, _ *httpsig.Verified, _ *http.Request) (int, any, error) {
	acts, err := s.Store.Activations(ctx)
	if err != nil {
		return 0, nil, internal(err)
	}
	active := s.Policy.Load().Revision()
	out := []HistoryItem{}
	for i, a := range acts {
		out = append(out, HistoryItem{Revision: a.Revision, Previous: a.Previous, By: a.By, At: a.At.In(chinaTime), LogIndex: a.LogIndex, Active: i == 0 && a.Revision == active})
	}
	if len(acts) == 0 {
		out = append(out, HistoryItem{Revision: active, Active: true})
	}
	return http.StatusOK, out, nil
}

func (s *Server) rollback(ctx context.Context, vr *httpsig.Verified, r *http.Request) (int, any, error) {
	rev := r.PathValue("revision")
	acts, err := s.Store.Activations(ctx)
	if err != nil {
		return 0, nil, internal(err)
	}
	for _, a := range acts {
		if a.Revision == rev {
			b, err := policies.BundleFromTar(bytes.NewReader(a.Bundle), maxBundleBytes)
			if err != nil {
				return 0, nil, internal(err)
			}
			return s.activate(ctx, vr, b)
		}
	}
	if rev == policies.Pilot().Revision() {
		return s.activate(ctx, vr, policies.Pilot())
	}
	return 0, nil, newError(CodeNotFound, "no activation of revision %s", rev)
}

func (s *Server) listDeliveries(ctx context.Context, _ *httpsig.Verified, r *http.Request) (int, any, error) {
	state := r.URL.Query().Get("state")
	switch state {
	case "", store.StateQueued, store.StateDelivering, store.StateDelivered, store.StateRetrying, store.StateRefused, store.StateDead:
	default:
		return 0, nil, newError(CodeMalformed, "unknown state %q", state)
	}
	ds, err := s.Store.Deliveries(ctx, state, 1000)
	if err != nil {
		return 0, nil, internal(err)
	}
	out := []DeliveryView{}
	for _, d := range ds {
		out = append(out, deliveryView(d))
	}
	return http.StatusOK, out, nil
}

func (s *Server) redrive(ctx context.Context, vr *httpsig.Verified, r *http.Request) (int, any, error) {
	id := r.PathValue("id")
	err := s.Worker.Redrive(ctx, id, vr.Identity.KeyID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return 0, nil, newError(CodeNotFound, "no such delivery")
	case errors.Is(err, store.ErrConflict):
		return 0, nil, newError(CodeInvalidTransition, "only a dead delivery can be re-driven")
	case err != nil:
		return 0, nil, internal(err)
	}
	d, err := s.Store.GetDelivery(ctx, id)
	if err != nil {
		return 0, nil, internal(err)
	}
	return http.StatusAccepted, deliveryView(*d), nil
}

// PartnerView is a partner and its certificates.
type PartnerView struct {
	ID           string     `json:"id"`
	Division     string     `json:"division"`
	Endpoint     string     `json:"endpoint"`
	Certificates []CertView `json:"certificates"`
}

// CertView is one certificate of an identity.
type CertView struct {
	KeyID    string    `json:"keyid"`
	Subject  string    `json:"subject"`
	NotAfter time.Time `json:"notAfter"`
}

func (s *Server) listPartners(context.Context, *httpsig.Verified, *http.Request) (int, any, error) {
	out := []PartnerView{}
	for _, p := range s.Partners {
		pv := PartnerView{ID: p.ID, Division: p.Division, Endpoint: p.Endpoint, Certificates: []CertView{}}
		for _, id := range s.Trust.Identities() {
			if id.Role == certs.RolePartner && id.Division == p.Division && id.Certificate != nil {
				pv.Certificates = append(pv.Certificates, CertView{KeyID: id.KeyID, Subject: id.Certificate.Subject.String(), NotAfter: id.Certificate.NotAfter})
			}
		}
		out = append(out, pv)
	}
	slices.SortFunc(out, func(a, b PartnerView) int { return strings.Compare(a.ID, b.ID) })
	return http.StatusOK, out, nil
}
