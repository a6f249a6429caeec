package console

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/tongban/tongban/policies"
)

func (c *Console) policy(w http.ResponseWriter, r *http.Request, x *session) error {
	ctx := r.Context()
	pol, err := c.o.Backend.ActivePolicy(ctx)
	if err != nil {
		return err
	}
	hist, err := c.o.Backend.PolicyHistory(ctx)
	if err != nil {
		return err
	}
	data := map[string]any{"Policy": pol, "History": hist}
	v := c.view(r, x, "pol.title", "policy", data)
	v.catalog = pol.Catalog
	data["Items"] = catalogRows(pol.Catalog)
	c.render(w, r, http.StatusOK, "policy", v)
	return nil
}

func (c *Console) upload(w http.ResponseWriter, r *http.Request, x *session) error {
	f, _, err := r.FormFile("bundle")
	if err != nil {
		return errorf(http.StatusBadRequest, "malformed", "choose a bundle .tar to upload")
	}
	defer f.Close()
	tar, err := io.ReadAll(f)
	if err != nil {
		return errorf(http.StatusBadRequest, "malformed", "the upload could not be read")
	}
	d, err := c.o.Backend.UploadDraft(r.Context(), x.actor, tar)
	if err != nil {
		return err
	}
	return c.flashTo(w, r, x, "/console/policy/drafts/"+url.PathEscape(d.ID), "flash.uploaded")
}

func (c *Console) draftPage(w http.ResponseWriter, r *http.Request, x *session, status int, d *Draft, sim *Simulation) error {
	pol, err := c.o.Backend.ActivePolicy(r.Context())
	if err != nil {
		return err
	}
	data := map[string]any{"Draft": d, "Simulation": sim}
	v := c.view(r, x, "dr.title", "policy", data)
	v.catalog = pol.Catalog
	data["Changes"] = catalogChanges(v, pol.Catalog, d.Catalog)
	c.render(w, r, status, "draft", v)
	return nil
}

func (c *Console) draft(w http.ResponseWriter, r *http.Request, x *session) error {
	d, err := c.o.Backend.Draft(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return c.draftPage(w, r, x, http.StatusOK, d, nil)
}

func (c *Console) validate(w http.ResponseWriter, r *http.Request, x *session) error {
	id := r.PathValue("id")
	rep, err := c.o.Backend.ValidateDraft(r.Context(), x.actor, id)
	if err != nil {
		return err
	}
	key := "flash.valid"
	if !rep.OK {
		key = "flash.invalid"
	}
	return c.flashTo(w, r, x, "/console/policy/drafts/"+url.PathEscape(id), key)
}

// simulate answers with the draft page and the simulation on it: the
// result is not stored, so this POST renders instead of redirecting.
func (c *Console) simulate(w http.ResponseWriter, r *http.Request, x *session) error {
	id := r.PathValue("id")
	sim, err := c.o.Backend.SimulateDraft(r.Context(), x.actor, id)
	if err != nil {
		return err
	}
	d, err := c.o.Backend.Draft(r.Context(), id)
	if err != nil {
		return err
	}
	return c.draftPage(w, r, x, http.StatusOK, d, sim)
}

func (c *Console) activate(w http.ResponseWriter, r *http.Request, x *session) error {
	a, err := c.o.Backend.ActivateDraft(r.Context(), x.actor, r.PathValue("id"))
	if err != nil {
		return err
	}
	return c.flashTo(w, r, x, "/console/policy", "flash.activated", shortRev(a.Revision), a.LogIndex)
}

func (c *Console) rollback(w http.ResponseWriter, r *http.Request, x *session) error {
	a, err := c.o.Backend.Rollback(r.Context(), x.actor, r.PathValue("revision"))
	if err != nil {
		return err
	}
	return c.flashTo(w, r, x, "/console/policy", "flash.rolledBack", shortRev(a.Revision), a.LogIndex)
}

func (c *Console) deliveries(w http.ResponseWriter, r *http.Request, x *session) error {
	state := r.URL.Query().Get("state")
	if state == "" {
		state = "dead"
	}
	tabs := []string{"dead", "retrying", "queued", "delivered", "refused"}
	found := false
	for _, t := range tabs {
		found = found || t == state
	}
	if !found {
		return errorf(http.StatusBadRequest, "malformed", "unknown state %q", state)
	}
	ds, err := c.o.Backend.Deliveries(r.Context(), state)
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "deliveries", c.view(r, x, "dl.title", "deliveries", map[string]any{"State": state, "Tabs": tabs, "Deliveries": ds}))
	return nil
}

func (c *Console) redrive(w http.ResponseWriter, r *http.Request, x *session) error {
	d, err := c.o.Backend.Redrive(r.Context(), x.actor, r.PathValue("id"))
	if err != nil {
		var p *Problem
		if errors.As(err, &p) && p.Status == http.StatusConflict {
			return c.flashTo(w, r, x, "/console/deliveries?state=dead", "flash.notDead")
		}
		return err
	}
	return c.flashTo(w, r, x, "/console/deliveries?state=dead", "flash.redriven", d.ID)
}

func shortRev(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

// catalogChange is one difference between the active catalog and a draft's.
type catalogChange struct {
	Code, Name, Field, Before, After string
}

// catalogChanges lists, item by item, what the draft's catalog changes,
// in words an administrator reads without JSON.
func catalogChanges(v *view, active, draft *policies.Catalog) []catalogChange {
	if active == nil || draft == nil {
		return nil
	}
	codes := map[string]bool{}
	for k := range active.Items {
		codes[k] = true
	}
	for k := range draft.Items {
		codes[k] = true
	}
	var out []catalogChange
	for _, code := range sortedKeys(codes) {
		a, inA := active.Items[code]
		d, inD := draft.Items[code]
		name := d.Name
		if !inD {
			name = a.Name
		}
		add := func(field, before, after string) {
			if before != after {
				out = append(out, catalogChange{Code: code, Name: name, Field: field, Before: before, After: after})
			}
		}
		switch {
		case !inA:
			add("dr.f.item", "—", v.T("dr.added"))
			continue
		case !inD:
			add("dr.f.item", v.T("dr.present"), v.T("dr.removed"))
			continue
		}
		yes := func(b bool) string {
			if b {
				return v.T("cat.yes")
			}
			return v.T("cat.no")
		}
		add("dr.f.name", a.Name, d.Name)
		add("cat.cross", yes(a.CrossDistrict), yes(d.CrossDistrict))
		add("cat.modes", words(a.Modes, v.ModeName), words(d.Modes, v.ModeName))
		add("cat.applicants", words(a.ApplicantKinds, v.ApplicantName), words(d.ApplicantKinds, v.ApplicantName))
		dirs := func(ds [][]string) string {
			var s []string
			for _, x := range ds {
				s = append(s, v.Direction(x))
			}
			return orDash(strings.Join(s, "；"))
		}
		add("cat.directions", dirs(a.Directions), dirs(d.Directions))
		kv := func(m map[string]string) string {
			var s []string
			for _, k := range sortedKeys(m) {
				s = append(s, k+" "+m[k])
			}
			return orDash(strings.Join(s, "；"))
		}
		add("cat.materials", kv(a.RequiredMaterials), kv(d.RequiredMaterials))
		days := func(m map[string]int) string {
			var s []string
			for _, k := range sortedKeys(m) {
				s = append(s, v.District(k)+"："+v.T("xc.days", m[k]))
			}
			return orDash(strings.Join(s, "；"))
		}
		add("cat.days", days(a.PromisedDays), days(d.PromisedDays))
		add("cat.effective", v.Effective(a.EffectiveFrom, a.EffectiveUntil), v.Effective(d.EffectiveFrom, d.EffectiveUntil))
	}
	return out
}

func words(xs []string, name func(string) string) string {
	var s []string
	for _, x := range xs {
		s = append(s, name(x))
	}
	return orDash(strings.Join(s, "、"))
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}
