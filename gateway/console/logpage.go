package console

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// chartHours is how many hours the log page charts.
const chartHours = 24

func (c *Console) logPage(w http.ResponseWriter, r *http.Request, x *session) error {
	now := c.o.Now().In(cst)
	since := now.Truncate(time.Hour).Add(-(chartHours - 1) * time.Hour)
	ov, err := c.o.Backend.LogOverview(r.Context(), since)
	if err != nil {
		return err
	}
	const layout = "2006-01-02T15:04"
	data := map[string]any{
		"Overview":   ov,
		"Chart":      newChart(ov.Hours, since),
		"ExportFrom": now.Truncate(24*time.Hour).AddDate(0, 0, -7).Format(layout),
		"ExportTo":   now.Add(time.Minute).Format(layout),
	}
	c.render(w, r, http.StatusOK, "log", c.view(r, x, "log.title", "log", data))
	return nil
}

// export streams the export archive of a period as a download.
func (c *Console) export(w http.ResponseWriter, r *http.Request, x *session) error {
	parse := func(name string) (time.Time, error) {
		s := r.URL.Query().Get(name)
		for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339} {
			if t, err := time.ParseInLocation(layout, s, cst); err == nil {
				return t, nil
			}
		}
		return time.Time{}, errorf(http.StatusBadRequest, "malformed", "%s: %q is not a date and time", name, s)
	}
	from, err := parse("from")
	if err != nil {
		return err
	}
	to, err := parse("to")
	if err != nil {
		return err
	}
	if !from.Before(to) {
		return errorf(http.StatusBadRequest, "malformed", "the period must end after it starts")
	}
	// Written to a buffer first: a failure becomes an error page, never a
	// truncated archive.
	var buf bytes.Buffer
	if err := c.o.Backend.Export(r.Context(), &buf, from, to); err != nil {
		return err
	}
	name := fmt.Sprintf("tongban-log-%s-%s.tar", from.Format("20060102T1504"), to.Format("20060102T1504"))
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	_, _ = w.Write(buf.Bytes())
	c.o.Logger.InfoContext(r.Context(), "console export", "from", from, "to", to, "keyid", x.actor.Identity.KeyID)
	return nil
}

// inclusion answers the browser's "verify inclusion" with the entry, the
// latest checkpoint and the proof; the browser does the checking.
func (c *Console) inclusion(w http.ResponseWriter, r *http.Request, _ *session) error {
	n, err := strconv.ParseUint(r.PathValue("index"), 10, 64)
	if err != nil {
		return errorf(http.StatusBadRequest, "malformed", "the index is a non-negative integer")
	}
	inc, err := c.o.Backend.Inclusion(r.Context(), n)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, inc)
	return nil
}

// chart is an SVG bar chart of entries per hour, laid out on the server so
// the page needs no script to show it.
type chart struct {
	Width, Height, Left, Base, Max, Total int
	Bars                                  []bar
}

type bar struct {
	X, Y, W, H, CX int
	Count          int
	Label, Tick    string
}

func newChart(hours []HourCount, since time.Time) *chart {
	counts := make([]int, chartHours)
	for _, h := range hours {
		i := int(h.Hour.Sub(since) / time.Hour)
		if i >= 0 && i < chartHours {
			counts[i] += h.Total
		}
	}
	ch := &chart{Left: 36, Height: 180, Base: 158}
	const step, width = 30, 22
	ch.Width = ch.Left + step*chartHours + 8
	for _, n := range counts {
		ch.Max = max(ch.Max, n)
		ch.Total += n
	}
	top := max(ch.Max, 1)
	for i, n := range counts {
		h := n * (ch.Base - 20) / top
		at := since.Add(time.Duration(i) * time.Hour).In(cst)
		b := bar{X: ch.Left + 6 + i*step, W: width, H: h, Y: ch.Base - h, Count: n, Label: at.Format("01-02 15:00")}
		b.CX = b.X + width/2
		if i%3 == 0 {
			b.Tick = at.Format("15:00")
		}
		ch.Bars = append(ch.Bars, b)
	}
	return ch
}
