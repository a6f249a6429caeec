package gateway

// The hostile input catalogue (issue 10, part 3): every refusal over real
// HTTP, with its documented status and code, leaving no case, status,
// outbox or payload row; refusals of authenticated partners are `denied`
// log entries (exchange-log.md), unauthenticated ones only a metric and a
// process log line.
//
// These tests are in package gateway (not gateway_test) and name their
// helpers rel…, so they stand beside the end-to-end suite's harness
// without sharing it.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/gateway/store"
	"github.com/tongban/tongban/httpsig"
	"github.com/tongban/tongban/internal/ruletest"
	"github.com/tongban/tongban/sim"
)

// relBuffer is a process log a test can read while the gateway writes it.
type relBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *relBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *relBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.b.Bytes())
}

// relEnv is a whole gateway (NewServer + Run on a loopback TLS listener,
// SQLite in a temporary directory, its own dev PKI) with both simulated
// districts, and a process log captured in memory.
type relEnv struct {
	dir     string
	pki     *certs.DevPKI
	cfg     *Config
	srv     *Server
	url     string
	client  *http.Client
	nanhai  *relSim
	liwan   *relSim
	procLog *relBuffer
	db      *sql.DB // a read-only view of the store's SQLite file
}

type relSim struct {
	*sim.Partner
	url string

	mu     sync.Mutex
	faults []relFault // applied to the next requests, one each
}

// relFault misbehaves instead of the simulator on one request.
type relFault func(w http.ResponseWriter, r *http.Request)

// failNext makes the next requests meet these faults, in order.
func (s *relSim) failNext(fs ...relFault) {
	s.mu.Lock()
	s.faults = append(s.faults, fs...)
	s.mu.Unlock()
}

func (s *relSim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	var f relFault
	if len(s.faults) > 0 {
		f, s.faults = s.faults[0], s.faults[1:]
	}
	s.mu.Unlock()
	if f != nil {
		f(w, r)
		return
	}
	s.Partner.ServeHTTP(w, r)
}

// relOption changes the configuration after its defaults are applied.
type relOption func(tb testing.TB, e *relEnv)

// relWithMaxBody limits request bodies.
func relWithMaxBody(n int64) relOption {
	return func(_ testing.TB, e *relEnv) { e.cfg.MaxBodyBytes = n }
}

// relWithPartnerCert adds a certificate file to partner id's certificates.
func relWithPartnerCert(id string, cert *certs.Certificate) relOption {
	return func(tb testing.TB, e *relEnv) {
		path := filepath.Join(e.dir, fmt.Sprintf("extra-%s-%d.pem", id, len(e.cfg.Partners[0].Certificates)+len(e.cfg.Partners[1].Certificates)))
		if err := os.WriteFile(path, certs.EncodeCertificatePEM(cert), 0o644); err != nil {
			tb.Fatal(err)
		}
		for i := range e.cfg.Partners {
			if e.cfg.Partners[i].ID == id {
				e.cfg.Partners[i].Certificates = append(e.cfg.Partners[i].Certificates, path)
				return
			}
		}
		tb.Fatalf("no partner %s", id)
	}
}

func relQuiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newRelEnv(tb testing.TB, opts ...relOption) *relEnv {
	tb.Helper()
	e := &relEnv{dir: tb.TempDir(), procLog: &relBuffer{}}
	certDir := filepath.Join(e.dir, "certs")
	if err := certs.InitDevPKI(certDir); err != nil {
		tb.Fatal(err)
	}
	var err error
	if e.pki, err = certs.LoadDevPKI(certDir); err != nil {
		tb.Fatal(err)
	}
	e.client = relTLSClient(tb, e.pki.TLSCert)
	e.nanhai = relNewSim(tb, e.pki, adapters.DivisionNanhai, e.client)
	e.liwan = relNewSim(tb, e.pki, adapters.DivisionLiwan, e.client)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	e.cfg = &Config{Data: e.dir, Listen: ln.Addr().String()}
	e.cfg.Delivery.InitialBackoff = 50 * time.Millisecond
	e.cfg.Delivery.MaxBackoff = 200 * time.Millisecond
	e.cfg.Log.CheckpointInterval = 100 * time.Millisecond
	if err := e.cfg.ApplyDefaults(); err != nil {
		tb.Fatal(err)
	}
	for i := range e.cfg.Partners {
		switch e.cfg.Partners[i].ID {
		case "nanhai":
			e.cfg.Partners[i].Endpoint = e.nanhai.url
		case "liwan":
			e.cfg.Partners[i].Endpoint = e.liwan.url
		}
	}
	for _, o := range opts {
		o(tb, e)
	}
	ctx, cancel := context.WithCancel(context.Background())
	logger := slog.New(slog.NewJSONHandler(e.procLog, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if e.srv, err = NewServer(ctx, e.cfg, logger); err != nil {
		cancel()
		ln.Close()
		tb.Fatal(err)
	}
	e.url = e.cfg.PublicURL
	done := make(chan error, 1)
	go func() { done <- e.srv.Run(ctx, ln) }()
	if e.db, err = sql.Open("sqlite", "file:"+e.cfg.Store.DSN+"?mode=ro"); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		e.db.Close()
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Run: %v", err)
		}
	})
	return e
}

func relTLSClient(tb testing.TB, certPath string) *http.Client {
	tb.Helper()
	pem, err := os.ReadFile(certPath)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		tb.Fatal("no certificate in " + certPath)
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, MaxIdleConnsPerHost: 64,
	}}
}

func relNewSim(tb testing.TB, pki *certs.DevPKI, division string, client *http.Client) *relSim {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	signer := pki.Nanhai
	if division == adapters.DivisionLiwan {
		signer = pki.Liwan
	}
	p, err := sim.New(sim.Options{Division: division, Signer: signer, Trust: pki.TrustStore(), PublicURL: u, HTTPClient: client, Logger: relQuiet()})
	if err != nil {
		tb.Fatal(err)
	}
	rs := &relSim{Partner: p, url: u}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: rs, ReadHeaderTimeout: 10 * time.Second}}
	srv.Start()
	tb.Cleanup(srv.Close)
	return rs
}

// relAnswer is a raw HTTP answer.
type relAnswer struct {
	Status int
	Header http.Header
	Body   []byte
}

func (e *relEnv) do(tb testing.TB, req *http.Request) *relAnswer {
	tb.Helper()
	resp, err := e.client.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return &relAnswer{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// request builds an unsigned request to path (which may hold escapes) with
// the given body.
func (e *relEnv) request(tb testing.TB, method, path, contentType string, body []byte) *http.Request {
	tb.Helper()
	req, err := http.NewRequest(method, e.url+path, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req
}

// signedRequest builds a request signed by signer over body.
func (e *relEnv) signedRequest(tb testing.TB, signer *certs.Signer, method, path, contentType string, body []byte, opts ...httpsig.Option) (*http.Request, *httpsig.Signed) {
	tb.Helper()
	req := e.request(tb, method, path, contentType, body)
	s, err := httpsig.SignRequest(req, body, signer, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return req, s
}

// relCounts are the rows a refusal must not add.
type relCounts struct {
	Exchanges, Statuses, Deliveries, Log int
}

func (e *relEnv) counts(tb testing.TB) relCounts {
	tb.Helper()
	var c relCounts
	for _, q := range []struct {
		table string
		n     *int
	}{{"exchanges", &c.Exchanges}, {"statuses", &c.Statuses}, {"deliveries", &c.Deliveries}, {"log_entries", &c.Log}} {
		if err := e.db.QueryRow("SELECT COUNT(*) FROM " + q.table).Scan(q.n); err != nil {
			tb.Fatal(err)
		}
	}
	return c
}

// entry returns log entry i as stored.
func (e *relEnv) entry(tb testing.TB, i int) store.StoredEntry {
	tb.Helper()
	es, err := e.srv.Store.Entries(context.Background(), uint64(i), uint64(i+1))
	if err != nil || len(es) != 1 {
		tb.Fatalf("entry %d: %v (%d)", i, err, len(es))
	}
	return es[0]
}

// metric reads one sample of /metrics (0 when absent); labels are the
// exact `name="value"` pairs in the order Prometheus writes them (sorted).
func (e *relEnv) metric(tb testing.TB, name string, labels ...string) float64 {
	tb.Helper()
	a := e.do(tb, e.request(tb, http.MethodGet, "/metrics", "", nil))
	want := name
	if len(labels) > 0 {
		want += "{" + strings.Join(labels, ",") + "}"
	}
	for _, line := range strings.Split(string(a.Body), "\n") {
		if v, ok := strings.CutPrefix(line, want+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return f
		}
	}
	return 0
}

// relProblem is the part of a problem+json document the tests read.
type relProblem struct {
	Type   string `json:"type"`
	Status int    `json:"status"`
	Code   string `json:"code"`
	Errors []struct {
		Field string `json:"field"`
		Code  string `json:"code"`
	} `json:"errors"`
}

func relCheckProblem(tb testing.TB, a *relAnswer, status int, code string) *relProblem {
	tb.Helper()
	if a.Status != status {
		tb.Fatalf("status %d, want %d; body %s", a.Status, status, a.Body)
	}
	if ct := a.Header.Get("Content-Type"); ct != "application/problem+json" {
		tb.Fatalf("Content-Type %q, want application/problem+json", ct)
	}
	var p relProblem
	if err := json.Unmarshal(a.Body, &p); err != nil {
		tb.Fatalf("problem: %v in %s", err, a.Body)
	}
	if p.Code != code || p.Status != status || p.Type != "urn:tongban:problem:"+code {
		tb.Fatalf("problem %+v, want code %s status %d", p, code, status)
	}
	return &p
}

// relDenied is a denied entry's fields the tests check.
type relDenied struct {
	Kind    string   `json:"kind"`
	From    string   `json:"from"`
	Code    string   `json:"code"`
	Fields  []string `json:"fields"`
	Request struct {
		Digest string `json:"digest"`
		KeyID  string `json:"keyid"`
	} `json:"request"`
}

// relPersonal are the personal data of the sample cases the simulators
// send: ID numbers, mobiles (both districts' forms) and names.
var relPersonal = []string{
	"91440605MA4W00000A", "440605199001010014", "440103198506150026",
	"13800138000", "13912345678",
	"张伟", "陈静", "佛山市南海区桂城智造科技有限公司",
}

// --- bodies ---

func (e *relEnv) nanhaiCase(tb testing.TB) []byte {
	tb.Helper()
	b, _, err := e.nanhai.NextCase(sim.SampleOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func (e *relEnv) liwanCase(tb testing.TB) []byte {
	tb.Helper()
	b, _, err := e.liwan.NextCase(sim.SampleOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

const (
	relXML  = "application/xml; charset=GBK"
	relJSON = "application/json"
)

// nanhaiWith returns a valid Nanhai case with the text of element name
// replaced by raw bytes (already GBK or deliberately broken).
func (e *relEnv) nanhaiWith(tb testing.TB, name string, raw []byte) []byte {
	tb.Helper()
	b := e.nanhaiCase(tb)
	open, closing := []byte("<"+name+">"), []byte("</"+name+">")
	i, j := bytes.Index(b, open), bytes.Index(b, closing)
	if i < 0 || j < i {
		tb.Fatalf("no %s in the sample", name)
	}
	return append(append(append([]byte{}, b[:i+len(open)]...), raw...), b[j:]...)
}

// nanhaiWrapped returns a valid Nanhai case with pre inserted after the XML
// declaration and inner inserted right after <CASE>.
func (e *relEnv) nanhaiWrapped(tb testing.TB, pre, inner string) []byte {
	tb.Helper()
	b := e.nanhaiCase(tb)
	decl := bytes.Index(b, []byte("?>"))
	root := bytes.Index(b, []byte("<CASE>"))
	if decl < 0 || root < 0 {
		tb.Fatal("sample without declaration or <CASE>")
	}
	var out []byte
	out = append(out, b[:decl+2]...)
	out = append(out, pre...)
	out = append(out, b[decl+2:root+len("<CASE>")]...)
	out = append(out, inner...)
	return append(out, b[root+len("<CASE>"):]...)
}

// liwanEdit returns a valid Liwan case with a raw JSON edit: old replaced
// by new, once.
func (e *relEnv) liwanEdit(tb testing.TB, old, new string) []byte {
	tb.Helper()
	b := e.liwanCase(tb)
	if !bytes.Contains(b, []byte(old)) {
		tb.Fatalf("no %q in the sample %s", old, b)
	}
	return bytes.Replace(b, []byte(old), []byte(new), 1)
}

// --- the catalogue ---

// Where a hostile request is refused.
const (
	stageVerify = iota // by the signature check: no entry, a metric and a process log line
	stageDenied        // a POST after its signature verified: a denied entry
	stageLookup        // a GET after its signature verified: nothing recorded
)

// hostileCase is one hostile request: how to build it, the answer the
// contracts give it, and where it is refused.
type hostileCase struct {
	name   string
	build  func(tb testing.TB, e *relEnv) *http.Request
	status int
	code   string
	stage  int
}

// signedBy returns a builder for a request signed by the partner who.
func signedBy(who, method, path, contentType string, body func(testing.TB, *relEnv) []byte, opts ...httpsig.Option) func(testing.TB, *relEnv) *http.Request {
	return func(tb testing.TB, e *relEnv) *http.Request {
		signer := e.pki.Nanhai
		if who == "liwan" {
			signer = e.pki.Liwan
		}
		var b []byte
		if body != nil {
			b = body(tb, e)
		}
		req, _ := e.signedRequest(tb, signer, method, path, contentType, b, opts...)
		return req
	}
}

func nanhaiBody(tb testing.TB, e *relEnv) []byte { return e.nanhaiCase(tb) }

// tampered returns a builder that signs a valid Nanhai case and then
// changes the request with f.
func tampered(f func(tb testing.TB, e *relEnv, req *http.Request, s *httpsig.Signed)) func(testing.TB, *relEnv) *http.Request {
	return func(tb testing.TB, e *relEnv) *http.Request {
		req, s := e.signedRequest(tb, e.pki.Nanhai, http.MethodPost, "/v1/exchanges", relXML, e.nanhaiCase(tb))
		f(tb, e, req, s)
		return req
	}
}

func hostileCatalogue() []hostileCase {
	billionLaughs := `<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">` +
		`<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;"><!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">` +
		`<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;"><!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">` +
		`<!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;"><!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">` +
		`<!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">]>`
	deepXML := strings.Repeat("<A>", 100_000) + strings.Repeat("</A>", 100_000)
	deepJSON := strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000)
	return []hostileCase{
		// Refused before the signature verified: 401/400/413, no entry.
		{name: "signature missing", status: 401, code: "signature_missing",
			build: func(tb testing.TB, e *relEnv) *http.Request {
				return e.request(tb, http.MethodPost, "/v1/exchanges", relXML, e.nanhaiCase(tb))
			}},
		{name: "Signature-Input not a dictionary", status: 401, code: "signature_malformed",
			build: tampered(func(_ testing.TB, _ *relEnv, req *http.Request, _ *httpsig.Signed) {
				req.Header.Set("Signature-Input", "tb=(((")
			})},
		{name: "Signature not a byte sequence", status: 401, code: "signature_malformed",
			build: tampered(func(_ testing.TB, _ *relEnv, req *http.Request, _ *httpsig.Signed) {
				req.Header.Set("Signature", `tb="abc"`)
			})},
		{name: "signature not strict DER", status: 401, code: "signature_malformed",
			build: tampered(func(_ testing.TB, _ *relEnv, req *http.Request, _ *httpsig.Signed) {
				req.Header.Set("Signature", "tb=:"+base64.StdEncoding.EncodeToString([]byte{0x30, 0x03, 0x02, 0x01, 0x01, 0x00})+":")
			})},
		{name: "alg other than sm2-sm3", status: 401, code: "signature_malformed",
			build: tampered(func(_ testing.TB, _ *relEnv, req *http.Request, _ *httpsig.Signed) {
				req.Header.Set("Signature-Input", strings.Replace(req.Header.Get("Signature-Input"), `alg="sm2-sm3"`, `alg="ecdsa-p256-sha256"`, 1))
			})},
		{name: "an extra parameter", status: 401, code: "signature_malformed",
			build: tampered(func(_ testing.TB, _ *relEnv, req *http.Request, _ *httpsig.Signed) {
				req.Header.Set("Signature-Input", req.Header.Get("Signature-Input")+`;tag="x"`)
			})},
		{name: "content-type not covered", status: 401, code: "signature_malformed",
			build: tampered(func(_ testing.TB, _ *relEnv, req *http.Request, _ *httpsig.Signed) {
				req.Header.Set("Signature-Input", strings.Replace(req.Header.Get("Signature-Input"), ` "content-type"`, "", 1))
			})},
		{name: "Content-Digest sha-256", status: 401, code: "signature_malformed",
			build: tampered(func(_ testing.TB, _ *relEnv, req *http.Request, _ *httpsig.Signed) {
				req.Header.Set("Content-Digest", "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:")
			})},
		{name: "expired (created 10 min ago)", status: 401, code: "signature_expired",
			build: signedBy("nanhai", http.MethodPost, "/v1/exchanges", relXML, nanhaiBody,
				httpsig.WithClock(func() time.Time { return time.Now().Add(-10 * time.Minute) }))},
		{name: "created 10 min ahead", status: 401, code: "signature_expired",
			build: signedBy("nanhai", http.MethodPost, "/v1/exchanges", relXML, nanhaiBody,
				httpsig.WithClock(func() time.Time { return time.Now().Add(10 * time.Minute) }))},
		{name: "forged signature (another key over the same base)", status: 401, code: "signature_invalid",
			build: tampered(func(tb testing.TB, e *relEnv, req *http.Request, s *httpsig.Signed) {
				sig, err := e.pki.Liwan.Sign([]byte(s.SignatureBase))
				if err != nil {
					tb.Fatal(err)
				}
				req.Header.Set("Signature", "tb=:"+base64.StdEncoding.EncodeToString(sig)+":")
			})},
		{name: "signature of another request", status: 401, code: "signature_invalid",
			build: tampered(func(tb testing.TB, e *relEnv, req *http.Request, _ *httpsig.Signed) {
				other, _ := e.signedRequest(tb, e.pki.Nanhai, http.MethodPost, "/v1/status", relXML, nil)
				req.Header.Set("Signature", other.Header.Get("Signature"))
			})},
		{name: "signed for another path", status: 401, code: "signature_invalid",
			build: tampered(func(_ testing.TB, _ *relEnv, req *http.Request, _ *httpsig.Signed) {
				req.URL.Path = "/v1/status"
			})},
		{name: "digest mismatch", status: 400, code: "digest_mismatch",
			build: tampered(func(_ testing.TB, _ *relEnv, req *http.Request, _ *httpsig.Signed) {
				b, _ := io.ReadAll(req.Body)
				b[len(b)-3] ^= 1
				req.Body = io.NopCloser(bytes.NewReader(b))
			})},
		{name: "unknown key (dev CA, not configured)", status: 401, code: "key_unknown",
			build: func(tb testing.TB, e *relEnv) *http.Request {
				s, err := e.pki.IssueLeaf(certs.Identity{Role: certs.RolePartner, Partner: "nanhai", Division: "440605"}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
				if err != nil {
					tb.Fatal(err)
				}
				req, _ := e.signedRequest(tb, s, http.MethodPost, "/v1/exchanges", relXML, e.nanhaiCase(tb))
				return req
			}},
		{name: "key of another CA", status: 401, code: "key_unknown",
			build: func(tb testing.TB, e *relEnv) *http.Request {
				dir := tb.TempDir()
				if err := certs.InitDevPKI(dir); err != nil {
					tb.Fatal(err)
				}
				other, err := certs.LoadDevPKI(dir)
				if err != nil {
					tb.Fatal(err)
				}
				req, _ := e.signedRequest(tb, other.Nanhai, http.MethodPost, "/v1/exchanges", relXML, e.nanhaiCase(tb))
				return req
			}},
		{name: "the gateway's own key", status: 403, code: "forbidden", stage: stageDenied,
			build: func(tb testing.TB, e *relEnv) *http.Request {
				req, _ := e.signedRequest(tb, e.pki.Gateway, http.MethodPost, "/v1/exchanges", relXML, e.nanhaiCase(tb))
				return req
			}},

		// Refused after the signature verified: a denied entry each.
		{name: "Content-Type of the other district", status: 415, code: "unsupported_media_type", stage: stageDenied,
			build: signedBy("nanhai", http.MethodPost, "/v1/exchanges", relJSON, func(tb testing.TB, e *relEnv) []byte { return e.liwanCase(tb) })},
		{name: "the other district's format under its own Content-Type", status: 400, code: "malformed", stage: stageDenied,
			build: signedBy("nanhai", http.MethodPost, "/v1/exchanges", relXML, func(tb testing.TB, e *relEnv) []byte { return e.liwanCase(tb) })},
		{name: "empty body", status: 400, code: "malformed", stage: stageDenied,
			build: signedBy("liwan", http.MethodPost, "/v1/exchanges", relJSON, func(testing.TB, *relEnv) []byte { return nil })},
		{name: "invalid GBK", status: 400, code: "malformed", stage: stageDenied,
			build: signedBy("nanhai", http.MethodPost, "/v1/exchanges", relXML, func(tb testing.TB, e *relEnv) []byte {
				return e.nanhaiWith(tb, "ADDRESS", []byte{0x81, 0x20, 0xff, 0xff})
			})},
		{name: "a 4-byte GB18030 sequence", status: 400, code: "malformed", stage: stageDenied,
			build: signedBy("nanhai", http.MethodPost, "/v1/exchanges", relXML, func(tb testing.TB, e *relEnv) []byte {
				return e.nanhaiWith(tb, "ADDRESS", []byte{0x95, 0x32, 0x82, 0x36})
			})},
		{name: "XML declared UTF-8", status: 400, code: "malformed", stage: stageDenied,
			build: signedBy("nanhai", http.MethodPost, "/v1/exchanges", relXML, func(tb testing.TB, e *relEnv) []byte {
				return bytes.Replace(e.nanhaiCase(tb), []byte(`encoding="GBK"`), []byte(`encoding="UTF-8"`), 1)
			})},
		{name: "XML with a DOCTYPE", status: 400, code: "malformed", stage: stageDenied,
			build: signedBy("nanhai", http.MethodPost, "/v1/exchanges", relXML, func(tb testing.TB, e *relEnv) []byte {
				return e.nanhaiWrapped(tb, `<!DOCTYPE CASE SYSTEM "file:///etc/passwd">`, "")
			})},
		{name: "XML billion laughs", status: 400, code: "malformed", stage: stageDenied,
			build: signedBy("nanhai", http.MethodPost, "/v1/exchanges", relXML, func(tb testing.TB, e *relEnv) []byte {
				b := e.nanhaiWrapped(tb, billionLaughs, "")
				return bytes.Replace(b, []byte("<ADDRESS>"), []byte("<ADDRESS>&lol9;"), 1)
			})},
		{name: "XML external entity reference", status: 400, code: "malformed", stage: stageDenied,
			build: signedBy("nanhai", http.MethodPost, "/v1/exchanges", relXML, func(tb testing.TB, e *relEnv) []byte {
				return bytes.Replace(e.nanhaiCase(tb), []byte("<ADDRESS>"), []byte("<ADDRESS>&xxe;"), 1)
			})},
		{name: "XML nested 100,000 deep", status: 400, code: "malformed", stage: stageDenied,
			build: signedBy("nanhai", http.MethodPost, "/v1/exchanges", relXML, func(tb testing.TB, e *relEnv) []byte {
				return e.nanhaiWrapped(tb, "", deepXML)
			})},
		{name: "XML truncated", status: 400, code: "malformed", stage: stageDenied,
			build: signedBy("nanhai", http.MethodPost, "/v1/exchanges", relXML, func(tb testing.TB, e *relEnv) []byte {
				b := e.nanhaiCase(tb)
				return b[:len(b)/2]
			})},
		{name: "XML in GBK with a character reference GBK lacks (accepted form, wrong field rule)", status: 422, code: "validation_failed", stage: stageDenied,
			build: signedBy("nanhai", http.MethodPost, "/v1/exchanges", relXML, func(tb testing.TB, e *relEnv) []byte {
				return e.nanhaiWith(tb, "CONTACT_MOBILE", []byte("&#x20BB7;"))
			})},
		{name: "invalid UTF-8", status: 400, code: "malformed", stage: stageDenied,
			build: signedBy("liwan", http.MethodPost, "/v1/exchanges", relJSON, func(tb testing.TB, e *relEnv) []byte {
				return e.liwanEdit(tb, `"address":"`, "\"address\":\"\xff\xfe")
			})},
		{name: "JSON duplicate key", status: 400, code: "malformed", stage: stageDenied,
			build: signedBy("liwan", http.MethodPost, "/v1/exchanges", relJSON, func(tb testing.TB, e *relEnv) []byte {
				return e.liwanEdit(tb, `"address":`, `"ownerDivision":"440103","address":`)
			})},
		{name: "JSON nested 100,000 deep", status: 400, code: "malformed", stage: stageDenied,
			build: signedBy("liwan", http.MethodPost, "/v1/exchanges", relJSON, func(tb testing.TB, e *relEnv) []byte {
				return e.liwanEdit(tb, `"address":`, `"x":`+deepJSON+`,"address":`)
			})},
		{name: "JSON trailing garbage", status: 400, code: "malformed", stage: stageDenied,
			build: signedBy("liwan", http.MethodPost, "/v1/exchanges", relJSON, func(tb testing.TB, e *relEnv) []byte {
				return append(e.liwanCase(tb), "{}"...)
			})},
		{name: "JSON huge number", status: 422, code: "validation_failed", stage: stageDenied,
			build: signedBy("liwan", http.MethodPost, "/v1/exchanges", relJSON, func(tb testing.TB, e *relEnv) []byte {
				return e.liwanEdit(tb, `"promisedWorkingDays":20`, `"promisedWorkingDays":1`+strings.Repeat("0", 400))
			})},
		{name: "JSON number with exponent 1e999", status: 422, code: "validation_failed", stage: stageDenied,
			build: signedBy("liwan", http.MethodPost, "/v1/exchanges", relJSON, func(tb testing.TB, e *relEnv) []byte {
				return e.liwanEdit(tb, `"promisedWorkingDays":20`, `"promisedWorkingDays":1e999`)
			})},
		{name: "status for an unknown case", status: 404, code: "not_found", stage: stageDenied,
			build: signedBy("liwan", http.MethodPost, "/v1/status", relJSON, func(tb testing.TB, e *relEnv) []byte {
				b, err := e.liwan.SampleStatus("LW2026112799999", adapters.Approved, time.Time{})
				if err != nil {
					tb.Fatal(err)
				}
				return b
			})},
		{name: "path traversal in an exchange id (status)", status: 404, code: "not_found", stage: stageDenied,
			build: signedBy("liwan", http.MethodPost, "/v1/exchanges/..%2F..%2Fadmin%2Fv1%2Fpolicy/status", relJSON, func(tb testing.TB, e *relEnv) []byte {
				b, err := e.liwan.SampleStatus("LW2026112799999", adapters.Approved, time.Time{})
				if err != nil {
					tb.Fatal(err)
				}
				return b
			})},
		{name: "path traversal in an exchange id (GET)", status: 404, code: "not_found", stage: stageLookup,
			build: signedBy("liwan", http.MethodGet, "/v1/exchanges/..%2F..%2F..%2Fetc%2Fpasswd", "", nil)},
		{name: "path traversal in a case number (GET)", status: 404, code: "not_found", stage: stageLookup,
			build: signedBy("liwan", http.MethodGet, "/v1/cases/%2E%2E%2F%2E%2E%2Ftongban.db", "", nil)},
		{name: "SQL in a case number (GET)", status: 404, code: "not_found", stage: stageLookup,
			build: signedBy("liwan", http.MethodGet, "/v1/cases/"+url.PathEscape("x' OR '1'='1"), "", nil)},
		{name: "unknown route", status: 404, code: "not_found", stage: stageLookup,
			build: signedBy("liwan", http.MethodGet, "/v1/nothing/here", "", nil)},
	}
}

// TestHostileInputCatalogue sends each hostile request over real HTTP and
// checks the answer, that no case, status or outbox row was added, and
// what was recorded: a denied entry naming the code (and no personal data)
// for an authenticated refusal; for an unauthenticated one no entry, one
// more in tongban_unauthenticated_refusals_total and a process log line.
func TestHostileInputCatalogue(t *testing.T) {
	e := newRelEnv(t)
	for _, hc := range hostileCatalogue() {
		t.Run(hc.name, func(t *testing.T) {
			before := e.counts(t)
			metricBefore := e.metric(t, "tongban_unauthenticated_refusals_total", `code="`+hc.code+`"`)
			logBefore := len(e.procLog.Bytes())
			req := hc.build(t, e)
			a := e.do(t, req)
			relCheckProblem(t, a, hc.status, hc.code)
			after := e.counts(t)
			if after.Exchanges != before.Exchanges || after.Statuses != before.Statuses || after.Deliveries != before.Deliveries {
				t.Fatalf("rows changed: %+v → %+v", before, after)
			}
			procLog := e.procLog.Bytes()[logBefore:]
			switch hc.stage {
			case stageDenied:
				if after.Log != before.Log+1 {
					t.Fatalf("log grew by %d entries, want one denied entry", after.Log-before.Log)
				}
				raw := e.entry(t, before.Log).Bytes
				var d relDenied
				if err := json.Unmarshal(raw, &d); err != nil {
					t.Fatal(err)
				}
				if d.Kind != "denied" || d.Code != hc.code || d.Request.Digest == "" || d.Request.KeyID == "" {
					t.Fatalf("entry %s, want a denied entry with code %s", raw, hc.code)
				}
				for _, p := range relPersonal {
					if bytes.Contains(raw, []byte(p)) {
						t.Errorf("denied entry holds %q", p)
					}
				}
			default:
				if after.Log != before.Log {
					t.Fatalf("log grew by %d entries", after.Log-before.Log)
				}
			}
			if hc.stage == stageVerify {
				if m := e.metric(t, "tongban_unauthenticated_refusals_total", `code="`+hc.code+`"`); m != metricBefore+1 {
					t.Errorf("tongban_unauthenticated_refusals_total{code=%q} %v → %v, want one more", hc.code, metricBefore, m)
				}
				if !bytes.Contains(procLog, []byte(`"code":"`+hc.code+`"`)) {
					t.Errorf("no process log line with code %s in %s", hc.code, procLog)
				}
			}
			for _, p := range relPersonal {
				if bytes.Contains(procLog, []byte(p)) {
					t.Errorf("process log holds %q", p)
				}
			}
		})
	}
}

// countingReader counts what the client managed to hand to the connection.
type countingReader struct {
	n, limit int64
	mu       sync.Mutex
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n >= c.limit {
		return 0, io.EOF
	}
	n := int64(len(p))
	if n > c.limit-c.n {
		n = c.limit - c.n
	}
	for i := range p[:n] {
		p[i] = 'x'
	}
	c.n += n
	return int(n), nil
}

func (c *countingReader) sent() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// TestHostileBodyOverLimit: a body over max_body_bytes is 413 too_large,
// announced or not, and is not read whole: the gateway stops reading soon
// after the limit.
func TestHostileBodyOverLimit(t *testing.T) {
	const limit = 64 << 10
	e := newRelEnv(t, relWithMaxBody(limit))
	before := e.counts(t)

	t.Run("announced", func(t *testing.T) {
		body := bytes.Repeat([]byte("x"), limit+1)
		req, _ := e.signedRequest(t, e.pki.Nanhai, http.MethodPost, "/v1/exchanges", relXML, body)
		relCheckProblem(t, e.do(t, req), 413, "too_large")
	})
	t.Run("streamed", func(t *testing.T) {
		// 256 MiB offered without Content-Length; the signature covers a
		// digest the gateway never gets to check.
		src := &countingReader{limit: 256 << 20}
		req, _ := e.signedRequest(t, e.pki.Nanhai, http.MethodPost, "/v1/exchanges", relXML, nil)
		req.Body, req.ContentLength, req.GetBody = io.NopCloser(src), -1, nil
		resp, err := e.client.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			relCheckProblem(t, &relAnswer{Status: resp.StatusCode, Header: resp.Header, Body: b}, 413, "too_large")
		} else {
			// The client may see its upload cut off before it reads the
			// answer; what matters is how much was taken.
			t.Logf("client: %v", err)
		}
		// The gateway reads limit+1 bytes; socket buffers on loopback hold
		// a few MiB more at most.
		t.Logf("the client sent %d bytes", src.sent())
		if got := src.sent(); got > 16<<20 {
			t.Errorf("the client could send %d bytes: the body was read far beyond the %d-byte limit", got, limit)
		}
	})
	if after := e.counts(t); after != before {
		t.Errorf("rows changed: %+v → %+v", before, after)
	}
}

// TestHostileHeaders: headers over http.max_header_bytes are 431, and a
// client that sends its headers too slowly is cut off after
// http.read_header_timeout.
func TestHostileHeaders(t *testing.T) {
	e := newRelEnv(t, func(_ testing.TB, e *relEnv) {
		e.cfg.HTTP.MaxHeaderBytes = 8 << 10
		e.cfg.HTTP.ReadHeaderTimeout = 300 * time.Millisecond
	})
	req, _ := e.signedRequest(t, e.pki.Nanhai, http.MethodPost, "/v1/exchanges", relXML, e.nanhaiCase(t))
	req.Header.Set("X-Padding", strings.Repeat("p", 64<<10))
	if a := e.do(t, req); a.Status != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status %d, want 431", a.Status)
	}

	conn, err := tls.Dial("tcp", e.cfg.Listen, e.client.Transport.(*http.Transport).TLSClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("POST /v1/exchanges HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(conn)
	if took := time.Since(begin); took > 3*time.Second {
		t.Errorf("a connection with unfinished headers was held %v (read header timeout 300 ms); err %v", took, err)
	}
}

// TestHostileCertificates: an expired partner certificate is refused
// (certificate_invalid), and a partner certificate from another CA stops
// the gateway from starting.
func TestHostileCertificates(t *testing.T) {
	dir := t.TempDir()
	if err := certs.InitDevPKI(dir); err != nil {
		t.Fatal(err)
	}
	pki, err := certs.LoadDevPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	var expired *certs.Signer
	e := newRelEnv(t, func(tb testing.TB, e *relEnv) {
		var err error
		expired, err = e.pki.IssueLeaf(certs.Identity{Role: certs.RolePartner, Partner: "nanhai", Division: "440605"},
			time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))
		if err != nil {
			tb.Fatal(err)
		}
		relWithPartnerCert("nanhai", expired.Certificate())(tb, e)
	})
	before := e.counts(t)
	req, _ := e.signedRequest(t, expired, http.MethodPost, "/v1/exchanges", relXML, e.nanhaiCase(t))
	relCheckProblem(t, e.do(t, req), 401, "certificate_invalid")
	if after := e.counts(t); after != before {
		t.Errorf("rows changed: %+v → %+v", before, after)
	}

	// Another CA's partner certificate in the configuration.
	cfg := &Config{Data: t.TempDir(), Listen: "127.0.0.1:0"}
	if err := cfg.ApplyDefaults(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(cfg.Data, "foreign.pem")
	if err := os.WriteFile(path, certs.EncodeCertificatePEM(pki.Nanhai.Certificate()), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Partners[0].Certificates = append(cfg.Partners[0].Certificates, path)
	if srv, err := NewServer(context.Background(), cfg, relQuiet()); err == nil {
		srv.Close()
		t.Fatal("a partner certificate of another CA was accepted at start")
	} else if !strings.Contains(err.Error(), "foreign.pem") {
		t.Errorf("error %v does not name the file", err)
	}
}

// TestHostileReplay: the very same signed request sent twice is accepted
// once and the second time refused as replayed, before anything else.
func TestHostileReplay(t *testing.T) {
	e := newRelEnv(t)
	body := e.nanhaiCase(t)
	req, _ := e.signedRequest(t, e.pki.Nanhai, http.MethodPost, "/v1/exchanges", relXML, body)
	again := req.Clone(context.Background())
	again.Body = io.NopCloser(bytes.NewReader(body))
	if a := e.do(t, req); a.Status != http.StatusAccepted {
		t.Fatalf("first: %d %s", a.Status, a.Body)
	}
	relWaitDelivered(t, e.srv) // its delivered entry is not the replay's doing
	before := e.counts(t)
	relCheckProblem(t, e.do(t, again), 401, "replayed")
	if after := e.counts(t); after != before {
		t.Errorf("rows changed: %+v → %+v", before, after)
	}
}

// TestHostileConcurrentReplay: copies of one signed case sent at once
// (so that they pass the replay check before the body together) are
// accepted once; every other copy is refused as replayed when its nonce,
// recorded with what the request writes, is found taken. A refused case's
// nonce is recorded too: its replay is 401, not the refusal again.
func TestHostileConcurrentReplay(t *testing.T) {
	e := newRelEnv(t)
	body := e.nanhaiCase(t)
	req, _ := e.signedRequest(t, e.pki.Nanhai, http.MethodPost, "/v1/exchanges", relXML, body)
	const copies = 6
	codes := make(chan string, copies)
	var wg sync.WaitGroup
	for range copies {
		r := req.Clone(context.Background())
		r.Body = io.NopCloser(bytes.NewReader(body))
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.client.Do(r)
			if err != nil {
				codes <- err.Error()
				return
			}
			defer resp.Body.Close()
			var p struct{ Code string }
			json.NewDecoder(resp.Body).Decode(&p)
			codes <- fmt.Sprintf("%d %s", resp.StatusCode, p.Code)
		}()
	}
	wg.Wait()
	close(codes)
	got := map[string]int{}
	for c := range codes {
		got[c]++
	}
	if got["202 "] != 1 || got["401 replayed"] != copies-1 {
		t.Errorf("answers %v, want one 202 and %d 401 replayed", got, copies-1)
	}
	if c := e.counts(t); c.Exchanges != 1 {
		t.Errorf("%d exchanges, want 1", c.Exchanges)
	}

	bad := []byte(`<?xml version="1.0" encoding="GBK"?><CASE><PROJECT_NO>1</PROJECT_NO></CASE>`)
	req, _ = e.signedRequest(t, e.pki.Nanhai, http.MethodPost, "/v1/exchanges", relXML, bad)
	again := req.Clone(context.Background())
	again.Body = io.NopCloser(bytes.NewReader(bad))
	first := e.do(t, req)
	if first.Status/100 != 4 || first.Status == 401 {
		t.Fatalf("the invalid case: %d %s, want its refusal", first.Status, first.Body)
	}
	relCheckProblem(t, e.do(t, again), 401, "replayed")
}

// TestHostileOthersCase: a partner that is not a district of an exchange
// can neither read it nor send it a status (404, as if it did not exist),
// and a district of the exchange cannot address it with a case number
// that is not its own.
func TestHostileOthersCase(t *testing.T) {
	var third *certs.Signer
	e := newRelEnv(t, func(tb testing.TB, e *relEnv) {
		var err error
		third, err = e.pki.IssueLeaf(certs.Identity{Role: certs.RolePartner, Partner: "liwan", Division: "440104"}, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
		if err != nil {
			tb.Fatal(err)
		}
		path := filepath.Join(e.dir, "third.pem")
		if err := os.WriteFile(path, certs.EncodeCertificatePEM(third.Certificate()), 0o644); err != nil {
			tb.Fatal(err)
		}
		e.cfg.Partners = append(e.cfg.Partners, PartnerConfig{ID: "liwan", Division: "440104", Endpoint: "http://127.0.0.1:1", Certificates: []string{path}})
	})
	body, caseNo, err := e.nanhai.NextCase(sim.SampleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.nanhai.SendCase(context.Background(), e.url, body)
	if err != nil || resp.Status != http.StatusAccepted {
		t.Fatalf("case: %v %+v", err, resp)
	}
	id := resp.Receipt.ExchangeID
	// Wait for Liwan's acknowledgement, so that the case has both numbers.
	var target string
	for deadline := time.Now().Add(10 * time.Second); target == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		ex, err := e.srv.Store.GetExchange(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		target = ex.TargetCaseNo
	}
	if target == "" {
		t.Fatal("case not delivered")
	}
	statusFrom := func(caseNo string) []byte {
		st := &adapters.StatusUpdate{CaseNo: caseNo, State: adapters.Approved, At: time.Now().Truncate(time.Second), Officer: "x"}
		b, err := e.liwan.Codec().EncodeStatus(st)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, c := range []struct {
		name   string
		signer *certs.Signer
		method string
		path   string
		body   []byte
	}{
		{"third district reads the exchange", third, http.MethodGet, "/v1/exchanges/" + id, nil},
		{"third district looks the case up", third, http.MethodGet, "/v1/cases/" + caseNo, nil},
		{"third district looks the target number up", third, http.MethodGet, "/v1/cases/" + target, nil},
		{"third district sends a status by exchange id", third, http.MethodPost, "/v1/exchanges/" + id + "/status", statusFrom(target)},
		{"third district sends a status by the case number", third, http.MethodPost, "/v1/status", statusFrom(target)},
		{"liwan addresses the exchange with a number not its own", e.pki.Liwan, http.MethodPost, "/v1/exchanges/" + id + "/status", statusFrom("LW2026112799999")},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := e.counts(t)
			ct := ""
			if c.body != nil {
				ct = relJSON
			}
			req, _ := e.signedRequest(t, c.signer, c.method, c.path, ct, c.body)
			a := e.do(t, req)
			relCheckProblem(t, a, 404, "not_found")
			// The same answer as for a case that does not exist: nothing
			// but the path the caller sent names the case.
			var doc map[string]any
			if err := json.Unmarshal(a.Body, &doc); err != nil {
				t.Fatal(err)
			}
			delete(doc, "instance")
			if rest, _ := json.Marshal(doc); bytes.Contains(rest, []byte(caseNo)) || bytes.Contains(rest, []byte(target)) || bytes.Contains(rest, []byte(id)) {
				t.Errorf("the refusal names the case: %s", a.Body)
			}
			after := e.counts(t)
			if after.Statuses != before.Statuses || after.Deliveries != before.Deliveries {
				t.Errorf("rows changed: %+v → %+v", before, after)
			}
		})
	}
}

// TestHostileFieldRules sends every refused row of the adapters' rules
// tables (every field rule of districts.md, cases and status updates) over
// real HTTP: each is 422 validation_failed naming exactly the rows' fields
// and codes in order, adds no row, and is one denied entry whose fields are
// those wire names.
func TestHostileFieldRules(t *testing.T) {
	e := newRelEnv(t)
	checked := 0
	for _, district := range []string{"nanhai", "liwan"} {
		signer, ct, render := e.pki.Nanhai, relXML, ruletest.NanhaiBody
		if district == "liwan" {
			signer, ct, render = e.pki.Liwan, relJSON, ruletest.LiwanBody
		}
		testdata := filepath.Join("..", "adapters", district, "testdata")
		base := filepath.Join(testdata, "base.json")
		for _, row := range ruletest.Rows(t, filepath.Join(testdata, "rules.json")) {
			if (row.Doc != "case" && row.Doc != "status") || len(row.Want) == 0 {
				continue
			}
			checked++
			t.Run(district+"/"+row.Name, func(t *testing.T) {
				path := "/v1/exchanges"
				if row.Doc == "status" {
					path = "/v1/status"
				}
				before := e.counts(t)
				req, _ := e.signedRequest(t, signer, http.MethodPost, path, ct, render(t, base, row))
				p := relCheckProblem(t, e.do(t, req), 422, "validation_failed")
				var got [][2]string
				var fields []string
				for _, fe := range p.Errors {
					got = append(got, [2]string{fe.Field, fe.Code})
					fields = append(fields, fe.Field)
				}
				if fmt.Sprint(got) != fmt.Sprint(row.Want) {
					t.Fatalf("errors %v, want %v", got, row.Want)
				}
				after := e.counts(t)
				if after.Exchanges != before.Exchanges || after.Statuses != before.Statuses || after.Deliveries != before.Deliveries || after.Log != before.Log+1 {
					t.Fatalf("counts %+v → %+v, want one denied entry and nothing else", before, after)
				}
				var d relDenied
				if err := json.Unmarshal(e.entry(t, before.Log).Bytes, &d); err != nil {
					t.Fatal(err)
				}
				if d.Kind != "denied" || d.Code != "validation_failed" || fmt.Sprint(d.Fields) != fmt.Sprint(fields) {
					t.Fatalf("entry %+v, want denied validation_failed with fields %v", d, fields)
				}
			})
		}
	}
	if checked < 150 {
		t.Errorf("only %d rules checked", checked)
	}
}
