package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"

	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/gateway/console"
	"github.com/tongban/tongban/gateway/console/consoletest"
	"github.com/tongban/tongban/gateway/exchangelog"
)

// One gateway, seeded once, for the whole file: starting and seeding takes
// a few seconds, so it starts only when a test needs it (not for the fuzz
// target's workers).
var (
	env     *consoletest.Env
	seed    *consoletest.Seeded
	envOnce sync.Once
	envErr  error
	envDir  string
)

func needEnv(tb testing.TB) {
	tb.Helper()
	envOnce.Do(func() {
		if envDir, envErr = os.MkdirTemp("", "console-test-"); envErr != nil {
			return
		}
		ctx := context.Background()
		if env, envErr = consoletest.Start(ctx, envDir, nil); envErr != nil {
			return
		}
		seed, envErr = env.Seed(ctx)
	})
	if envErr != nil {
		tb.Fatal(envErr)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if env != nil {
		env.Close()
	}
	if envDir != "" {
		_ = os.RemoveAll(envDir)
	}
	os.Exit(code)
}

// browser is a cookie-keeping client that does not follow redirects.
type browser struct {
	t   testing.TB
	c   *http.Client
	jar *cookiejar.Jar
}

func newBrowser(t testing.TB) *browser {
	needEnv(t)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Transport: env.Client.Transport, Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &browser{t: t, c: c, jar: jar}
}

type page struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{resp.StatusCode, resp.Header, string(body)}
}

func (b *browser) get(path string) page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, abs(path), nil)
	return b.do(req)
}

// post sends a form as a same-origin browser would (Origin and
// Sec-Fetch-Site).
func (b *browser) post(path string, form url.Values) page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, abs(path), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", env.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return b.do(req)
}

func abs(path string) string {
	if strings.HasPrefix(path, "https://") {
		return path
	}
	return env.URL + path
}

var (
	challengeRE = regexp.MustCompile(`data-challenge="([A-Z2-7-]+)"`)
	csrfRE      = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
)

// signIn signs in as signer and returns the browser and its CSRF token.
func signIn(t testing.TB, signer *certs.Signer) (*browser, string) {
	t.Helper()
	b := newBrowser(t)
	p := b.get("/console/login")
	m := challengeRE.FindStringSubmatch(p.body)
	if p.status != http.StatusOK || m == nil {
		t.Fatalf("login page: %d, no challenge", p.status)
	}
	link, err := env.SignIn(context.Background(), m[1], signer)
	if err != nil {
		t.Fatal(err)
	}
	p = b.get(link)
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/console/exchanges" {
		t.Fatalf("link: %d → %q", p.status, p.header.Get("Location"))
	}
	p = b.get("/console/exchanges")
	tok := csrfRE.FindStringSubmatch(p.body)
	if p.status != http.StatusOK || tok == nil {
		t.Fatalf("after sign-in: %d, no CSRF token", p.status)
	}
	return b, tok[1]
}

func cookieOf(t *testing.T, h http.Header, name string) *http.Cookie {
	t.Helper()
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no Set-Cookie %s in %v", name, h.Values("Set-Cookie"))
	return nil
}

func TestSignInCookiesAndOneTimeLink(t *testing.T) {
	b := newBrowser(t)
	p := b.get("/console/login")
	signinCookie := cookieOf(t, p.header, "__Host-tongban-signin")
	if !signinCookie.HttpOnly || !signinCookie.Secure || signinCookie.SameSite != http.SameSiteStrictMode || signinCookie.Path != "/" {
		t.Errorf("sign-in cookie flags: %+v", signinCookie)
	}
	for _, h := range []string{"Content-Security-Policy", "X-Frame-Options", "Referrer-Policy"} {
		if p.header.Get(h) == "" {
			t.Errorf("no %s header", h)
		}
	}
	code := challengeRE.FindStringSubmatch(p.body)[1]
	link, err := env.SignIn(context.Background(), code, env.PKI.Auditor)
	if err != nil {
		t.Fatal(err)
	}
	// The challenge is signed once.
	if _, err := env.SignIn(context.Background(), code, env.PKI.Auditor); !errors.Is(err, consoletest.ErrRefused) {
		t.Errorf("second signature of one challenge: %v", err)
	}
	// Another browser (without the sign-in cookie) cannot use the link.
	if p := newBrowser(t).get(link); p.status != http.StatusBadRequest {
		t.Errorf("link in another browser: %d", p.status)
	}
	p = b.get(link)
	if p.status != http.StatusSeeOther {
		t.Fatalf("link: %d", p.status)
	}
	sc := cookieOf(t, p.header, "__Host-tongban-console")
	if !sc.HttpOnly || !sc.Secure || sc.SameSite != http.SameSiteStrictMode || sc.MaxAge <= 0 || sc.MaxAge > 3600 {
		t.Errorf("session cookie flags: %+v", sc)
	}
	if p := b.get(link); p.status != http.StatusBadRequest {
		t.Errorf("second use of the link: %d", p.status)
	}
	if p := b.get("/console/log"); p.status != http.StatusOK || !strings.Contains(p.body, "最新检查点") {
		t.Errorf("auditor's log page: %d", p.status)
	}
}

func TestPartnerCannotSignIn(t *testing.T) {
	b := newBrowser(t)
	code := challengeRE.FindStringSubmatch(b.get("/console/login").body)[1]
	for name, s := range map[string]*certs.Signer{"nanhai": env.PKI.Nanhai, "liwan": env.PKI.Liwan, "gateway": env.PKI.Gateway} {
		_, err := env.SignIn(context.Background(), code, s)
		if !errors.Is(err, consoletest.ErrRefused) || !strings.Contains(err.Error(), "403") {
			t.Errorf("%s key: %v", name, err)
		}
	}
	// An unsigned sign-in is refused before anything else.
	resp, err := env.Client.Post(env.URL+console.SignInPath, "application/json", strings.NewReader(`{"challenge":"`+code+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unsigned sign-in: %d", resp.StatusCode)
	}
	// The challenge is still usable by an administrator.
	if _, err := env.SignIn(context.Background(), code, env.PKI.Admin); err != nil {
		t.Errorf("admin after refused partners: %v", err)
	}
}

func TestNotSignedIn(t *testing.T) {
	b := newBrowser(t)
	for _, path := range []string{"/console/", "/console/exchanges", "/console/policy", "/console/log"} {
		if p := b.get(path); p.status != http.StatusSeeOther || p.header.Get("Location") != "/console/login" {
			t.Errorf("GET %s: %d %q", path, p.status, p.header.Get("Location"))
		}
	}
	if p := b.post("/console/policy/rollback/x", url.Values{"csrf": {"x"}}); p.status != http.StatusUnauthorized {
		t.Errorf("POST without session: %d", p.status)
	}
	if p := b.get("/console/api/inclusion/0"); p.status != http.StatusUnauthorized {
		t.Errorf("API without session: %d", p.status)
	}
}

func TestRolesAndCSRF(t *testing.T) {
	aud, audTok := signIn(t, env.PKI.Auditor)
	for _, path := range []string{"/console/policy", "/console/deliveries", "/console/policy/drafts/x"} {
		if p := aud.get(path); p.status != http.StatusForbidden {
			t.Errorf("auditor GET %s: %d", path, p.status)
		}
	}
	for _, path := range []string{"/console/policy/drafts/x/activate", "/console/policy/rollback/x", "/console/deliveries/x/redrive"} {
		if p := aud.post(path, url.Values{"csrf": {audTok}}); p.status != http.StatusForbidden || !strings.Contains(p.body, "无权访问") {
			t.Errorf("auditor POST %s: %d", path, p.status)
		}
	}
	if strings.Contains(aud.get("/console/exchanges").body, `href="/console/policy"`) {
		t.Error("the auditor's menu offers policy")
	}
	adm, tok := signIn(t, env.PKI.Admin)
	if p := adm.get("/console/log"); p.status != http.StatusForbidden {
		t.Errorf("admin GET /console/log: %d", p.status)
	}
	if p := adm.get("/console/api/inclusion/0"); p.status != http.StatusForbidden {
		t.Errorf("admin inclusion API: %d", p.status)
	}
	// Without the token, with another session's token, from another site.
	if p := adm.post("/console/policy/rollback/x", url.Values{}); p.status != http.StatusForbidden || !strings.Contains(p.body, "CSRF") {
		t.Errorf("POST without token: %d", p.status)
	}
	if p := adm.post("/console/policy/rollback/x", url.Values{"csrf": {audTok}}); p.status != http.StatusForbidden {
		t.Errorf("POST with another session's token: %d", p.status)
	}
	req, _ := http.NewRequest(http.MethodPost, env.URL+"/console/policy/rollback/x", strings.NewReader("csrf="+url.QueryEscape(tok)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if p := adm.do(req); p.status != http.StatusForbidden {
		t.Errorf("cross-site POST with the token: %d", p.status)
	}
	// With the token the request reaches the gateway (no such revision).
	if p := adm.post("/console/policy/rollback/x", url.Values{"csrf": {tok}}); p.status != http.StatusNotFound {
		t.Errorf("POST with the token: %d", p.status)
	}
	// Logout ends the session.
	if p := adm.post("/console/logout", url.Values{"csrf": {tok}}); p.status != http.StatusSeeOther {
		t.Errorf("logout: %d", p.status)
	}
	if p := adm.get("/console/exchanges"); p.status != http.StatusSeeOther {
		t.Errorf("after logout: %d", p.status)
	}
}

func TestSearchAndExchangePage(t *testing.T) {
	b, _ := signIn(t, env.PKI.Auditor)
	p := b.get("/console/exchanges?case=" + url.QueryEscape(seed.LiwanCase))
	if p.status != http.StatusOK || !strings.Contains(p.body, seed.NanhaiCase) || !strings.Contains(p.body, "内资有限责任公司设立登记") {
		t.Fatalf("search by Liwan's number: %d", p.status)
	}
	id := regexp.MustCompile(`href="/console/exchanges/([^"]+)"`).FindStringSubmatch(p.body)
	if id == nil {
		t.Fatal("no link to the exchange")
	}
	p = b.get("/console/exchanges/" + id[1])
	for _, want := range []string{seed.NanhaiCase, seed.LiwanCase, "准予跨区办理", "已送达荔湾区", "验证收录", "data-verify-index"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("exchange page lacks %q", want)
		}
	}
	// Filters: the denial, by state; the physician, by item and its status.
	p = b.get("/console/exchanges?state=denied")
	if !strings.Contains(p.body, "户口迁移") || !strings.Contains(p.body, "/console/denials/") {
		t.Errorf("denied filter: %d", p.status)
	}
	p = b.get("/console/exchanges?item=" + consoletest.ItemPhysician + "&state=APPROVED")
	if !strings.Contains(p.body, seed.PhysicianLiwan) || strings.Contains(p.body, seed.NanhaiCase) {
		t.Errorf("item+state filter")
	}
	today := time.Now().In(time.FixedZone("CST", 8*3600)).Format("2006-01-02")
	if p := b.get("/console/exchanges?from=2000-01-01&to=2000-01-02"); strings.Contains(p.body, seed.NanhaiCase) {
		t.Error("date filter kept a case from another day")
	}
	if p := b.get("/console/exchanges?from=" + today + "&to=" + today + "&district=440103"); !strings.Contains(p.body, seed.NanhaiCase) {
		t.Error("date+district filter lost today's case")
	}
	if p := b.get("/console/exchanges?from=yesterday"); p.status != http.StatusBadRequest {
		t.Errorf("bad date: %d", p.status)
	}
	// The physician's page shows the status walk.
	p = b.get("/console/exchanges?case=" + url.QueryEscape(seed.PhysicianNanhai))
	id = regexp.MustCompile(`href="/console/exchanges/([^"]+)"`).FindStringSubmatch(p.body)
	p = b.get("/console/exchanges/" + id[1])
	for _, want := range []string{"窗口受理", "部门受理", "办结（通过）", seed.PhysicianLiwan, seed.PhysicianNanhai} {
		if !strings.Contains(p.body, want) {
			t.Errorf("physician page lacks %q", want)
		}
	}
	if p := b.get("/console/exchanges/nope"); p.status != http.StatusNotFound {
		t.Errorf("unknown exchange: %d", p.status)
	}
}

func TestInclusionAPIAndExport(t *testing.T) {
	b, _ := signIn(t, env.PKI.Auditor)
	var inc console.Inclusion
	for try := 0; ; try++ {
		p := b.get("/console/api/inclusion/1")
		if p.status == http.StatusOK {
			if err := json.Unmarshal([]byte(p.body), &inc); err != nil {
				t.Fatal(err)
			}
			break
		}
		if try > 50 {
			t.Fatalf("inclusion: %d %s", p.status, p.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cp, _, err := exchangelog.OpenCheckpoint([]byte(inc.Checkpoint), env.Server.Log.Origin(), []*certs.Certificate{env.PKI.Log.Certificate()})
	if err != nil || cp.Size != inc.Size {
		t.Fatalf("checkpoint: %v (size %d, proof %d)", err, cp.Size, inc.Size)
	}
	leaf := exchangelog.LeafHash(inc.Entry)
	if err := proof.VerifyInclusion(exchangelog.Hasher, inc.Index, inc.Size, leaf[:], inc.Hashes, cp.Root[:]); err != nil {
		t.Errorf("the proof the browser gets does not verify: %v", err)
	}
	if p := b.get("/console/api/inclusion/999999"); p.status != http.StatusConflict {
		t.Errorf("beyond the checkpoint: %d", p.status)
	}

	p := b.get("/console/log")
	if !strings.Contains(p.body, "<svg") || !strings.Contains(p.body, env.PKI.Log.KeyID()) {
		t.Errorf("log page: no chart or signer")
	}
	from := time.Now().Add(-time.Hour).In(time.FixedZone("CST", 8*3600)).Format("2006-01-02T15:04")
	to := time.Now().Add(time.Minute).In(time.FixedZone("CST", 8*3600)).Format("2006-01-02T15:04")
	p = b.get("/console/log/export?from=" + url.QueryEscape(from) + "&to=" + url.QueryEscape(to))
	if p.status != http.StatusOK || !strings.HasPrefix(p.header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("export: %d %s", p.status, p.body)
	}
	sum, err := exchangelog.VerifyBundle(strings.NewReader(p.body), exchangelog.NewVerifyOptions().WithLogCertificates(env.PKI.Log.Certificate()))
	if err != nil {
		t.Fatalf("export does not verify: %v", err)
	}
	if sum.Entries == 0 {
		t.Error("empty export")
	}
	if p := b.get("/console/log/export?from=x&to=y"); p.status != http.StatusBadRequest {
		t.Errorf("bad period: %d", p.status)
	}
}

// TestPolicyLifecycle uploads a draft that disables an item, validates,
// simulates (both past changes are seen switching to denied), activates,
// and sees the next submission of that item denied; the activation's log
// entry carries the signed sign-in and verifies offline; then rolls back.
func TestPolicyLifecycle(t *testing.T) {
	b, tok := signIn(t, env.PKI.Admin)
	p := b.get("/console/policy")
	if p.status != http.StatusOK || !strings.Contains(p.body, consoletest.ItemCompanyChange) || !strings.Contains(p.body, "异地代收代办") {
		t.Fatalf("policy page: %d", p.status)
	}
	before := regexp.MustCompile(`id="active-revision">([0-9a-f]+)<`).FindStringSubmatch(p.body)[1]

	tar, err := consoletest.DisableItem(consoletest.ItemCompanyChange)
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("csrf", tok)
	fw, _ := mw.CreateFormFile("bundle", "draft.tar")
	_, _ = fw.Write(tar)
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, env.URL+"/console/policy/drafts", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	p = b.do(req)
	draft := p.header.Get("Location")
	if p.status != http.StatusSeeOther || !strings.HasPrefix(draft, "/console/policy/drafts/") {
		t.Fatalf("upload: %d %q %s", p.status, draft, p.body)
	}
	p = b.get(draft)
	if !strings.Contains(p.body, "可跨区") || !strings.Contains(p.body, `class="after">否`) {
		t.Errorf("draft page does not show the catalog change")
	}
	if p := b.post(draft+"/activate", url.Values{"csrf": {tok}}); p.status != http.StatusConflict {
		t.Errorf("activating before validation: %d", p.status)
	}
	if p := b.post(draft+"/validate", url.Values{"csrf": {tok}}); p.status != http.StatusSeeOther {
		t.Fatalf("validate: %d %s", p.status, p.body)
	}
	if p := b.get(draft); !strings.Contains(p.body, "校验通过") {
		t.Fatalf("validation result not shown")
	}
	p = b.post(draft+"/simulate", url.Values{"csrf": {tok}})
	if p.status != http.StatusOK || !strings.Contains(p.body, `id="simulation-changes"`) {
		t.Fatalf("simulate: %d", p.status)
	}
	rows := strings.Count(p.body[strings.Index(p.body, `id="simulation-changes"`):], `class="after">`)
	if rows < len(seed.Changes) || !strings.Contains(p.body, "不属于跨区通办事项") && !strings.Contains(p.body, "不予跨区办理") {
		t.Errorf("simulation shows %d changes, want ≥ %d", rows, len(seed.Changes))
	}
	p = b.post(draft+"/activate", url.Values{"csrf": {tok}})
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/console/policy" {
		t.Fatalf("activate: %d %s", p.status, p.body)
	}
	if p := b.get("/console/policy"); !strings.Contains(p.body, "已启用政策版本") || strings.Contains(p.body, `id="active-revision">`+before+`<`) {
		t.Errorf("activation not shown")
	}
	if _, err := env.Submit(context.Background(), "nanhai", consoletest.ItemCompanyChange, http.StatusForbidden); err != nil {
		t.Errorf("the next company change: %v", err)
	}
	p = b.get("/console/exchanges?state=denied&item=" + consoletest.ItemCompanyChange)
	if !strings.Contains(p.body, "row-denied") {
		t.Errorf("the denial is not listed")
	}

	// The policy_activated entry: by the admin, its request the signed
	// sign-in; an export verifies it (exchange-log.md check 4).
	size, _ := env.Server.Store.LogSize(context.Background())
	es, err := env.Server.Store.Entries(context.Background(), 0, size)
	if err != nil {
		t.Fatal(err)
	}
	var act *exchangelog.PolicyActivatedEntry
	for _, e := range es {
		if e.Kind == exchangelog.KindPolicyActivated {
			x, _ := exchangelog.ParseEntry(e.Bytes)
			act = x.(*exchangelog.PolicyActivatedEntry)
		}
	}
	if act == nil || act.By != env.PKI.Admin.KeyID() || !strings.Contains(act.Request.SignatureBase, `"@target-uri": `+env.URL+"/console/login") {
		t.Fatalf("policy_activated entry: %+v", act)
	}
	time.Sleep(300 * time.Millisecond) // a checkpoint covers it
	var buf bytes.Buffer
	if err := env.Server.Log.Export(context.Background(), &buf, time.Unix(0, 0), time.Now().Add(time.Minute), exchangelog.CertsFromTrustStore(env.Server.Trust)); err != nil {
		t.Fatal(err)
	}
	if _, err := exchangelog.VerifyBundle(&buf, exchangelog.NewVerifyOptions().WithLogCertificates(env.PKI.Log.Certificate())); err != nil {
		t.Errorf("export with a console activation does not verify: %v", err)
	}

	// Roll back to where we were: the item crosses again.
	if p := b.post("/console/policy/rollback/"+before, url.Values{"csrf": {tok}}); p.status != http.StatusSeeOther {
		t.Fatalf("rollback: %d %s", p.status, p.body)
	}
	if _, err := env.Submit(context.Background(), "nanhai", consoletest.ItemCompanyChange, http.StatusAccepted); err != nil {
		t.Errorf("after rollback: %v", err)
	}
}

func TestDeliveriesRedrive(t *testing.T) {
	b, tok := signIn(t, env.PKI.Admin)
	p := b.get("/console/deliveries?state=dead")
	if !strings.Contains(p.body, seed.DeadDelivery) || !strings.Contains(p.body, "重新投递") {
		t.Fatalf("dead delivery not listed")
	}
	p = b.post("/console/deliveries/"+seed.DeadDelivery+"/redrive", url.Values{"csrf": {tok}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("redrive: %d %s", p.status, p.body)
	}
	if p := b.get("/console/deliveries?state=dead"); !strings.Contains(p.body, "已重新排队") {
		t.Error("no confirmation")
	}
	// A second re-drive of a delivery no longer dead is refused politely.
	if p := b.post("/console/deliveries/"+seed.DeadDelivery+"/redrive", url.Values{"csrf": {tok}}); p.status != http.StatusSeeOther {
		t.Errorf("second redrive: %d", p.status)
	}
	if p := b.get("/console/deliveries?state=bogus"); p.status != http.StatusBadRequest {
		t.Errorf("bad state: %d", p.status)
	}
}

func TestLanguage(t *testing.T) {
	b, _ := signIn(t, env.PKI.Auditor)
	p := b.get("/console/lang/en?back=" + url.QueryEscape("/console/log"))
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/console/log" {
		t.Fatalf("switch: %d %q", p.status, p.header.Get("Location"))
	}
	if p := b.get("/console/log"); !strings.Contains(p.body, "Latest checkpoint") || !strings.Contains(p.body, `lang="en"`) {
		t.Error("no English after switching")
	}
	for _, back := range []string{"//evil.example/x", "https://evil.example/console/", "/admin/v1/policy"} {
		if p := b.get("/console/lang/zh?back=" + url.QueryEscape(back)); p.header.Get("Location") != "/console/" {
			t.Errorf("back=%s redirected to %q", back, p.header.Get("Location"))
		}
	}
	if p := b.get("/console/log"); !strings.Contains(p.body, "最新检查点") {
		t.Error("no Chinese after switching back")
	}
}

func TestAssetsEmbedded(t *testing.T) {
	b := newBrowser(t)
	for _, path := range []string{"/console/assets/console.css", "/console/assets/console.js", "/console/assets/vendor/sm3.js"} {
		if p := b.get(path); p.status != http.StatusOK || len(p.body) < 1000 {
			t.Errorf("%s: %d, %d bytes", path, p.status, len(p.body))
		}
	}
}

// Benchmarks: whole requests over HTTPS to the seeded gateway (TLS,
// session, backend, template).

func benchGet(b *testing.B, path string) {
	br, _ := signIn(b, env.PKI.Auditor)
	b.ResetTimer()
	for b.Loop() {
		if p := br.get(path); p.status != http.StatusOK {
			b.Fatalf("%s: %d", path, p.status)
		}
	}
}

func exchangeID(b *testing.B) string {
	needEnv(b)
	v, err := env.Track(context.Background(), seed.PhysicianLiwan)
	if err != nil {
		b.Fatal(err)
	}
	return v.ExchangeID
}

func BenchmarkExchangePage(b *testing.B) { benchGet(b, "/console/exchanges/"+exchangeID(b)) }

func BenchmarkSearchByCaseNo(b *testing.B) {
	benchGet(b, "/console/exchanges?case="+url.QueryEscape(seed.LiwanCase))
}

func BenchmarkSearchLatest(b *testing.B) { benchGet(b, "/console/exchanges") }

func BenchmarkInclusionAPI(b *testing.B) { benchGet(b, "/console/api/inclusion/1") }

func BenchmarkLogPage(b *testing.B) { benchGet(b, "/console/log") }
