package gateway

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/gateway/console"
	"github.com/tongban/tongban/gateway/exchangelog"
	"github.com/tongban/tongban/gateway/store"
	"github.com/tongban/tongban/httpsig"
	"github.com/tongban/tongban/policies"
)

// Bounds of the console's scans of the log.
const (
	consoleScanPage  = 256
	consoleMaxScan   = 20000  // entries one search page looks at
	consoleMaxHourly = 200000 // entries the per-hour chart counts
)

// newConsole is the web console (/console/), backed by this server's own
// operations: the admin handlers of admin.go, the log, the store.
func (s *Server) newConsole(v *httpsig.Verifier) (http.Handler, error) {
	return console.New(console.Options{Backend: &consoleBackend{s: s, verifier: v, boot: s.Policy.Load().Bundle()}, PublicURL: s.Config.PublicURL, Logger: s.logger})
}

// consoleBackend implements console.Backend. The policy and delivery
// operations call the very handlers of the admin API (admin.go) with the
// console's actor in place of a signed request, so the console and the API
// cannot drift apart; their JSON answers are decoded into the console's
// types.
type consoleBackend struct {
	s        *Server
	verifier *httpsig.Verifier
	boot     *policies.Bundle // the bundle the server started with (rollback)
}

var _ console.Backend = (*consoleBackend)(nil)

func (b *consoleBackend) VerifySignIn(r *http.Request) (*httpsig.Verified, error) {
	return b.verifier.Verify(r)
}

// consoleError turns a domain error into one the console may show; an
// internal error stays opaque.
func consoleError(err error) error {
	var e *Error
	if errors.As(err, &e) && e.Code != CodeInternal {
		return &console.Problem{Status: e.Status(), Code: e.Code, Detail: e.Detail}
	}
	return err
}

// call runs an admin handler as the actor: the actor's identity, and its
// signed sign-in where the handler records the signed request.
func (b *consoleBackend) call(ctx context.Context, h handlerFunc, by *console.Actor, role certs.Role, target string, path map[string]string, body []byte, out any) error {
	return b.callAs(ctx, h, by, role, target, path, "", body, out)
}

// callAs is call with the Content-Type of the body.
func (b *consoleBackend) callAs(ctx context.Context, h handlerFunc, by *console.Actor, role certs.Role, target string, path map[string]string, contentType string, body []byte, out any) error {
	if by != nil && by.Identity.Role != role {
		return &console.Problem{Status: http.StatusForbidden, Code: CodeForbidden, Detail: "the " + string(by.Identity.Role) + " role may not do this"}
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://console.invalid"+target, nil)
	if err != nil {
		return err
	}
	for k, v := range path {
		r.SetPathValue(k, v)
	}
	vr := &httpsig.Verified{Body: body, ContentType: contentType}
	if by != nil {
		vr.Identity, vr.Request = by.Identity, by.SignIn
	}
	_, doc, err := h(ctx, vr, r)
	if err != nil {
		return consoleError(err)
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, out)
}

func (b *consoleBackend) ActivePolicy(ctx context.Context) (*console.Policy, error) {
	var p console.Policy
	return &p, b.call(ctx, b.s.activePolicy, nil, "", "/", nil, nil, &p)
}

func (b *consoleBackend) UploadDraft(ctx context.Context, by console.Actor, tar []byte) (*console.Draft, error) {
	var d console.Draft
	return &d, b.callAs(ctx, b.s.uploadDraft, &by, certs.RoleAdmin, "/", nil, "application/x-tar", tar, &d)
}

func (b *consoleBackend) Draft(ctx context.Context, id string) (*console.Draft, error) {
	d, bundle, err := b.s.draft(ctx, id)
	if err != nil {
		return nil, consoleError(err)
	}
	out := &console.Draft{ID: d.ID, Revision: d.Revision, Files: bundle.Paths(), UploadedBy: d.UploadedBy, UploadedAt: d.UploadedAt.In(chinaTime), Validated: d.Validated}
	if len(d.Report) > 0 {
		out.Report = new(policies.Report)
		if err := json.Unmarshal(d.Report, out.Report); err != nil {
			return nil, err
		}
	}
	if data, ok := bundle.File(policies.CatalogPath); ok {
		var cat policies.Catalog
		if json.Unmarshal(data, &cat) == nil {
			out.Catalog = &cat
		}
	}
	return out, nil
}

func (b *consoleBackend) ValidateDraft(ctx context.Context, by console.Actor, id string) (*policies.Report, error) {
	var rep policies.Report
	return &rep, b.call(ctx, b.s.validateDraft, &by, certs.RoleAdmin, "/", map[string]string{"id": id}, nil, &rep)
}

func (b *consoleBackend) SimulateDraft(ctx context.Context, by console.Actor, id string) (*console.Simulation, error) {
	var sim console.Simulation
	return &sim, b.call(ctx, b.s.simulateDraft, &by, certs.RoleAdmin, "/", map[string]string{"id": id}, nil, &sim)
}

func (b *consoleBackend) ActivateDraft(ctx context.Context, by console.Actor, id string) (*console.Activation, error) {
	var a console.Activation
	return &a, b.call(ctx, b.s.activateDraft, &by, certs.RoleAdmin, "/", map[string]string{"id": id}, nil, &a)
}

func (b *consoleBackend) PolicyHistory(ctx context.Context) ([]console.HistoryItem, error) {
	var h []console.HistoryItem
	return h, b.call(ctx, b.s.policyHistory, nil, "", "/", nil, nil, &h)
}

func (b *consoleBackend) Rollback(ctx context.Context, by console.Actor, revision string) (*console.Activation, error) {
	var a console.Activation
	rollback := func(ctx context.Context, vr *httpsig.Verified, r *http.Request) (int, any, error) {
		return b.s.rollback(ctx, vr, r, b.boot)
	}
	return &a, b.call(ctx, rollback, &by, certs.RoleAdmin, "/", map[string]string{"revision": revision}, nil, &a)
}

func (b *consoleBackend) Deliveries(ctx context.Context, state string) ([]console.Delivery, error) {
	var ds []console.Delivery
	return ds, b.call(ctx, b.s.listDeliveries, nil, "", "/?state="+url.QueryEscape(state), nil, nil, &ds)
}

func (b *consoleBackend) Redrive(ctx context.Context, by console.Actor, id string) (*console.Delivery, error) {
	var d console.Delivery
	return &d, b.call(ctx, b.s.redrive, &by, certs.RoleAdmin, "/", map[string]string{"id": id}, nil, &d)
}

// itemName is the active catalog's name of an item.
func (b *consoleBackend) itemName(code string) string {
	if c := b.s.Policy.Load().Catalog(); c != nil {
		if it, ok := c.Items[code]; ok {
			return it.Name
		}
	}
	return ""
}

func (b *consoleBackend) SearchExchanges(ctx context.Context, q console.Query) (*console.SearchResult, error) {
	res := &console.SearchResult{}
	if q.Limit <= 0 {
		q.Limit = 50
	}
	if q.CaseNo != "" {
		ex, err := b.s.Store.FindExchange(ctx, q.CaseNo)
		if errors.Is(err, store.ErrNotFound) {
			return res, nil
		}
		if err != nil {
			return nil, err
		}
		res.Rows = append(res.Rows, b.exchangeRow(ex))
		return res, nil
	}
	end, err := b.s.Store.LogSize(ctx)
	if err != nil {
		return nil, err
	}
	if q.Before != 0 && q.Before < end {
		end = q.Before
	}
	var floor uint64
	if !q.From.IsZero() {
		// Every entry below a checkpoint signed at or before From was
		// logged before From.
		cp, err := b.s.Store.CheckpointAtOrBefore(ctx, q.From)
		if err != nil {
			return nil, err
		}
		if cp != nil {
			floor = cp.Size
		}
	}
	for end > floor {
		if res.Scanned >= consoleMaxScan {
			res.Next = end
			return res, nil
		}
		start := floor
		if end-floor > consoleScanPage {
			start = end - consoleScanPage
		}
		es, err := b.s.Store.Entries(ctx, start, end)
		if err != nil {
			return nil, err
		}
		for i := len(es) - 1; i >= 0; i-- {
			e := es[i]
			res.Scanned++
			if !q.To.IsZero() && !e.Time.Before(q.To) || !q.From.IsZero() && e.Time.Before(q.From) {
				continue
			}
			row, ok, err := b.rowOf(ctx, e)
			if err != nil {
				return nil, err
			}
			if !ok || !matches(q, row) {
				continue
			}
			res.Rows = append(res.Rows, row)
			if len(res.Rows) == q.Limit {
				if e.Index > floor {
					res.Next = e.Index
				}
				return res, nil
			}
		}
		end = start
	}
	return res, nil
}

func matches(q console.Query, r console.Row) bool {
	switch {
	case q.Item != "" && r.Item != q.Item:
		return false
	case q.District != "" && r.From != q.District && r.To != q.District:
		return false
	case q.State == "denied":
		return r.Kind == exchangelog.KindDenied
	case q.State != "":
		return r.Kind == exchangelog.KindExchange && (r.State == q.State || r.LastStatus == q.State)
	}
	return true
}

// rowOf is the search row of an exchange or denied entry (ok false for
// other kinds).
func (b *consoleBackend) rowOf(ctx context.Context, e store.StoredEntry) (console.Row, bool, error) {
	switch e.Kind {
	case exchangelog.KindExchange:
		ex, err := b.s.Store.GetExchange(ctx, e.Exchange)
		if err != nil {
			return console.Row{}, false, err
		}
		return b.exchangeRow(ex), true, nil
	case exchangelog.KindDenied:
		d, err := b.denial(e)
		if err != nil {
			return console.Row{}, false, err
		}
		return d.Row, true, nil
	}
	return console.Row{}, false, nil
}

func (b *consoleBackend) exchangeRow(ex *store.Exchange) console.Row {
	return console.Row{
		Kind: exchangelog.KindExchange, LogIndex: ex.LogIndex, Time: ex.CreatedAt.In(chinaTime), ExchangeID: ex.ID,
		From: ex.From, To: ex.To, Item: ex.Item, ItemName: b.itemName(ex.Item),
		SourceCase: ex.SourceCaseNo, TargetCase: ex.TargetCaseNo, State: ex.DeliveryState, LastStatus: ex.LastState,
	}
}

func (b *consoleBackend) denial(e store.StoredEntry) (*console.Denial, error) {
	parsed, err := exchangelog.ParseEntry(e.Bytes)
	if err != nil {
		return nil, err
	}
	de, ok := parsed.(*exchangelog.DeniedEntry)
	if !ok {
		return nil, &console.Problem{Status: http.StatusNotFound, Code: CodeNotFound, Detail: fmt.Sprintf("log entry %d is not a denial", e.Index)}
	}
	d := &console.Denial{
		Row:    console.Row{Kind: exchangelog.KindDenied, LogIndex: e.Index, Time: e.Time.In(chinaTime), ExchangeID: de.Exchange, From: de.From, State: exchangelog.KindDenied, Code: de.Code},
		Fields: de.Fields,
		Entry:  consoleEntry(e),
	}
	if len(de.PolicyInput) > 0 {
		var in policies.Input
		if err := json.Unmarshal(de.PolicyInput, &in); err == nil {
			d.PolicyInput = &in
			d.Item, d.ItemName, d.To = in.BasicCode, b.itemName(in.BasicCode), in.To
		}
	}
	if len(de.Decision) > 0 {
		var dec policies.Decision
		if err := json.Unmarshal(de.Decision, &dec); err == nil {
			d.Decision = &dec
			d.Reasons = dec.Reasons
		}
	}
	return d, nil
}

func consoleEntry(e store.StoredEntry) console.Entry {
	return console.Entry{Index: e.Index, Kind: e.Kind, Time: e.Time.In(chinaTime), Text: string(e.Bytes), LeafHash: hex.EncodeToString(e.LeafHash[:])}
}

func (b *consoleBackend) Denial(ctx context.Context, index uint64) (*console.Denial, error) {
	es, err := b.s.Store.Entries(ctx, index, index+1)
	if err != nil || len(es) != 1 {
		return nil, &console.Problem{Status: http.StatusNotFound, Code: CodeNotFound, Detail: fmt.Sprintf("no log entry %d", index)}
	}
	return b.denial(es[0])
}

func (b *consoleBackend) Exchange(ctx context.Context, id string, withEntries bool) (*console.Exchange, error) {
	ex, sts, dls, err := b.s.Store.ExchangeDetails(ctx, id, "")
	if errors.Is(err, store.ErrNotFound) {
		return nil, &console.Problem{Status: http.StatusNotFound, Code: CodeNotFound, Detail: "no such exchange"}
	}
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(newExchangeView(ex, sts, dls, b.s.Partners))
	if err != nil {
		return nil, err
	}
	var out console.Exchange
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, err
	}
	out.ItemName = b.itemName(ex.Item)
	if len(ex.Decision) > 0 {
		var d policies.Decision
		if err := json.Unmarshal(ex.Decision, &d); err == nil {
			if d.Revision == "" {
				d.Revision = ex.Revision
			}
			out.Decision = &d
		}
	}
	es, err := b.s.Store.EntriesOfExchange(ctx, id)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(es, func(x, y store.StoredEntry) int { return cmp.Compare(x.Index, y.Index) })
	for _, e := range es {
		out.Timeline = append(out.Timeline, timelineEvent(e))
		if withEntries {
			out.Entries = append(out.Entries, consoleEntry(e))
		}
	}
	return &out, nil
}

// timelineEvent says what one log entry of an exchange did.
func timelineEvent(e store.StoredEntry) console.Event {
	ev := console.Event{Time: e.Time.In(chinaTime), Kind: e.Kind, LogIndex: e.Index, HasIndex: true}
	parsed, err := exchangelog.ParseEntry(e.Bytes)
	if err != nil {
		return ev
	}
	switch x := parsed.(type) {
	case *exchangelog.DeliveredEntry:
		ev.To, ev.Detail = x.To, x.PartnerCase
	case *exchangelog.RefusedByPartnerEntry:
		ev.To, ev.Detail = x.To, x.Reason
	case *exchangelog.StatusEntry:
		ev.State = x.State
	case *exchangelog.DeadEntry:
		ev.To, ev.Detail = x.To, x.LastError
	case *exchangelog.DeniedEntry:
		ev.Detail = x.Code
	}
	return ev
}

// latest is the latest signed checkpoint, opened (its signature checked)
// with the log's certificates.
func (b *consoleBackend) latest(ctx context.Context) (exchangelog.Checkpoint, []byte, *certs.Certificate, error) {
	if err := b.s.Log.Sync(ctx); err != nil {
		return exchangelog.Checkpoint{}, nil, nil, err
	}
	note := b.s.Log.Checkpoint()
	if note == nil {
		return exchangelog.Checkpoint{}, nil, nil, &console.Problem{Status: http.StatusConflict, Code: CodeNotFound, Detail: "no checkpoint has been signed yet"}
	}
	cp, cert, err := exchangelog.OpenCheckpoint(note, b.s.Log.Origin(), b.s.Log.LogCertificates())
	return cp, note, cert, err
}

func (b *consoleBackend) Inclusion(ctx context.Context, index uint64) (*console.Inclusion, error) {
	cp, note, _, err := b.latest(ctx)
	if err != nil {
		return nil, err
	}
	if index >= cp.Size {
		return nil, &console.Problem{Status: http.StatusConflict, Code: CodeNotFound, Detail: fmt.Sprintf("entry %d is not yet in a signed checkpoint (size %d); try again in a moment", index, cp.Size)}
	}
	es, err := b.s.Store.Entries(ctx, index, index+1)
	if err != nil || len(es) != 1 {
		return nil, fmt.Errorf("entry %d: %w", index, err)
	}
	p, err := b.s.Log.InclusionProof(ctx, index, cp.Size)
	if err != nil {
		return nil, consoleError(proofError(err))
	}
	return &console.Inclusion{Index: index, Entry: es[0].Bytes, Checkpoint: string(note), Size: cp.Size, Hashes: p.Hashes}, nil
}

func (b *consoleBackend) LogOverview(ctx context.Context, since time.Time) (*console.LogOverview, error) {
	ov := &console.LogOverview{Origin: b.s.Log.Origin()}
	cp, note, cert, err := b.latest(ctx)
	var p *console.Problem
	switch {
	case errors.As(err, &p):
		cert = b.s.LogKey.Certificate()
	case err != nil:
		return nil, err
	default:
		ov.Size, ov.Root, ov.Note = cp.Size, encodeRoot(cp.Root), string(note)
		if _, at, ok := b.s.Log.LatestCheckpoint(); ok {
			ov.SignedAt = at.In(chinaTime)
		}
	}
	ov.SignerName, ov.SignerKey, ov.NotAfter = cert.Subject.String(), certs.KeyID(cert), cert.NotAfter.In(chinaTime)

	start := uint64(0)
	if c, err := b.s.Store.CheckpointAtOrBefore(ctx, since); err != nil {
		return nil, err
	} else if c != nil {
		start = c.Size
	}
	size, err := b.s.Store.LogSize(ctx)
	if err != nil {
		return nil, err
	}
	if size-start > consoleMaxHourly {
		start = size - consoleMaxHourly
	}
	hours := map[time.Time]*console.HourCount{}
	for at := start; at < size; at += 1000 {
		es, err := b.s.Store.Entries(ctx, at, min(at+1000, size))
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			if e.Time.Before(since) {
				continue
			}
			h := e.Time.In(chinaTime).Truncate(time.Hour)
			hc := hours[h]
			if hc == nil {
				hc = &console.HourCount{Hour: h, ByKind: map[string]int{}}
				hours[h] = hc
			}
			hc.Total++
			hc.ByKind[e.Kind]++
		}
	}
	for _, hc := range hours {
		ov.Hours = append(ov.Hours, *hc)
	}
	slices.SortFunc(ov.Hours, func(x, y console.HourCount) int { return x.Hour.Compare(y.Hour) })
	return ov, nil
}

func encodeRoot(root [exchangelog.HashSize]byte) string {
	return base64.StdEncoding.EncodeToString(root[:])
}

func (b *consoleBackend) Export(ctx context.Context, w io.Writer, from, to time.Time) error {
	if err := b.s.Log.Sync(ctx); err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := b.s.Log.Export(ctx, &buf, from, to, exchangelog.CertsFromTrustStore(b.s.Trust)); err != nil {
		return consoleError(proofError(err))
	}
	_, err := w.Write(buf.Bytes())
	return err
}
