package console

import (
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/httpsig"
)

// Body limits: a policy bundle upload, and every other form.
const (
	maxUploadBytes = 10 << 20
	maxFormBytes   = 64 << 10
	maxSignInBytes = 4 << 10
)

// contentSecurityPolicy allows only the console's own scripts and styles
// (no inline script or style anywhere), and no framing.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"

// Console is the web console's HTTP handler, to mount at /console/.
type Console struct {
	o    Options
	s    *sessions
	tmpl map[string]*template.Template
	mux  *http.ServeMux
	cop  *http.CrossOriginProtection
}

// New returns the console. It fails if a template does not parse or a
// required option is missing.
func New(o Options) (*Console, error) {
	if o.Backend == nil {
		return nil, errors.New("console: no Backend")
	}
	base, err := httpsig.NormalizeBaseURL(o.PublicURL)
	if err != nil {
		return nil, err
	}
	o.PublicURL = base
	if o.SessionTTL <= 0 {
		o.SessionTTL = 30 * time.Minute
	}
	if o.ChallengeTTL <= 0 {
		o.ChallengeTTL = 5 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	tmpl, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	c := &Console{o: o, s: newSessions(o.Now, o.SessionTTL, o.ChallengeTTL), tmpl: tmpl, mux: http.NewServeMux(), cop: http.NewCrossOriginProtection()}
	c.routes()
	return c, nil
}

var (
	both     = []certs.Role{certs.RoleAdmin, certs.RoleAuditor}
	admins   = []certs.Role{certs.RoleAdmin}
	auditors = []certs.Role{certs.RoleAuditor}
)

func (c *Console) routes() {
	m := c.mux
	m.Handle("GET /console/assets/", assets())
	m.HandleFunc("GET /console/{$}", c.home)
	m.HandleFunc("GET /console/login", c.loginPage)
	m.HandleFunc("POST /console/login", c.signIn)
	m.HandleFunc("GET /console/login/poll", c.poll)
	m.HandleFunc("GET /console/login/{token}", c.redeem)
	m.HandleFunc("GET /console/lang/{lang}", c.setLang)
	m.Handle("POST /console/logout", c.auth(c.logout, both))

	m.Handle("GET /console/exchanges", c.auth(c.exchanges, both))
	m.Handle("GET /console/exchanges/{id}", c.auth(c.exchange, both))
	m.Handle("GET /console/denials/{index}", c.auth(c.denial, both))

	m.Handle("GET /console/log", c.auth(c.logPage, auditors))
	m.Handle("GET /console/log/export", c.auth(c.export, auditors))
	m.Handle("GET /console/api/inclusion/{index}", c.auth(c.inclusion, auditors))

	m.Handle("GET /console/policy", c.auth(c.policy, admins))
	m.Handle("POST /console/policy/drafts", c.auth(c.upload, admins))
	m.Handle("GET /console/policy/drafts/{id}", c.auth(c.draft, admins))
	m.Handle("POST /console/policy/drafts/{id}/validate", c.auth(c.validate, admins))
	m.Handle("POST /console/policy/drafts/{id}/simulate", c.auth(c.simulate, admins))
	m.Handle("POST /console/policy/drafts/{id}/activate", c.auth(c.activate, admins))
	m.Handle("POST /console/policy/rollback/{revision}", c.auth(c.rollback, admins))

	m.Handle("GET /console/deliveries", c.auth(c.deliveries, admins))
	m.Handle("POST /console/deliveries/{id}/redrive", c.auth(c.redrive, admins))

	m.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, c.current(r), &Problem{Status: http.StatusNotFound, Code: "not_found"})
	})
}

// ServeHTTP serves the console with its security headers.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer") // the one-time link never leaks
	h.Set("Cache-Control", "no-store")
	c.mux.ServeHTTP(w, r)
}

// pageFunc is a signed-in page or action.
type pageFunc func(w http.ResponseWriter, r *http.Request, x *session) error

// auth admits a live session of one of roles; on a POST it also requires a
// same-origin request (net/http's CrossOriginProtection: Sec-Fetch-Site or
// Origin) and the session's CSRF token.
func (c *Console) auth(h pageFunc, roles []certs.Role) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x := c.current(r)
		if x == nil {
			if r.Method == http.MethodGet && !strings.HasPrefix(r.URL.Path, "/console/api/") {
				http.Redirect(w, r, "/console/login", http.StatusSeeOther)
				return
			}
			c.fail(w, r, nil, ErrNotSignedIn)
			return
		}
		if !slices.Contains(roles, x.actor.Identity.Role) {
			c.fail(w, r, x, ErrForbidden)
			return
		}
		if r.Method == http.MethodPost {
			limit := int64(maxFormBytes)
			if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
				limit = maxUploadBytes
			}
			r.Body = http.MaxBytesReader(w, r.Body, limit)
			if err := c.cop.Check(r); err != nil {
				c.fail(w, r, x, ErrCSRF)
				return
			}
			if err := checkCSRF(r, x); err != nil {
				c.fail(w, r, x, err)
				return
			}
		}
		if err := h(w, r, x); err != nil {
			c.fail(w, r, x, err)
		}
	})
}

func (c *Console) current(r *http.Request) *session {
	return c.s.get(cookieValue(r, sessionCookie))
}

func langOf(r *http.Request) string {
	if cookieValue(r, langCookie) == "en" {
		return "en"
	}
	return "zh"
}

func (c *Console) view(r *http.Request, x *session, title, nav string, data any) *view {
	v := &view{Lang: langOf(r), Title: title, Nav: nav, Path: r.URL.RequestURI(), Data: data}
	if x != nil {
		v.Session = &sessionView{Role: x.actor.Identity.Role, KeyID: x.actor.Identity.KeyID, Name: x.actor.Identity.Name, CSRF: x.csrf, Expires: x.expires}
		v.Flash = c.s.takeFlash(x)
	}
	return v
}

// fail shows an error: JSON for the console's API, a page otherwise.
// Internal causes are logged, never shown.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, x *session, err error) {
	p := problemOf(err)
	if p.Status >= 500 {
		c.o.Logger.ErrorContext(r.Context(), "console", "path", r.URL.Path, "err", err)
	}
	if strings.HasPrefix(r.URL.Path, "/console/api/") {
		writeJSON(w, p.Status, map[string]any{"code": p.Code, "detail": p.Detail})
		return
	}
	heading, message := "error.title", "error.generic"
	switch {
	case p.Status == http.StatusUnauthorized:
		heading, message = "error.unauthorized", "error.unauthorizedText"
	case p.Code == "csrf":
		heading, message = "error.forbidden", "error.csrfText"
	case p.Status == http.StatusForbidden:
		heading, message = "error.forbidden", "error.forbiddenText"
	case p.Status == http.StatusNotFound:
		heading, message = "error.notFound", "error.notFoundText"
	case p.Code == "challenge":
		heading, message = "error.link", "error.linkText"
	case p.Status >= 500:
		heading, message = "error.internal", "error.internalText"
	case p.Status >= 400:
		heading, message = "error.rejected", "error.rejectedText"
	}
	detail := p.Detail
	if p.Status >= 500 {
		detail = ""
	}
	c.render(w, r, p.Status, "error", c.view(r, x, heading, "", map[string]string{"Heading": heading, "Message": message, "Detail": detail}))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (c *Console) home(w http.ResponseWriter, r *http.Request) {
	if c.current(r) == nil {
		http.Redirect(w, r, "/console/login", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/console/exchanges", http.StatusSeeOther)
}

// setLang remembers the interface language and goes back to the page.
func (c *Console) setLang(w http.ResponseWriter, r *http.Request) {
	lang := r.PathValue("lang")
	if lang != "en" {
		lang = "zh"
	}
	http.SetCookie(w, &http.Cookie{Name: langCookie, Value: lang, Path: "/console/", MaxAge: 365 * 24 * 3600,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, safeBack(r.URL.Query().Get("back")), http.StatusSeeOther)
}

// safeBack is back if it is a path of the console on this host, else
// /console/: the language switch is no open redirect.
func safeBack(back string) string {
	u, err := url.Parse(back)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" ||
		!strings.HasPrefix(back, "/console/") || strings.ContainsAny(back, "\\\r\n\t") || strings.Contains(back, "/..") {
		return "/console/"
	}
	return back
}

// flashTo queues a message for the session's next page and redirects there
// (POST, redirect, GET).
func (c *Console) flashTo(w http.ResponseWriter, r *http.Request, x *session, to, key string, args ...any) error {
	c.s.mu.Lock()
	x.flash = append(x.flash, flash{Key: key, Args: args})
	c.s.mu.Unlock()
	http.Redirect(w, r, to, http.StatusSeeOther)
	return nil
}
