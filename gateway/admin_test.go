package gateway

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/gateway/exchangelog"
	"github.com/tongban/tongban/gateway/store"
	"github.com/tongban/tongban/httpsig"
	"github.com/tongban/tongban/policies"
	"github.com/tongban/tongban/sim"
)

// adminEnv is a gateway served over real HTTPS on loopback, with both
// simulated districts receiving its deliveries. The districts outlive a
// restart of the gateway (restart), as real partners would.
type adminEnv struct {
	dir    string
	url    string
	pki    *certs.DevPKI
	client *http.Client
	srv    *Server
	nanhai *sim.Partner
	liwan  *sim.Partner
	// endpoints of the simulated districts by division
	endpoints map[string]string
	stop      func()
}

func newAdminEnv(t *testing.T) *adminEnv {
	t.Helper()
	e := &adminEnv{dir: t.TempDir(), endpoints: map[string]string{}}
	certDir := filepath.Join(e.dir, "certs")
	mustDo(t, certs.InitDevPKI(certDir))
	var err error
	e.pki, err = certs.LoadDevPKI(certDir)
	mustDo(t, err)
	pem, err := os.ReadFile(e.pki.TLSCert)
	mustDo(t, err)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no TLS certificate in the dev PKI")
	}
	e.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, p := range []struct {
		dst      **sim.Partner
		division string
		signer   *certs.Signer
	}{{&e.nanhai, adapters.DivisionNanhai, e.pki.Nanhai}, {&e.liwan, adapters.DivisionLiwan, e.pki.Liwan}} {
		hs := httptest.NewUnstartedServer(nil)
		partner, err := sim.New(sim.Options{Division: p.division, Signer: p.signer, Trust: e.pki.TrustStore(),
			PublicURL: "http://" + hs.Listener.Addr().String(), HTTPClient: e.client, Logger: quiet})
		mustDo(t, err)
		hs.Config.Handler = partner
		hs.Start()
		t.Cleanup(hs.Close)
		e.endpoints[p.division] = hs.URL
		*p.dst = partner
	}
	e.start(t)
	t.Cleanup(func() { e.stop() })
	return e
}

// start runs a gateway on the data directory (a new port each time).
func (e *adminEnv) start(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	mustDo(t, err)
	cfg := &Config{Data: e.dir, Listen: ln.Addr().String()}
	cfg.Log.CheckpointInterval = 100 * time.Millisecond
	cfg.Delivery.InitialBackoff = 100 * time.Millisecond
	mustDo(t, cfg.ApplyDefaults())
	for i := range cfg.Partners {
		cfg.Partners[i].Endpoint = e.endpoints[cfg.Partners[i].Division]
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := NewServer(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln) }()
	e.srv, e.url = srv, cfg.PublicURL
	e.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway run: %v", err)
		}
		e.stop = func() {}
	}
}

// restart stops the gateway (graceful shutdown) and starts it again on the
// same data directory.
func (e *adminEnv) restart(t *testing.T) {
	t.Helper()
	e.stop()
	e.start(t)
}

// call sends a request signed by signer and returns the status and body.
func (e *adminEnv) call(t *testing.T, signer *certs.Signer, method, path, contentType string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, nil)
	mustDo(t, err)
	if method == http.MethodPost {
		if contentType == "" {
			contentType = "application/json"
		}
		req.Header.Set("Content-Type", contentType)
	}
	_, err = httpsig.SignRequest(req, body, signer)
	mustDo(t, err)
	resp, err := e.client.Do(req)
	mustDo(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	mustDo(t, err)
	return resp.StatusCode, b
}

// admin calls as the administrator and decodes a want-status answer into v.
func (e *adminEnv) admin(t *testing.T, method, path, contentType string, body []byte, want int, v any) {
	t.Helper()
	status, b := e.call(t, e.pki.Admin, method, path, contentType, body)
	if status != want {
		t.Fatalf("%s %s: HTTP %d, want %d: %s", method, path, status, want, b)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

// push uploads a bundle as a tar and returns the draft.
func (e *adminEnv) push(t *testing.T, b *policies.Bundle) DraftView {
	t.Helper()
	var d DraftView
	e.admin(t, http.MethodPost, "/admin/v1/policy/drafts", "application/x-tar", b.Tar(), http.StatusCreated, &d)
	return d
}

func (e *adminEnv) validate(t *testing.T, id string) policies.Report {
	t.Helper()
	var rep policies.Report
	e.admin(t, http.MethodPost, "/admin/v1/policy/drafts/"+id+"/validate", "", nil, http.StatusOK, &rep)
	return rep
}

func (e *adminEnv) activeRevision(t *testing.T) string {
	t.Helper()
	var v PolicyView
	e.admin(t, http.MethodGet, "/admin/v1/policy", "", nil, http.StatusOK, &v)
	return v.Revision
}

// entries reads the exchange log from start to its end as the auditor.
func (e *adminEnv) entries(t *testing.T, start uint64) [][]byte {
	t.Helper()
	size, err := e.srv.Store.LogSize(context.Background())
	mustDo(t, err)
	status, b := e.call(t, e.pki.Auditor, http.MethodGet, fmt.Sprintf("/audit/v1/entries?start=%d&end=%d", start, size), "", nil)
	if status != http.StatusOK {
		t.Fatalf("entries: HTTP %d: %s", status, b)
	}
	return bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
}

// sendCase submits a case body as p and returns the answer.
func (e *adminEnv) sendCase(t *testing.T, p *sim.Partner, body []byte, want int) *sim.Response {
	t.Helper()
	resp, err := p.SendCase(context.Background(), e.url, body)
	mustDo(t, err)
	if resp.Status != want {
		t.Fatalf("case from %s: HTTP %d, want %d: %s", p.Division(), resp.Status, want, resp.Body)
	}
	return resp
}

func nextCase(t *testing.T, p *sim.Partner) []byte {
	t.Helper()
	body, _, err := p.NextCase(sim.SampleOptions{})
	mustDo(t, err)
	return body
}

// hukouCase is a Nanhai case of 户口迁移, which is not cross-district.
func hukouCase(t *testing.T, p *sim.Partner) []byte {
	t.Helper()
	c, err := p.Codec().DecodeCase(nextCase(t, p))
	mustDo(t, err)
	c.Item = adapters.Item{BasicCode: "000102003000", ImplCode: "11440605MB2C35050F000102003000", Name: "户口迁移"}
	c.Applicant = c.Contact
	c.Applicant.Kind, c.Applicant.Mobile = adapters.Person, ""
	body, err := p.Codec().EncodeCase(c)
	mustDo(t, err)
	return body
}

func mustDo(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// editBundle returns the pilot bundle with each file replaced by edit's
// answer (nil removes it); every edit must change its file.
func editBundle(t *testing.T, edits map[string]func(string) []byte) *policies.Bundle {
	t.Helper()
	files := policies.Pilot().Files()
	for p, edit := range edits {
		out := edit(string(files[p]))
		if out == nil {
			delete(files, p)
			continue
		}
		if bytes.Equal(out, files[p]) {
			t.Fatalf("edit of %s changed nothing", p)
		}
		files[p] = out
	}
	b, err := policies.BundleFromFiles(files)
	mustDo(t, err)
	return b
}

// replace replaces old by new once, and fails the test when old is absent.
func replace(t *testing.T, old, new string) func(string) []byte {
	return func(s string) []byte {
		i := strings.Index(s, old)
		if i < 0 {
			t.Fatalf("%q not found", old)
		}
		return []byte(s[:i] + new + s[i+len(old):])
	}
}

const (
	regoPath = "tongban/crossdistrict.rego"
	testPath = "tongban/crossdistrict_test.rego"
)

// disablePhysician is a valid draft that takes 医师执业注册 (000114001000,
// the item Liwan's sample cases are about) out of cross-district handling,
// with the bundle's Rego test of that item changed to match.
func disablePhysician(t *testing.T) *policies.Bundle {
	return editBundle(t, map[string]func(string) []byte{
		policies.CatalogPath: replace(t, `"name": "医师执业注册",
      "department": "health",
      "cross_district": true,`, `"name": "医师执业注册",
      "department": "health",
      "cross_district": false,`),
		testPath: func(s string) []byte {
			s = string(replace(t, `	d.allow == true
	d.mode == "REMOTE_RECEIPT"
	d.target_impl_code == "11440605MB2C32020N000114001000"
	d.promised_days == 20`, `	codes(d) == ["item_not_cross_district"]`)(s))
			return replace(t, `		"materials": ["M201", "M202", "M203", "M204"],
		"time": "2026-11-27T10:20:00+08:00",
	}
	codes(decide(req)) == ["no_mode_for_channel"]`, `		"materials": ["M201", "M202", "M203", "M204"],
		"time": "2026-11-27T10:20:00+08:00",
	}
	codes(decide(req)) == ["item_not_cross_district"]`)(s)
		},
	})
}

// lineOf is the 1-based line of the first occurrence of needle in s.
func lineOf(t *testing.T, s, needle string) int {
	t.Helper()
	i := strings.Index(s, needle)
	if i < 0 {
		t.Fatalf("%q not found", needle)
	}
	return strings.Count(s[:i], "\n") + 1
}

// TestAdminRefusesBadDrafts: a draft with a syntax error, a failing Rego
// test, no tests at all, or a catalog item that breaks the schema is
// refused, with messages naming file and line; it can be neither simulated
// nor activated.
func TestAdminRefusesBadDrafts(t *testing.T) {
	e := newAdminEnv(t)
	pilot := policies.Pilot().Files()
	rego, catalog := string(pilot[regoPath]), string(pilot[policies.CatalogPath])
	regoLines := strings.Count(rego, "\n")

	cases := []struct {
		name  string
		edits map[string]func(string) []byte
		// want: a problem in file at line (0: any line) whose message
		// contains every one of msg.
		file string
		line int
		msg  []string
	}{
		{
			name:  "syntax error",
			edits: map[string]func(string) []byte{regoPath: func(s string) []byte { return []byte(s + "\nbroken if {\n") }},
			file:  regoPath, line: regoLines + 3, msg: []string{"rego_parse_error"},
		},
		{
			name: "failing test",
			edits: map[string]func(string) []byte{testPath: func(s string) []byte {
				return []byte(s + "\ntest_llc_takes_seven_days if {\n\tdecide(llc_case).promised_days == 7\n}\n")
			}},
			file: testPath, line: strings.Count(string(pilot[testPath]), "\n") + 2, msg: []string{"test_llc_takes_seven_days"},
		},
		{
			name:  "no tests",
			edits: map[string]func(string) []byte{testPath: func(string) []byte { return nil }},
			msg:   []string{"no Rego tests"},
		},
		{
			name:  "basic code of 11 digits",
			edits: map[string]func(string) []byte{policies.CatalogPath: replace(t, `"000141002000": {`, `"00014100200": {`)},
			file:  policies.CatalogPath, line: lineOf(t, catalog, `"000141002000": {`), msg: []string{"00014100200"},
		},
		{
			name:  "unknown mode",
			edits: map[string]func(string) []byte{policies.CatalogPath: replace(t, `"modes": ["JOINT"]`, `"modes": ["BY_PIGEON"]`)},
			file:  policies.CatalogPath, line: lineOf(t, catalog, `"modes": ["JOINT"]`), msg: []string{"000131005000", "modes"},
		},
		{
			name:  "unknown department",
			edits: map[string]func(string) []byte{policies.CatalogPath: replace(t, `"department": "fund"`, `"department": "lottery"`)},
			file:  policies.CatalogPath, line: lineOf(t, catalog, `"department": "fund"`), msg: []string{"lottery"},
		},
		{
			name:  "impossible date",
			edits: map[string]func(string) []byte{policies.CatalogPath: replace(t, `"effective_from": "2020-01-01"`, `"effective_from": "2020-13-01"`)},
			file:  policies.CatalogPath, line: lineOf(t, catalog, `"effective_from": "2020-01-01"`), msg: []string{"effective_from"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := e.push(t, editBundle(t, tc.edits))
			rep := e.validate(t, d.ID)
			if rep.OK {
				t.Fatalf("validation passed: %+v", rep)
			}
			found := slices.ContainsFunc(rep.Problems, func(p policies.Problem) bool {
				if p.File != tc.file || tc.line != 0 && p.Line != tc.line {
					return false
				}
				for _, m := range tc.msg {
					if !strings.Contains(p.Message, m) {
						return false
					}
				}
				return true
			})
			if !found {
				t.Fatalf("no problem at %s:%d mentioning %q among %+v", tc.file, tc.line, tc.msg, rep.Problems)
			}
			// The stored draft carries the report and stays unvalidated.
			var got DraftView
			e.admin(t, http.MethodGet, "/admin/v1/policy/drafts/"+d.ID, "", nil, http.StatusOK, &got)
			if got.Validated || !bytes.Contains(got.Report, []byte(`"ok":false`)) {
				t.Fatalf("draft after a failed validation: %+v", got)
			}
			for _, step := range []string{"simulate", "activate"} {
				status, b := e.call(t, e.pki.Admin, http.MethodPost, "/admin/v1/policy/drafts/"+d.ID+"/"+step, "", nil)
				if status != http.StatusConflict || !bytes.Contains(b, []byte(CodeInvalidTransition)) {
					t.Fatalf("%s of a refused draft: HTTP %d %s", step, status, b)
				}
			}
		})
	}
	if got, want := e.activeRevision(t), policies.Pilot().Revision(); got != want {
		t.Fatalf("active revision %s after refused drafts, want the pilot %s", got, want)
	}
}

// TestAdminUploadForms: a draft is a tar (plain or gzip), or a multipart
// form of files named by their bundle path or of one tar part; it records
// who uploaded it; what is not a bundle, too large, or of another media type
// is refused.
func TestAdminUploadForms(t *testing.T) {
	e := newAdminEnv(t)
	pilot := policies.Pilot()

	form := func(write func(*multipart.Writer)) (string, []byte) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		write(mw)
		mustDo(t, mw.Close())
		return mw.FormDataContentType(), buf.Bytes()
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(pilot.Tar())
	mustDo(t, zw.Close())

	ctFields, byField := form(func(mw *multipart.Writer) {
		for path, content := range pilot.Files() {
			w, err := mw.CreateFormFile(path, filepath.Base(path))
			mustDo(t, err)
			_, _ = w.Write(content)
		}
	})
	ctNames, byFileName := form(func(mw *multipart.Writer) {
		for path, content := range pilot.Files() {
			w, err := mw.CreateFormFile("file", path)
			mustDo(t, err)
			_, _ = w.Write(content)
		}
	})
	ctTar, oneTar := form(func(mw *multipart.Writer) {
		w, err := mw.CreateFormFile("bundle", "policies.tar")
		mustDo(t, err)
		_, _ = w.Write(pilot.Tar())
	})
	for _, tc := range []struct {
		name, contentType string
		body              []byte
	}{
		{"tar", "application/x-tar", pilot.Tar()},
		{"tar.gz", "application/gzip", gz.Bytes()},
		{"form, files by field name", ctFields, byField},
		{"form, files by file name", ctNames, byFileName},
		{"form, one tar part", ctTar, oneTar},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d DraftView
			e.admin(t, http.MethodPost, "/admin/v1/policy/drafts", tc.contentType, tc.body, http.StatusCreated, &d)
			if d.Revision != pilot.Revision() || !slices.Equal(d.Files, pilot.Paths()) {
				t.Fatalf("draft %+v, want revision %s files %v", d, pilot.Revision(), pilot.Paths())
			}
			if d.UploadedBy != e.pki.Admin.KeyID() || time.Since(d.UploadedAt) > time.Minute || d.Validated {
				t.Fatalf("draft %+v: want uploaded just now by %s, not validated", d, e.pki.Admin.KeyID())
			}
		})
	}

	big := pilot.Files()
	big["tongban/big/data.json"] = bytes.Repeat([]byte(" "), maxBundleBytes)
	bigBundle, err := policies.BundleFromFiles(big)
	mustDo(t, err)
	ctBad, outside := form(func(mw *multipart.Writer) {
		w, err := mw.CreateFormFile("file", "notes.txt")
		mustDo(t, err)
		_, _ = w.Write([]byte("hello"))
	})
	ctEmpty, empty := form(func(*multipart.Writer) {})
	for _, tc := range []struct {
		name, contentType string
		body              []byte
		status            int
		code              string
	}{
		{"too large", "application/x-tar", bigBundle.Tar(), http.StatusRequestEntityTooLarge, CodeTooLarge},
		{"not a tar", "application/x-tar", []byte("Rego, trust me"), http.StatusBadRequest, CodeMalformed},
		{"part without a bundle path", ctBad, outside, http.StatusBadRequest, CodeMalformed},
		{"empty form", ctEmpty, empty, http.StatusBadRequest, CodeMalformed},
		{"json", "application/json", []byte(`{}`), http.StatusUnsupportedMediaType, CodeUnsupportedMedia},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, b := e.call(t, e.pki.Admin, http.MethodPost, "/admin/v1/policy/drafts", tc.contentType, tc.body)
			var p struct{ Code, Detail string }
			_ = json.Unmarshal(b, &p)
			if status != tc.status || p.Code != tc.code {
				t.Fatalf("HTTP %d %s, want %d %s", status, b, tc.status, tc.code)
			}
		})
	}
	if status, b := e.call(t, e.pki.Admin, http.MethodGet, "/admin/v1/policy/drafts/nonesuch", "", nil); status != http.StatusNotFound {
		t.Fatalf("unknown draft: HTTP %d %s", status, b)
	}
}

// TestAdminRoutesForbidOtherRoles: a partner or auditor key gets 403 on
// every administrator route.
func TestAdminRoutesForbidOtherRoles(t *testing.T) {
	e := newAdminEnv(t)
	d := e.push(t, policies.Pilot())
	rev := policies.Pilot().Revision()
	routes := []struct{ method, path string }{
		{http.MethodGet, "/admin/v1/policy"},
		{http.MethodPost, "/admin/v1/policy/drafts"},
		{http.MethodGet, "/admin/v1/policy/drafts/" + d.ID},
		{http.MethodPost, "/admin/v1/policy/drafts/" + d.ID + "/validate"},
		{http.MethodPost, "/admin/v1/policy/drafts/" + d.ID + "/simulate"},
		{http.MethodPost, "/admin/v1/policy/drafts/" + d.ID + "/activate"},
		{http.MethodGet, "/admin/v1/policy/history"},
		{http.MethodPost, "/admin/v1/policy/rollback/" + rev},
		{http.MethodGet, "/admin/v1/deliveries?state=dead"},
		{http.MethodPost, "/admin/v1/deliveries/01JD000000000000000000000/retry"},
		{http.MethodGet, "/admin/v1/partners"},
	}
	for _, who := range []struct {
		name   string
		signer *certs.Signer
	}{{"nanhai", e.pki.Nanhai}, {"liwan", e.pki.Liwan}, {"auditor", e.pki.Auditor}} {
		for _, r := range routes {
			t.Run(who.name+" "+r.method+" "+r.path, func(t *testing.T) {
				var body []byte
				ct := ""
				if r.method == http.MethodPost && strings.HasSuffix(r.path, "/drafts") {
					body, ct = policies.Pilot().Tar(), "application/x-tar"
				}
				status, b := e.call(t, who.signer, r.method, r.path, ct, body)
				var p struct{ Code string }
				_ = json.Unmarshal(b, &p)
				if status != http.StatusForbidden || p.Code != CodeForbidden {
					t.Fatalf("HTTP %d %s, want 403 forbidden", status, b)
				}
			})
		}
	}
	var draft DraftView
	e.admin(t, http.MethodGet, "/admin/v1/policy/drafts/"+d.ID, "", nil, http.StatusOK, &draft)
	if draft.Validated || draft.Report != nil {
		t.Fatal("a refused caller's validate request reached the draft")
	}
	if got := e.activeRevision(t); got != policies.Pilot().Revision() {
		t.Fatalf("active revision %s after refused calls", got)
	}
	// And the administrator may call each of them (no 403).
	for _, r := range routes {
		var body []byte
		ct := ""
		if strings.HasSuffix(r.path, "/drafts") {
			body, ct = policies.Pilot().Tar(), "application/x-tar"
		}
		if status, b := e.call(t, e.pki.Admin, r.method, r.path, ct, body); status == http.StatusForbidden {
			t.Errorf("admin %s %s: HTTP 403 %s", r.method, r.path, b)
		}
	}
}

// loadResult is what the load generator saw for one submission.
type loadResult struct {
	revision string
	started  time.Time // before sending
	answered time.Time
	err      error
}

// TestAdminSimulateActivateRollback walks the whole administration of one
// change over real HTTPS: past traffic of three items; a valid draft that
// disables one of them, whose simulation shows exactly that item's past
// cases turning from allow to deny; activation while a goroutine submits
// cases continuously (no request fails, each decision is made by exactly
// one of the two revisions, read from the receipts); the signed
// policy_activated entry; the new decisions; a restart that keeps the
// activated revision; and a rollback that restores the earlier decisions.
func TestAdminSimulateActivateRollback(t *testing.T) {
	e := newAdminEnv(t)
	ctx := context.Background()
	pilot := policies.Pilot().Revision()

	// Past traffic: three company set-ups from Nanhai and two physician
	// registrations from Liwan (allowed), a household move (denied).
	var physician []string
	for range 3 {
		e.sendCase(t, e.nanhai, nextCase(t, e.nanhai), http.StatusAccepted)
	}
	for range 2 {
		physician = append(physician, e.sendCase(t, e.liwan, nextCase(t, e.liwan), http.StatusAccepted).Receipt.ExchangeID)
	}
	e.sendCase(t, e.nanhai, hukouCase(t, e.nanhai), http.StatusForbidden)

	draft := disablePhysician(t)
	d := e.push(t, draft)
	if d.Revision != draft.Revision() {
		t.Fatalf("draft revision %s, want %s", d.Revision, draft.Revision())
	}
	if rep := e.validate(t, d.ID); !rep.OK || rep.Tests.Passed == 0 {
		t.Fatalf("validation of a valid draft: %+v", rep)
	}

	var sim SimulationReport
	e.admin(t, http.MethodPost, "/admin/v1/policy/drafts/"+d.ID+"/simulate", "", nil, http.StatusOK, &sim)
	if sim.Evaluated != 6 || sim.Changed != 2 || sim.AllowToDeny != 2 || sim.DenyToAllow != 0 || sim.Other != 0 || len(sim.Changes) != 2 {
		t.Fatalf("simulation counts: %+v", sim)
	}
	var changed []string
	for _, c := range sim.Changes {
		changed = append(changed, c.Exchange)
		if c.Input.BasicCode != "000114001000" || c.Input.From != adapters.DivisionLiwan ||
			!c.Before.Allow || c.Before.Revision != pilot || c.Before.Mode != policies.ModeRemoteReceipt ||
			c.After.Allow || c.After.Revision != draft.Revision() || !slices.Equal(c.After.ReasonCodes(), []string{policies.ReasonItemNotCrossDistrict}) {
			t.Errorf("change %+v", c)
		}
	}
	slices.Sort(changed)
	slices.Sort(physician)
	if !slices.Equal(changed, physician) {
		t.Fatalf("changed exchanges %v, want the physician cases %v", changed, physician)
	}
	var last SimulationReport
	e.admin(t, http.MethodPost, "/admin/v1/policy/drafts/"+d.ID+"/simulate?n=1", "", nil, http.StatusOK, &last)
	if last.Evaluated != 1 || last.Changed != 0 {
		t.Fatalf("simulation of the last decision (the household move): %+v", last)
	}
	if status, b := e.call(t, e.pki.Admin, http.MethodPost, "/admin/v1/policy/drafts/"+d.ID+"/simulate?n=0", "", nil); status != http.StatusBadRequest {
		t.Fatalf("n=0: HTTP %d %s", status, b)
	}

	// Activation under load.
	logBefore, err := e.srv.Store.LogSize(ctx)
	mustDo(t, err)
	results, stopLoad := submitContinuously(e, e.nanhai)
	waitFor(t, "load before activation", func() bool { return len(results()) >= 5 })
	activateStart := time.Now()
	var act ActivationView
	e.admin(t, http.MethodPost, "/admin/v1/policy/drafts/"+d.ID+"/activate", "", nil, http.StatusOK, &act)
	activated := time.Now()
	n := len(results())
	waitFor(t, "load after activation", func() bool { return len(results()) >= n+5 })
	rs := stopLoad()
	if act.Revision != draft.Revision() || act.Previous != pilot || act.ActivatedBy != e.pki.Admin.KeyID() {
		t.Fatalf("activation %+v", act)
	}
	seenNew := false
	var olds, news int
	for i, r := range rs {
		switch {
		case r.err != nil:
			t.Fatalf("submission %d during activation failed: %v", i, r.err)
		case r.revision == pilot:
			olds++
			if seenNew {
				t.Fatalf("submission %d decided by the old revision after one by the new", i)
			}
			if r.started.After(activated) {
				t.Fatalf("submission %d sent after the activation answered was decided by the old revision", i)
			}
		case r.revision == draft.Revision():
			news++
			seenNew = true
			if r.answered.Before(activateStart) {
				t.Fatalf("submission %d answered before the activation began was decided by the new revision", i)
			}
		default:
			t.Fatalf("submission %d decided by revision %q", i, r.revision)
		}
	}
	if olds == 0 || news == 0 {
		t.Fatalf("%d decisions by the old revision and %d by the new: the load did not straddle the activation", olds, news)
	}
	t.Logf("activation under load: %d submissions decided by the old revision, %d by the new, none failed", olds, news)

	// The signed log holds the activation, with the administrator's request.
	var found bool
	for _, b := range e.entries(t, logBefore) {
		entry, err := exchangelog.ParseEntry(b)
		mustDo(t, err)
		pa, ok := entry.(*exchangelog.PolicyActivatedEntry)
		if !ok {
			continue
		}
		if found {
			t.Fatal("two policy_activated entries for one activation")
		}
		found = true
		if pa.Revision != draft.Revision() || pa.Previous != pilot || pa.By != e.pki.Admin.KeyID() || pa.Request.KeyID != e.pki.Admin.KeyID() || pa.Request.Signature == "" {
			t.Fatalf("policy_activated entry %s", b)
		}
	}
	if !found {
		t.Fatal("no policy_activated entry in the log")
	}
	checkNoPersonalDataLogged(t, e)

	// New decisions: physician registrations are refused, by the new
	// revision; company set-ups still pass.
	checkPhysicianDenied := func(t *testing.T) {
		t.Helper()
		resp := e.sendCase(t, e.liwan, nextCase(t, e.liwan), http.StatusForbidden)
		var p struct {
			Code     string
			Decision policies.Decision
		}
		mustDo(t, json.Unmarshal(resp.Body, &p))
		if p.Code != CodePolicyDenied || p.Decision.Revision != draft.Revision() || !slices.Equal(p.Decision.ReasonCodes(), []string{policies.ReasonItemNotCrossDistrict}) {
			t.Fatalf("physician case after activation: %s", resp.Body)
		}
	}
	checkPhysicianDenied(t)
	if rc := e.sendCase(t, e.nanhai, nextCase(t, e.nanhai), http.StatusAccepted).Receipt; rc.Decision.Revision != draft.Revision() {
		t.Fatalf("company set-up after activation decided by %s", rc.Decision.Revision)
	}

	// A restart keeps the activated revision.
	e.restart(t)
	if got := e.activeRevision(t); got != draft.Revision() {
		t.Fatalf("after a restart the active revision is %s, want %s", got, draft.Revision())
	}
	checkPhysicianDenied(t)
	if status, b := e.call(t, e.pki.Admin, http.MethodPost, "/admin/v1/policy/drafts/"+d.ID+"/activate", "", nil); status != http.StatusConflict {
		t.Fatalf("activating the active revision again: HTTP %d %s", status, b)
	}

	// Rollback to the pilot restores the earlier decisions.
	logBefore, err = e.srv.Store.LogSize(ctx)
	mustDo(t, err)
	var back ActivationView
	e.admin(t, http.MethodPost, "/admin/v1/policy/rollback/"+pilot, "", nil, http.StatusOK, &back)
	if back.Revision != pilot || back.Previous != draft.Revision() {
		t.Fatalf("rollback %+v", back)
	}
	rc := e.sendCase(t, e.liwan, nextCase(t, e.liwan), http.StatusAccepted).Receipt
	if rc.Decision.Revision != pilot || !rc.Decision.Allow || rc.Decision.Mode != policies.ModeRemoteReceipt {
		t.Fatalf("physician case after rollback: %+v", rc.Decision)
	}
	var rolled bool
	for _, b := range e.entries(t, logBefore) {
		if entry, err := exchangelog.ParseEntry(b); err == nil {
			if pa, ok := entry.(*exchangelog.PolicyActivatedEntry); ok {
				rolled = pa.Revision == pilot && pa.Previous == draft.Revision() && pa.By == e.pki.Admin.KeyID()
			}
		}
	}
	if !rolled {
		t.Fatal("the rollback has no policy_activated entry")
	}

	var hist []HistoryItem
	e.admin(t, http.MethodGet, "/admin/v1/policy/history", "", nil, http.StatusOK, &hist)
	want := []struct {
		rev     string
		active  bool
		initial bool
	}{{pilot, true, false}, {draft.Revision(), false, false}, {pilot, false, true}}
	if len(hist) != len(want) {
		t.Fatalf("history %+v", hist)
	}
	for i, w := range want {
		if h := hist[i]; h.Revision != w.rev || h.Active != w.active || h.Initial != w.initial || !w.initial && h.By != e.pki.Admin.KeyID() {
			t.Fatalf("history[%d] = %+v, want %+v", i, h, w)
		}
	}

	// Rolling back to the revision already active, or to one never seen,
	// is refused.
	if status, b := e.call(t, e.pki.Admin, http.MethodPost, "/admin/v1/policy/rollback/"+pilot, "", nil); status != http.StatusConflict {
		t.Fatalf("rollback to the active revision: HTTP %d %s", status, b)
	}
	if status, b := e.call(t, e.pki.Admin, http.MethodPost, "/admin/v1/policy/rollback/"+strings.Repeat("ab", 32), "", nil); status != http.StatusNotFound {
		t.Fatalf("rollback to an unknown revision: HTTP %d %s", status, b)
	}
	// And forward again to the draft's revision, from the history.
	e.admin(t, http.MethodPost, "/admin/v1/policy/rollback/"+draft.Revision(), "", nil, http.StatusOK, &back)
	checkPhysicianDenied(t)
}

// TestSyncPolicy: a replica whose engine is behind the store's newest
// activation takes it up with SyncPolicy.
func TestSyncPolicy(t *testing.T) {
	e := newAdminEnv(t)
	ctx := context.Background()
	draft := disablePhysician(t)
	d := e.push(t, draft)
	if rep := e.validate(t, d.ID); !rep.OK {
		t.Fatalf("validation: %+v", rep)
	}
	e.admin(t, http.MethodPost, "/admin/v1/policy/drafts/"+d.ID+"/activate", "", nil, http.StatusOK, nil)
	if changed, err := e.srv.SyncPolicy(ctx); err != nil || changed {
		t.Fatalf("SyncPolicy on the replica that activated: %v %v", changed, err)
	}
	// Pretend to be a replica that has not seen the activation.
	pilot, err := policies.Compile(ctx, policies.Pilot())
	mustDo(t, err)
	e.srv.Policy.Activate(pilot)
	if changed, err := e.srv.SyncPolicy(ctx); err != nil || !changed {
		t.Fatalf("SyncPolicy on a stale replica: %v %v", changed, err)
	}
	if got := e.srv.Policy.Load().Revision(); got != draft.Revision() {
		t.Fatalf("after SyncPolicy the revision is %s, want %s", got, draft.Revision())
	}
}

// submitContinuously sends Nanhai sample cases one after another until
// stopped; results returns what was answered so far, stop ends the load and
// returns every result.
func submitContinuously(e *adminEnv, p *sim.Partner) (results func() []loadResult, stop func() []loadResult) {
	var mu sync.Mutex
	var rs []loadResult
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			r := loadResult{started: time.Now()}
			body, _, err := p.NextCase(sim.SampleOptions{})
			var resp *sim.Response
			if err == nil {
				resp, err = p.SendCase(context.Background(), e.url, body)
			}
			r.answered = time.Now()
			switch {
			case err != nil:
				r.err = err
			case resp.Status != http.StatusAccepted || resp.Receipt == nil || resp.Receipt.Decision == nil:
				r.err = fmt.Errorf("HTTP %d: %s", resp.Status, resp.Body)
			default:
				r.revision = resp.Receipt.Decision.Revision
			}
			mu.Lock()
			rs = append(rs, r)
			mu.Unlock()
		}
	}()
	results = func() []loadResult {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(rs)
	}
	return results, func() []loadResult {
		cancel()
		<-done
		return results()
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkNoPersonalDataLogged: the log, and so every policy input a
// simulation reads from it, holds no name, ID number or mobile number of
// the sample applicants and contacts.
func checkNoPersonalDataLogged(t *testing.T, e *adminEnv) {
	t.Helper()
	var pii []string
	for _, p := range []*sim.Partner{e.nanhai, e.liwan} {
		c, err := p.Codec().DecodeCase(nextCase(t, p))
		mustDo(t, err)
		for _, party := range []adapters.Party{c.Applicant, c.Contact} {
			for _, s := range []string{party.Name, party.IDNumber, party.Mobile, strings.TrimPrefix(party.Mobile, "+86"), party.LegalRepresentative} {
				if s != "" {
					pii = append(pii, s)
				}
			}
		}
		pii = append(pii, c.Address)
	}
	for _, b := range e.entries(t, 0) {
		for _, s := range pii {
			if bytes.Contains(b, []byte(s)) {
				t.Fatalf("the log holds %q: %s", s, b)
			}
		}
		var rec struct {
			PolicyInput json.RawMessage `json:"policy_input"`
		}
		mustDo(t, json.Unmarshal(b, &rec))
		if rec.PolicyInput != nil {
			var in map[string]any
			mustDo(t, json.Unmarshal(rec.PolicyInput, &in))
			keys := slices.Sorted(maps.Keys(in))
			if !slices.Equal(keys, []string{"applicant", "channel", "from", "item", "materials", "time", "to"}) {
				t.Fatalf("logged policy input has fields %v", keys)
			}
		}
	}
}

// BenchmarkSimulate measures a simulation of a draft over 1,000 logged
// decisions (half of them physician registrations that the draft turns
// from allow to deny), store reads included.
func BenchmarkSimulate(b *testing.B) {
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite", filepath.Join(b.TempDir(), "bench.db"))
	mustDo(b, err)
	defer st.Close()
	pilot, err := policies.Compile(ctx, policies.Pilot())
	mustDo(b, err)
	s := &Server{Store: st, Policy: policies.NewSwitch(pilot), logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	at := time.Date(2026, 11, 27, 9, 45, 0, 0, chinaTime)
	inputs := []policies.Input{
		{From: adapters.DivisionNanhai, To: adapters.DivisionLiwan, BasicCode: "000105001000", ApplicantKind: "ENTERPRISE", Channel: "COUNTER", Materials: []string{"M001", "M002", "M003", "M004"}, Time: at},
		{From: adapters.DivisionLiwan, To: adapters.DivisionNanhai, BasicCode: "000114001000", ApplicantKind: "PERSON", Channel: "COUNTER", Materials: []string{"M201", "M202", "M203", "M204"}, Time: at},
	}
	const n = 1000
	for i := range n {
		in := inputs[i%2]
		d, err := pilot.Decide(ctx, in)
		mustDo(b, err)
		d.Revision = pilot.Revision()
		ib, db, err := marshalDecision(in, d)
		mustDo(b, err)
		entry, err := store.NewLogAppend(&exchangelog.ExchangeEntry{Header: exchangelog.Header{Time: at}, Exchange: fmt.Sprintf("X%05d", i),
			From: in.From, To: in.To, Item: in.BasicCode, SourceCase: fmt.Sprint(i), PolicyInput: ib, Decision: db,
			Request:    exchangelog.Signed{Digest: strings.Repeat("0", 64), SignatureBase: "-", Signature: "AA==", KeyID: strings.Repeat("0", 64)},
			Translated: exchangelog.Digest{Digest: strings.Repeat("0", 64)}}, at)
		mustDo(b, err)
		_, err = st.AppendEntry(ctx, entry)
		mustDo(b, err)
	}
	files := policies.Pilot().Files()
	files[policies.CatalogPath] = bytes.Replace(files[policies.CatalogPath], []byte("\"department\": \"health\",\n      \"cross_district\": true"), []byte("\"department\": \"health\",\n      \"cross_district\": false"), 1)
	draft, err := policies.BundleFromFiles(files)
	mustDo(b, err)
	d := &store.Draft{ID: "bench", Revision: draft.Revision(), Bundle: draft.Tar(), UploadedBy: "-", UploadedAt: at, Validated: true}
	mustDo(b, st.SaveDraft(ctx, d))
	req := httptest.NewRequest(http.MethodPost, "/admin/v1/policy/drafts/bench/simulate?n=1000", nil)
	req.SetPathValue("id", "bench")
	b.ResetTimer()
	for b.Loop() {
		_, doc, err := s.simulateDraft(ctx, nil, req)
		mustDo(b, err)
		if rep := doc.(SimulationReport); rep.Evaluated != n || rep.AllowToDeny != n/2 {
			b.Fatalf("simulation %d evaluated, %d allow → deny", rep.Evaluated, rep.AllowToDeny)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/decision")
}

// BenchmarkReadDraft measures reading an uploaded pilot bundle as a tar and
// as a multipart form of its files.
func BenchmarkReadDraft(b *testing.B) {
	pilot := policies.Pilot()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for path, content := range pilot.Files() {
		w, err := mw.CreateFormFile(path, filepath.Base(path))
		mustDo(b, err)
		_, _ = w.Write(content)
	}
	mustDo(b, mw.Close())
	for _, tc := range []struct {
		name, contentType string
		body              []byte
	}{{"tar", "application/x-tar", pilot.Tar()}, {"multipart", mw.FormDataContentType(), buf.Bytes()}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(tc.body)))
			for b.Loop() {
				if _, err := readDraft(tc.contentType, tc.body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
