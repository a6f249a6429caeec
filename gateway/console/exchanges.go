package console

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// searchStates are the states the search form offers: delivery states,
// the case states of table C, and denials.
var searchStates = []string{
	"denied", "queued", "delivering", "delivered", "retrying", "refused", "dead",
	"RECEIVED", "ACCEPTED", "IN_REVIEW", "SUPPLEMENT_REQUESTED", "SUSPENDED", "APPROVED", "DENIED", "NOT_ACCEPTED", "WITHDRAWN",
}

const pageSize = 50

type itemOption struct{ Code, Name string }

func (c *Console) exchanges(w http.ResponseWriter, r *http.Request, x *session) error {
	qs := r.URL.Query()
	q := Query{
		CaseNo:   strings.TrimSpace(qs.Get("case")),
		Item:     qs.Get("item"),
		District: qs.Get("district"),
		State:    qs.Get("state"),
		Limit:    pageSize,
	}
	data := map[string]any{"Query": q, "FromText": qs.Get("from"), "ToText": qs.Get("to"), "States": searchStates}
	var bad string
	if s := qs.Get("from"); s != "" {
		t, err := time.ParseInLocation("2006-01-02", s, cst)
		if err != nil {
			bad = "ex.badDate"
		}
		q.From = t
	}
	if s := qs.Get("to"); s != "" {
		t, err := time.ParseInLocation("2006-01-02", s, cst)
		if err != nil {
			bad = "ex.badDate"
		}
		q.To = t.AddDate(0, 0, 1) // the whole day
	}
	if s := qs.Get("before"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			bad = "ex.badDate"
		}
		q.Before = n
	}
	pol, err := c.o.Backend.ActivePolicy(r.Context())
	if err != nil {
		return err
	}
	var items []itemOption
	districts := map[string]bool{}
	if pol.Catalog != nil {
		for code, it := range pol.Catalog.Items {
			items = append(items, itemOption{code, it.Name})
			for _, d := range it.Directions {
				for _, div := range d {
					districts[div] = true
				}
			}
		}
	}
	slices.SortFunc(items, func(a, b itemOption) int { return strings.Compare(a.Code, b.Code) })
	data["Items"], data["Districts"] = items, sortedKeys(districts)
	v := c.view(r, x, "ex.title", "exchanges", data)
	v.catalog = pol.Catalog
	if bad != "" {
		data["Error"] = bad
		c.render(w, r, http.StatusBadRequest, "exchanges", v)
		return nil
	}
	res, err := c.o.Backend.SearchExchanges(r.Context(), q)
	if err != nil {
		return err
	}
	if res.Next != 0 {
		next := url.Values{}
		for k, vs := range qs {
			next[k] = vs
		}
		next.Set("before", strconv.FormatUint(res.Next, 10))
		data["NextURL"] = "/console/exchanges?" + next.Encode()
	}
	data["Result"] = res
	c.render(w, r, http.StatusOK, "exchanges", v)
	return nil
}

func (c *Console) exchange(w http.ResponseWriter, r *http.Request, x *session) error {
	ex, err := c.o.Backend.Exchange(r.Context(), r.PathValue("id"), x.actor.Identity.Role == "auditor")
	if err != nil {
		return err
	}
	v := c.view(r, x, "xc.title", "exchanges", map[string]any{"Exchange": ex})
	c.render(w, r, http.StatusOK, "exchange", v)
	return nil
}

func (c *Console) denial(w http.ResponseWriter, r *http.Request, x *session) error {
	n, err := strconv.ParseUint(r.PathValue("index"), 10, 64)
	if err != nil {
		return &Problem{Status: http.StatusNotFound, Code: "not_found"}
	}
	d, err := c.o.Backend.Denial(r.Context(), n)
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "denial", c.view(r, x, "dn.title", "exchanges", d))
	return nil
}
