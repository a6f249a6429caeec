package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"slices"
	"strconv"
	"strings"
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
	// The bundle the server started with, so that a rollback can return to
	// it even when it was never activated through this API.
	boot := s.Policy.Load().Bundle()
	m["GET /admin/v1/policy"] = admin(s.activePolicy)
	m["POST /admin/v1/policy/drafts"] = admin(s.uploadDraft)
	m["GET /admin/v1/policy/drafts/{id}"] = admin(s.getDraft)
	m["POST /admin/v1/policy/drafts/{id}/validate"] = admin(s.validateDraft)
	m["POST /admin/v1/policy/drafts/{id}/simulate"] = admin(s.simulateDraft)
	m["POST /admin/v1/policy/drafts/{id}/activate"] = admin(s.activateDraft)
	m["GET /admin/v1/policy/history"] = admin(s.policyHistory)
	m["POST /admin/v1/policy/rollback/{revision}"] = admin(func(ctx context.Context, vr *httpsig.Verified, r *http.Request) (int, any, error) {
		return s.rollback(ctx, vr, r, boot)
	})
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

// DraftView is an uploaded draft: its revision (the SM3 of the bundle,
// catalog.md), who uploaded it (the administrator's key id) and when, and
// the report of its last validation.
type DraftView struct {
	ID         string          `json:"id"`
	Revision   string          `json:"revision"`
	Files      []string        `json:"files"`
	UploadedBy string          `json:"uploadedBy"`
	UploadedAt time.Time       `json:"uploadedAt"`
	Validated  bool            `json:"validated"`
	Report     json.RawMessage `json:"report,omitempty"`
}

// Media types a draft may be uploaded as: a tar of the bundle root
// (optionally gzip-compressed), or a multipart/form-data form.
var tarMediaTypes = map[string]bool{
	"application/x-tar": true, "application/tar": true, "application/octet-stream": true,
	"application/gzip": true, "application/x-gzip": true, "application/tar+gzip": true,
}

func (s *Server) uploadDraft(ctx context.Context, vr *httpsig.Verified, _ *http.Request) (int, any, error) {
	b, err := readDraft(vr.ContentType, vr.Body)
	if err != nil {
		return 0, nil, err
	}
	d := &store.Draft{ID: NewExchangeID(), Revision: b.Revision(), Bundle: b.Tar(), UploadedBy: vr.Identity.KeyID, UploadedAt: time.Now()}
	if err := s.Store.SaveDraft(ctx, d); err != nil {
		return 0, nil, internal(err)
	}
	if w, ok := ctx.Value(writerKey).(http.ResponseWriter); ok {
		w.Header().Set("Location", "/admin/v1/policy/drafts/"+d.ID)
	}
	s.logger.InfoContext(ctx, "policy draft uploaded", "draft", d.ID, "revision", d.Revision, "by", d.UploadedBy)
	return http.StatusCreated, draftView(d, b), nil
}

func draftView(d *store.Draft, b *policies.Bundle) DraftView {
	v := DraftView{ID: d.ID, Revision: d.Revision, Files: b.Paths(), UploadedBy: d.UploadedBy, UploadedAt: d.UploadedAt.In(chinaTime), Validated: d.Validated}
	if len(d.Report) > 0 {
		v.Report = d.Report
	}
	return v
}

// readDraft reads an uploaded bundle. A tar body is the bundle root
// (.manifest and tongban/…), as `tar -C policies -cf - .manifest tongban`
// writes it. A multipart/form-data body carries either one tar part or one
// part per file, each named by its bundle path in the field name or the
// file name (curl -F 'tongban/catalog/data.json=@data.json'). At most
// maxBundleBytes of file content are taken (too_large).
func readDraft(contentType string, body []byte) (*policies.Bundle, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, newError(CodeUnsupportedMedia, "send the draft as application/x-tar or multipart/form-data")
	}
	var b *policies.Bundle
	switch {
	case tarMediaTypes[mt]:
		b, err = policies.BundleFromTar(bytes.NewReader(body), maxBundleBytes)
	case mt == "multipart/form-data":
		b, err = bundleFromForm(body, params["boundary"])
	default:
		return nil, newError(CodeUnsupportedMedia, "send the draft as application/x-tar or multipart/form-data, not %s", mt)
	}
	switch {
	case errors.Is(err, policies.ErrTooLarge):
		return nil, newError(CodeTooLarge, "a draft holds at most %d bytes of files", maxBundleBytes)
	case err != nil:
		var e *Error
		if errors.As(err, &e) {
			return nil, e
		}
		return nil, newError(CodeMalformed, "not a policy bundle: %v", err)
	case len(b.Paths()) == 0:
		return nil, newError(CodeMalformed, "the draft has no files")
	}
	return b, nil
}

// bundleFromForm reads a multipart/form-data draft.
func bundleFromForm(body []byte, boundary string) (*policies.Bundle, error) {
	if boundary == "" {
		return nil, newError(CodeMalformed, "multipart/form-data without a boundary")
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	files := map[string][]byte{}
	var tarPart []byte
	var total int64
	for {
		part, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, newError(CodeMalformed, "multipart body: %v", err)
		}
		// Part.FileName keeps only the base name; the bundle path needs the
		// whole of it.
		_, disp, err := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
		if err != nil {
			return nil, newError(CodeMalformed, "multipart part without a valid Content-Disposition")
		}
		name, filename := disp["name"], disp["filename"]
		content, err := io.ReadAll(io.LimitReader(part, maxBundleBytes-total+1))
		if err != nil {
			return nil, newError(CodeMalformed, "multipart part %q: %v", name, err)
		}
		if total += int64(len(content)); total > maxBundleBytes {
			return nil, policies.ErrTooLarge
		}
		path := ""
		switch {
		case isBundlePath(name):
			path = name
		case isBundlePath(filename):
			path = filename
		case isTarPart(name, filename, part.Header.Get("Content-Type")):
			if tarPart != nil {
				return nil, newError(CodeMalformed, "send one tar part, or the files one by one")
			}
			tarPart = content
			continue
		default:
			return nil, newError(CodeMalformed, "multipart part %q (file %q): name each file by its bundle path (.manifest or tongban/…), or send one tar part named bundle", name, filename)
		}
		if _, dup := files[path]; dup {
			return nil, newError(CodeMalformed, "the file %s is sent twice", path)
		}
		files[path] = content
	}
	if tarPart != nil {
		if len(files) > 0 {
			return nil, newError(CodeMalformed, "send one tar part, or the files one by one, not both")
		}
		return policies.BundleFromTar(bytes.NewReader(tarPart), maxBundleBytes)
	}
	return policies.BundleFromFiles(files)
}

func isBundlePath(p string) bool {
	return p == policies.ManifestPath || strings.HasPrefix(p, policies.Root+"/")
}

func isTarPart(name, filename, contentType string) bool {
	mt, _, _ := mime.ParseMediaType(contentType)
	return name == "bundle" || tarMediaTypes[mt] && mt != "application/octet-stream" ||
		strings.HasSuffix(filename, ".tar") || strings.HasSuffix(filename, ".tar.gz") || strings.HasSuffix(filename, ".tgz")
}

func (s *Server) getDraft(ctx context.Context, _ *httpsig.Verified, r *http.Request) (int, any, error) {
	d, b, err := s.draft(ctx, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, draftView(d, b), nil
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

// ValidationView is the answer to a validation: the draft and the report
// (ok, problems located by file and line, test counts).
type ValidationView struct {
	Draft string `json:"draft"`
	*policies.Report
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
	s.logger.InfoContext(ctx, "policy draft validated", "draft", d.ID, "revision", d.Revision, "ok", rep.OK, "problems", len(rep.Problems))
	return http.StatusOK, ValidationView{Draft: d.ID, Report: rep}, nil
}

// SimulationChange is one past decision that the draft would change: the
// input the policy saw then (no personal data, catalog.md), the decision
// logged then and the draft's decision on the same input.
type SimulationChange struct {
	LogIndex uint64            `json:"logIndex"`
	Exchange string            `json:"exchange,omitempty"`
	Input    policies.Input    `json:"input"`
	Before   policies.Decision `json:"before"`
	After    policies.Decision `json:"after"`
}

// SimulationReport is a draft's effect on past traffic: how many logged
// decisions were evaluated again, how many would change and how, and the
// changes side by side, newest first.
type SimulationReport struct {
	Draft       string `json:"draft"`
	Revision    string `json:"revision"`
	Active      string `json:"active"` // the revision active now
	Evaluated   int    `json:"evaluated"`
	Changed     int    `json:"changed"`
	AllowToDeny int    `json:"allowToDeny"`
	DenyToAllow int    `json:"denyToAllow"`
	// Other counts changes that keep allow or deny (another mode, other
	// reasons, other missing materials, other promised days).
	Other   int                `json:"other"`
	Changes []SimulationChange `json:"changes"`
}

// Bounds of a simulation's N.
const (
	defaultSimulationN = 1000
	maxSimulationN     = 100000
)

func (s *Server) simulateDraft(ctx context.Context, _ *httpsig.Verified, r *http.Request) (int, any, error) {
	d, b, err := s.draft(ctx, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	if !d.Validated {
		return 0, nil, newError(CodeInvalidTransition, "validate the draft (and fix what validation reports) before simulating it")
	}
	n := defaultSimulationN
	if q := r.URL.Query().Get("n"); q != "" {
		if n, err = strconv.Atoi(q); err != nil || n < 1 || n > maxSimulationN {
			return 0, nil, newError(CodeMalformed, "n must be an integer from 1 to %d", maxSimulationN)
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
	rep := SimulationReport{Draft: d.ID, Revision: b.Revision(), Active: s.Policy.Load().Revision(), Changes: []SimulationChange{}}
	for _, e := range past {
		var rec struct {
			Exchange    string            `json:"exchange"`
			PolicyInput *policies.Input   `json:"policy_input"`
			Decision    policies.Decision `json:"decision"`
		}
		if err := json.Unmarshal(e.Bytes, &rec); err != nil || rec.PolicyInput == nil {
			s.logger.WarnContext(ctx, "simulation: a logged decision cannot be read", "index", e.Index, "err", err)
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
		default:
			rep.Other++
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

// ActivationView is the answer to an activation or rollback.
type ActivationView struct {
	Revision    string    `json:"revision"`
	Previous    string    `json:"previous"`
	ActivatedBy string    `json:"activatedBy"`
	ActivatedAt time.Time `json:"activatedAt"`
	// LogIndex is the index of the policy_activated entry in the exchange
	// log.
	LogIndex uint64 `json:"logIndex"`
}

func (s *Server) activateDraft(ctx context.Context, vr *httpsig.Verified, r *http.Request) (int, any, error) {
	d, b, err := s.draft(ctx, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	if !d.Validated {
		return 0, nil, newError(CodeInvalidTransition, "only a validated draft can be activated: validate it first (and fix what validation reports)")
	}
	return s.activate(ctx, vr, b)
}

// activate makes b the active policy: compiled first, then recorded (the
// activation and its policy_activated log entry in one transaction), then
// swapped in atomically. Requests that already took the old engine finish
// on it; the next request uses b.
func (s *Server) activate(ctx context.Context, vr *httpsig.Verified, b *policies.Bundle) (int, any, error) {
	engine, err := policies.Compile(ctx, b)
	if err != nil {
		return 0, nil, internal(err)
	}
	s.activating.Lock()
	defer s.activating.Unlock()
	prev := s.Policy.Load().Revision()
	if prev == b.Revision() {
		return 0, nil, newError(CodeInvalidTransition, "revision %s is already active", prev)
	}
	now := time.Now()
	entry, err := store.NewLogAppend(&exchangelog.PolicyActivatedEntry{
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
	s.logger.InfoContext(ctx, "policy activated", "revision", a.Revision, "previous", prev, "by", a.By, "log_index", a.LogIndex)
	return http.StatusOK, ActivationView{Revision: a.Revision, Previous: prev, ActivatedBy: a.By, ActivatedAt: now.In(chinaTime), LogIndex: a.LogIndex}, nil
}

// SyncPolicy makes the newest recorded activation the active policy when
// another replica activated it (replicas share the store but not their
// engines). It reports whether the engine changed. Where several replicas
// serve, call it on a timer (Run does not yet); a single gateway never
// needs it.
func (s *Server) SyncPolicy(ctx context.Context) (bool, error) {
	acts, err := s.Store.Activations(ctx)
	if err != nil || len(acts) == 0 || acts[0].Revision == s.Policy.Load().Revision() {
		return false, err
	}
	b, err := policies.BundleFromTar(bytes.NewReader(acts[0].Bundle), maxBundleBytes)
	if err != nil {
		return false, err
	}
	engine, err := policies.Compile(ctx, b)
	if err != nil {
		return false, err
	}
	s.activating.Lock()
	defer s.activating.Unlock()
	s.Policy.Activate(engine)
	s.logger.InfoContext(ctx, "policy activated by another replica", "revision", b.Revision(), "by", acts[0].By)
	return true, nil
}

// HistoryItem is one activation, or (Initial) the revision the gateway ran
// before the first one.
type HistoryItem struct {
	Revision string    `json:"revision"`
	Previous string    `json:"previous,omitempty"`
	By       string    `json:"by,omitempty"`
	At       time.Time `json:"at,omitzero"`
	LogIndex uint64    `json:"logIndex,omitempty"`
	Active   bool      `json:"active"`
	Initial  bool      `json:"initial,omitempty"`
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
		out = append(out, HistoryItem{Revision: active, Active: true, Initial: true})
	} else if first := acts[len(acts)-1]; first.Previous != "" {
		out = append(out, HistoryItem{Revision: first.Previous, Initial: true})
	}
	return http.StatusOK, out, nil
}

// rollback activates an earlier revision again: one that was activated
// before, the one the server started with (boot), the configured bundle or
// the embedded pilot bundle.
func (s *Server) rollback(ctx context.Context, vr *httpsig.Verified, r *http.Request, boot *policies.Bundle) (int, any, error) {
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
	candidates := []*policies.Bundle{boot, policies.Pilot()}
	if s.Config != nil && s.Config.Policies != "" {
		if b, err := policies.LoadBundle(s.Config.Policies); err == nil {
			candidates = append(candidates, b)
		}
	}
	for _, b := range candidates {
		if b != nil && b.Revision() == rev {
			return s.activate(ctx, vr, b)
		}
	}
	return 0, nil, newError(CodeNotFound, "no earlier revision %s (see GET /admin/v1/policy/history)", rev)
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
