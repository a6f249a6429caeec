package console

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/policies"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// pageNames are the templates with a "content" block.
var pageNames = []string{"login", "error", "exchanges", "exchange", "denial", "log", "policy", "draft", "deliveries"}

// pairOf carries two values into a nested template.
type pairOf struct{ A, B any }

var funcs = template.FuncMap{
	"short": func(s string) string {
		if len(s) > 12 {
			return s[:12] + "…"
		}
		return s
	},
	"pair": func(a, b any) pairOf { return pairOf{a, b} },
	"list": func(xs ...any) []any { return xs },
}

func parseTemplates() (map[string]*template.Template, error) {
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS,
			"templates/layout.html", "templates/partials.html", "templates/catalog.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

func assets() http.Handler {
	sub, err := fs.Sub(assetFS, "assets")
	if err != nil {
		panic(err)
	}
	files := http.FileServerFS(sub)
	return http.StripPrefix("/console/assets/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "private, max-age=300")
		files.ServeHTTP(w, r)
	}))
}

// sessionView is what templates see of the session.
type sessionView struct {
	Role    certs.Role
	KeyID   string
	Name    string
	CSRF    string
	Expires time.Time
}

// view is the data of every page; its methods are the templates' words.
type view struct {
	Lang    string
	Title   string // message key
	Nav     string
	Path    string
	Session *sessionView
	Flash   []flash
	Data    any
	catalog *policies.Catalog
}

// flash is a one-time message with its arguments.
type flash struct {
	Key  string
	Args []any
}

// T translates a message key, formatting args into it.
func (v *view) T(key string, args ...any) string { return translate(v.Lang, key, args...) }

// Tf translates a flash.
func (v *view) Tf(f flash) string { return translate(v.Lang, f.Key, f.Args...) }

// IsAdmin reports whether the session is an administrator's.
func (v *view) IsAdmin() bool { return v.Session != nil && v.Session.Role == certs.RoleAdmin }

// IsAuditor reports whether the session is an auditor's.
func (v *view) IsAuditor() bool { return v.Session != nil && v.Session.Role == certs.RoleAuditor }

// Time formats t in China time.
func (v *view) Time(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.In(cst).Format("2006-01-02 15:04:05")
}

// Clock formats t as a time of day in China time.
func (v *view) Clock(t time.Time) string { return t.In(cst).Format("15:04:05") }

// RoleName names a role.
func (v *view) RoleName(r certs.Role) string { return v.T("role." + string(r)) }

// District names a division code.
func (v *view) District(code string) string {
	if code == "" {
		return "—"
	}
	if k := "district." + code; hasMessage(k) {
		return v.T(k)
	}
	return code
}

// Direction names a [from, to] pair of division codes.
func (v *view) Direction(d []string) string {
	if len(d) != 2 {
		return strings.Join(d, " → ")
	}
	return v.District(d[0]) + " → " + v.District(d[1])
}

func (v *view) named(prefix, code string) string {
	if code == "" {
		return "—"
	}
	if k := prefix + code; hasMessage(k) {
		return v.T(k)
	}
	return code
}

// ModeName names a handling mode.
func (v *view) ModeName(m string) string { return v.named("mode.", m) }

// StateName names a delivery state or a case state.
func (v *view) StateName(s string) string { return v.named("state.", s) }

// StatusName names a case state (Liwan's names, table C).
func (v *view) StatusName(s string) string { return v.named("state.", s) }

// KindName names a log entry kind.
func (v *view) KindName(k string) string { return v.named("kind.", k) }

// ProblemName names a problem code.
func (v *view) ProblemName(c string) string { return v.named("problem.", c) }

// ChannelName names an intake channel.
func (v *view) ChannelName(c string) string { return v.named("channel.", c) }

// ApplicantName names an applicant kind.
func (v *view) ApplicantName(k string) string { return v.named("applicant.", k) }

// ItemName names an item by the active catalog.
func (v *view) ItemName(code string) string {
	if v.catalog != nil {
		if it, ok := v.catalog.Items[code]; ok {
			return it.Name
		}
	}
	return code
}

// EventName says what a timeline event was.
func (v *view) EventName(e Event) string {
	switch e.Kind {
	case "exchange":
		return v.T("ev.exchange")
	case "delivered":
		return v.T("ev.delivered", v.District(e.To))
	case "refused_by_partner":
		return v.T("ev.refused", v.District(e.To))
	case "status":
		return v.T("ev.status", v.StatusName(e.State))
	case "dead":
		return v.T("ev.dead", v.District(e.To))
	case "redriven":
		return v.T("ev.redriven")
	case "denied":
		return v.T("ev.denied")
	}
	return v.KindName(e.Kind)
}

// Effective is an item's effective period.
func (v *view) Effective(from, until *string) string {
	switch {
	case from == nil && until == nil:
		return v.T("cat.always")
	case until == nil:
		return v.T("cat.from", *from)
	case from == nil:
		return v.T("cat.until", *until)
	}
	return v.T("cat.between", *from, *until)
}

// ExchangeOf is the exchange id of a delivery id ("<exchange>" or
// "<exchange>.<n>").
func (v *view) ExchangeOf(deliveryID string) string {
	id, _, _ := strings.Cut(deliveryID, ".")
	return id
}

var cst = time.FixedZone("CST", 8*3600)

// catalogRow is one item of a catalog table.
type catalogRow struct {
	Code       string
	Item       policies.Item
	Department string
	Materials  []struct{ Code, Name string }
	// Days are the promised working days by owning division.
	Days []struct {
		Division string
		Days     int
	}
}

func catalogRows(c *policies.Catalog) []catalogRow {
	if c == nil {
		return nil
	}
	var rows []catalogRow
	for code, it := range c.Items {
		r := catalogRow{Code: code, Item: it, Department: it.Department}
		if d, ok := c.Departments[it.Department]; ok {
			r.Department = d.Name
		}
		for _, m := range sortedKeys(it.RequiredMaterials) {
			r.Materials = append(r.Materials, struct{ Code, Name string }{m, it.RequiredMaterials[m]})
		}
		for _, m := range sortedKeys(it.PromisedDays) {
			r.Days = append(r.Days, struct {
				Division string
				Days     int
			}{m, it.PromisedDays[m]})
		}
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b catalogRow) int { return strings.Compare(a.Code, b.Code) })
	return rows
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// render executes a page into a buffer first, so a template error becomes
// a clean 500 instead of half a page.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, v *view) {
	var buf bytes.Buffer
	if err := c.tmpl[name].ExecuteTemplate(&buf, "layout", v); err != nil {
		c.o.Logger.ErrorContext(r.Context(), "console template", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
