package gateway_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/gateway"
	"github.com/tongban/tongban/gateway/exchangelog"
	"github.com/tongban/tongban/gateway/store"
	"github.com/tongban/tongban/httpsig"
	"github.com/tongban/tongban/internal/pkitest"
	"github.com/tongban/tongban/sim"
)

// pkiDir holds one dev PKI for the whole test binary (as `tongban certs
// init` lays it out); every gateway under test gets a copy in its data
// directory, so it starts the way `tongban serve` does on a second run.
var (
	pkiDir string
	pki    *certs.DevPKI
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	os.Exit(pkitest.Run(m, "gateway-pki", func(p *certs.DevPKI, dir string) { pki, pkiDir = p, dir }))
}

// copyPKI copies the shared dev PKI into dst.
func copyPKI(tb testing.TB, dst string) {
	tb.Helper()
	if err := os.MkdirAll(dst, 0o700); err != nil {
		tb.Fatal(err)
	}
	des, err := os.ReadDir(pkiDir)
	if err != nil {
		tb.Fatal(err)
	}
	for _, de := range des {
		b, err := os.ReadFile(filepath.Join(pkiDir, de.Name()))
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, de.Name()), b, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
}

// tlsClient trusts the dev PKI's TLS certificate (the gateway listener).
func tlsClient(tb testing.TB) *http.Client {
	tb.Helper()
	pem, err := os.ReadFile(pki.TLSCert)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		tb.Fatal("no TLS certificate in " + pki.TLSCert)
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
}

// simServer is a simulated district served over real HTTP on loopback.
type simServer struct {
	*sim.Partner
	url string
}

func newSim(tb testing.TB, division string, client *http.Client) *simServer {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	signer := pki.Nanhai
	if division == adapters.DivisionLiwan {
		signer = pki.Liwan
	}
	p, err := sim.New(sim.Options{Division: division, Signer: signer, Trust: pki.TrustStore(), PublicURL: url,
		HTTPClient: client, Logger: quietLogger()})
	if err != nil {
		tb.Fatal(err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}}
	srv.Start()
	tb.Cleanup(srv.Close)
	return &simServer{Partner: p, url: url}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// env is a whole gateway (gateway.NewServer + Server.Run on a loopback TLS
// listener, SQLite file in a temporary data directory, dev PKI) and both
// simulated districts.
type env struct {
	dir    string
	cfg    *gateway.Config
	srv    *gateway.Server
	url    string
	client *http.Client
	nanhai *simServer
	liwan  *simServer
}

// envOption changes the configuration after the defaults are applied.
type envOption func(tb testing.TB, cfg *gateway.Config)

// withMaxBody limits request bodies.
func withMaxBody(n int64) envOption {
	return func(_ testing.TB, cfg *gateway.Config) { cfg.MaxBodyBytes = n }
}

// withPartnerCert adds a certificate to the partner id's certificates.
func withPartnerCert(id string, cert *certs.Certificate) envOption {
	return func(tb testing.TB, cfg *gateway.Config) {
		path := filepath.Join(cfg.Data, fmt.Sprintf("extra-%s-%d.pem", id, time.Now().UnixNano()))
		if err := os.WriteFile(path, certs.EncodeCertificatePEM(cert), 0o644); err != nil {
			tb.Fatal(err)
		}
		for i := range cfg.Partners {
			if cfg.Partners[i].ID == id {
				cfg.Partners[i].Certificates = append(cfg.Partners[i].Certificates, path)
				return
			}
		}
		tb.Fatalf("no partner %s", id)
	}
}

// withThirdPartner configures a third district (Liwan's format, division
// division) whose key is signer; it takes part in no pilot item.
func withThirdPartner(division string, signer *certs.Signer) envOption {
	return func(tb testing.TB, cfg *gateway.Config) {
		path := filepath.Join(cfg.Data, "third.pem")
		if err := os.WriteFile(path, certs.EncodeCertificatePEM(signer.Certificate()), 0o644); err != nil {
			tb.Fatal(err)
		}
		cfg.Partners = append(cfg.Partners, gateway.PartnerConfig{ID: "liwan", Division: division,
			Endpoint: "http://127.0.0.1:1", Certificates: []string{path}})
	}
}

func newEnv(tb testing.TB, opts ...envOption) *env {
	tb.Helper()
	e := newParts(tb)
	e.start(tb, opts...)
	return e
}

// newParts makes the data directory (with the dev PKI) and the two
// simulated districts, without a gateway.
func newParts(tb testing.TB) *env {
	tb.Helper()
	client := tlsClient(tb)
	e := &env{dir: tb.TempDir(), client: client}
	copyPKI(tb, filepath.Join(e.dir, "certs"))
	e.nanhai = newSim(tb, adapters.DivisionNanhai, client)
	e.liwan = newSim(tb, adapters.DivisionLiwan, client)
	return e
}

// start runs a gateway on e's data directory until the test ends.
func (e *env) start(tb testing.TB, opts ...envOption) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	e.cfg = testConfig(tb, e.dir, ln.Addr().String(), e.nanhai.url, e.liwan.url)
	for _, o := range opts {
		o(tb, e.cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if e.srv, err = gateway.NewServer(ctx, e.cfg, quietLogger()); err != nil {
		cancel()
		tb.Fatal(err)
	}
	e.url = e.cfg.PublicURL
	done := make(chan error, 1)
	go func() { done <- e.srv.Run(ctx, ln) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Run: %v", err)
		}
	})
}

// testConfig is the configuration of a gateway with data directory dir
// listening on addr and delivering to the two simulated districts, with
// short backoffs.
func testConfig(tb testing.TB, dir, addr, nanhaiURL, liwanURL string) *gateway.Config {
	tb.Helper()
	cfg, err := makeConfig(dir, addr, nanhaiURL, liwanURL)
	if err != nil {
		tb.Fatal(err)
	}
	return cfg
}

func makeConfig(dir, addr, nanhaiURL, liwanURL string) (*gateway.Config, error) {
	cfg := &gateway.Config{Data: dir, Listen: addr}
	cfg.Delivery.InitialBackoff = 50 * time.Millisecond
	cfg.Delivery.MaxBackoff = 200 * time.Millisecond
	cfg.Log.CheckpointInterval = 100 * time.Millisecond
	if err := cfg.ApplyDefaults(); err != nil {
		return nil, err
	}
	for i := range cfg.Partners {
		switch cfg.Partners[i].ID {
		case "nanhai":
			cfg.Partners[i].Endpoint = nanhaiURL
		case "liwan":
			cfg.Partners[i].Endpoint = liwanURL
		}
	}
	return cfg, nil
}

// sim returns the simulated district of a partner id.
func (e *env) sim(id string) *simServer {
	if id == "nanhai" {
		return e.nanhai
	}
	return e.liwan
}

// other returns the simulated district that is not id.
func (e *env) other(id string) *simServer {
	if id == "nanhai" {
		return e.liwan
	}
	return e.nanhai
}

// answer is a raw HTTP answer.
type answer struct {
	Status int
	Header http.Header
	Body   []byte
}

// do sends req and reads the whole answer.
func (e *env) do(tb testing.TB, req *http.Request) *answer {
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
	return &answer{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// request builds a request to the gateway; a non-empty contentType is set.
func (e *env) request(tb testing.TB, method, path, contentType string) *http.Request {
	tb.Helper()
	req, err := http.NewRequest(method, e.url+path, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req
}

// signed sends a request signed by signer.
func (e *env) signed(tb testing.TB, signer *certs.Signer, method, path, contentType string, body []byte, opts ...httpsig.Option) *answer {
	tb.Helper()
	req := e.request(tb, method, path, contentType)
	if _, err := httpsig.SignRequest(req, body, signer, opts...); err != nil {
		tb.Fatal(err)
	}
	return e.do(tb, req)
}

// logSize is the current size of the exchange log.
func (e *env) logSize(tb testing.TB) uint64 {
	tb.Helper()
	n, err := e.srv.Store.LogSize(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// entriesFrom returns the log entries from index start on.
func (e *env) entriesFrom(tb testing.TB, start uint64) []store.StoredEntry {
	tb.Helper()
	ctx := context.Background()
	end, err := e.srv.Store.LogSize(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	es, err := e.srv.Store.Entries(ctx, start, end)
	if err != nil {
		tb.Fatal(err)
	}
	return es
}

// entryAt is the log entry at index i.
func (e *env) entryAt(tb testing.TB, i uint64) store.StoredEntry {
	tb.Helper()
	es, err := e.srv.Store.Entries(context.Background(), i, i+1)
	if err != nil || len(es) != 1 {
		tb.Fatalf("entry %d: %v (%d entries)", i, err, len(es))
	}
	return es[0]
}

// waitExchange polls the store until the exchange satisfies ok.
func (e *env) waitExchange(tb testing.TB, id string, what string, ok func(*store.Exchange) bool) *store.Exchange {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ex, err := e.srv.Store.GetExchange(context.Background(), id)
		if err != nil {
			tb.Fatal(err)
		}
		if ok(ex) {
			return ex
		}
		if time.Now().After(deadline) {
			tb.Fatalf("exchange %s: not %s in time (delivery %s, %s)", id, what, ex.DeliveryState, ex.DeliveryDetail)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitDelivered waits until the case of the exchange is delivered.
func (e *env) waitDelivered(tb testing.TB, id string) *store.Exchange {
	tb.Helper()
	return e.waitExchange(tb, id, "delivered", func(ex *store.Exchange) bool { return ex.DeliveryState == store.StateDelivered })
}

// waitDeliveries waits until every delivery of the exchange (the case and
// its status updates) is delivered and returns them by seq.
func (e *env) waitDeliveries(tb testing.TB, id string, n int) []store.Delivery {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ds, err := e.srv.Store.DeliveriesOf(context.Background(), id)
		if err != nil {
			tb.Fatal(err)
		}
		done := len(ds) == n
		for _, d := range ds {
			done = done && d.State == store.StateDelivered
		}
		if done {
			return ds
		}
		if time.Now().After(deadline) {
			tb.Fatalf("exchange %s: %d deliveries not all delivered in time: %+v", id, n, ds)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// received returns what a simulated district took in under key, waiting
// for it.
func received(tb testing.TB, s *simServer, key string) sim.Received {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, r := range s.Received() {
			if r.IdempotencyKey == key {
				return r
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("nothing received under %s", key)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// problem is an RFC 9457 problem document as gateway-api.md writes it.
type problem struct {
	Type     string                `json:"type"`
	Title    string                `json:"title"`
	Status   int                   `json:"status"`
	Code     string                `json:"code"`
	Detail   string                `json:"detail"`
	Instance string                `json:"instance"`
	Errors   []adapters.FieldError `json:"errors"`
	Decision *struct {
		Allow            bool     `json:"allow"`
		Mode             string   `json:"mode"`
		Revision         string   `json:"revision"`
		MissingMaterials []string `json:"missing_materials"`
		Reasons          []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"reasons"`
	} `json:"decision"`
	raw map[string]json.RawMessage
}

// checkProblem checks an answer is the problem+json of code with status,
// instance the path, and returns it.
func checkProblem(tb testing.TB, a *answer, status int, code, path string) *problem {
	tb.Helper()
	if a.Status != status {
		tb.Fatalf("HTTP %d, want %d (%s): %s", a.Status, status, code, a.Body)
	}
	if ct := a.Header.Get("Content-Type"); ct != "application/problem+json" {
		tb.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	var p problem
	if err := json.Unmarshal(a.Body, &p); err != nil {
		tb.Fatalf("problem: %v in %s", err, a.Body)
	}
	if err := json.Unmarshal(a.Body, &p.raw); err != nil {
		tb.Fatal(err)
	}
	if p.Code != code || p.Type != "urn:tongban:problem:"+code || p.Status != status || p.Title == "" || p.Instance != path {
		tb.Errorf("problem %s, want code %s, type urn:tongban:problem:%s, status %d, a title, instance %s", a.Body, code, code, status, path)
	}
	if _, ok := p.raw["errors"]; ok != (code == gateway.CodeValidationFailed) {
		tb.Errorf("errors member present=%v for %s: %s", ok, code, a.Body)
	}
	if _, ok := p.raw["decision"]; ok != (code == gateway.CodePolicyDenied) {
		tb.Errorf("decision member present=%v for %s: %s", ok, code, a.Body)
	}
	return &p
}

// deniedEntry is a `denied` log entry (exchange-log.md).
type deniedEntry struct {
	Kind        string          `json:"kind"`
	From        string          `json:"from"`
	Code        string          `json:"code"`
	Fields      []string        `json:"fields"`
	PolicyInput json.RawMessage `json:"policy_input"`
	Decision    json.RawMessage `json:"decision"`
	Request     struct {
		Digest        string `json:"digest"`
		SignatureBase string `json:"signature_base"`
		Signature     string `json:"signature"`
		KeyID         string `json:"keyid"`
	} `json:"request"`
}

// requestEntries returns the entries appended since before by requests,
// leaving out those the delivery worker appends meanwhile.
func requestEntries(tb testing.TB, e *env, before uint64) []store.StoredEntry {
	tb.Helper()
	var out []store.StoredEntry
	for _, en := range e.entriesFrom(tb, before) {
		switch en.Kind {
		case "delivered", "refused_by_partner", "dead":
			continue
		}
		out = append(out, en)
	}
	return out
}

// checkDenied checks that exactly one entry was appended since before by a
// request, a `denied` entry of code signed by signer, and returns it.
func checkDenied(tb testing.TB, e *env, before uint64, code string, signer *certs.Signer) deniedEntry {
	tb.Helper()
	es := requestEntries(tb, e, before)
	if len(es) != 1 {
		tb.Fatalf("%d log entries after a %s refusal, want 1 denied", len(es), code)
	}
	var d deniedEntry
	if err := json.Unmarshal(es[0].Bytes, &d); err != nil {
		tb.Fatal(err)
	}
	if es[0].Kind != "denied" || d.Kind != "denied" || d.Code != code {
		tb.Fatalf("entry %s, want a denied entry with code %s", es[0].Bytes, code)
	}
	if d.Request.KeyID != signer.KeyID() || d.Request.Signature == "" || d.Request.SignatureBase == "" || d.Request.Digest == "" {
		tb.Errorf("denied entry's request is not the signed request of %s: %s", signer.KeyID(), es[0].Bytes)
	}
	if want := map[*certs.Signer]string{pki.Nanhai: adapters.DivisionNanhai, pki.Liwan: adapters.DivisionLiwan}[signer]; want != "" && d.From != want {
		tb.Errorf("denied entry from %q, want %s", d.From, want)
	}
	if es[0].LeafHash != exchangelog.LeafHash(es[0].Bytes) {
		tb.Error("stored leaf hash is not SM3(0x00 ‖ entry)")
	}
	return d
}

// checkNoEntry checks no request appended an entry to the log since
// before.
func checkNoEntry(tb testing.TB, e *env, before uint64) {
	tb.Helper()
	if es := requestEntries(tb, e, before); len(es) != 0 {
		tb.Errorf("a refusal that is not logged wrote %d log entries: %s", len(es), es[0].Bytes)
	}
}

// personalData lists the personal data of a case: names, ID numbers,
// mobile numbers (with and without +86), the address.
func personalData(c *adapters.Case) []string {
	var out []string
	add := func(s string) {
		if s != "" {
			out = append(out, s)
		}
	}
	for _, p := range []adapters.Party{c.Applicant, c.Contact} {
		add(p.Name)
		add(p.IDNumber)
		add(p.LegalRepresentative)
		add(p.Mobile)
		add(strings.TrimPrefix(p.Mobile, "+86"))
	}
	add(c.Address)
	return out
}

// checkNoPersonalData checks no entry since before holds any of pii (as
// UTF-8, or JSON-escaped).
func checkNoPersonalData(tb testing.TB, e *env, before uint64, pii []string) {
	tb.Helper()
	for _, en := range e.entriesFrom(tb, before) {
		for _, s := range pii {
			esc, _ := json.Marshal(s)
			if bytes.Contains(en.Bytes, []byte(s)) || bytes.Contains(en.Bytes, bytes.Trim(esc, `"`)) {
				tb.Errorf("log entry %d (%s) holds personal data %q", en.Index, en.Kind, s)
			}
		}
	}
}

// checkReceipt checks a receipt against the log entry it names: index and
// leaf hash of the stored entry, of kind, for the exchange.
func checkReceipt(tb testing.TB, e *env, rc *sim.Receipt, kind string) store.StoredEntry {
	tb.Helper()
	if rc == nil {
		tb.Fatal("no verified receipt")
	}
	en := e.entryAt(tb, rc.LogIndex)
	lh := exchangelog.LeafHash(en.Bytes)
	if hex.EncodeToString(lh[:]) != rc.LeafHash || en.LeafHash != lh {
		tb.Errorf("receipt leaf hash %s, entry %d hashes to %x (stored %x)", rc.LeafHash, rc.LogIndex, lh, en.LeafHash)
	}
	if en.Kind != kind || en.Exchange != rc.ExchangeID {
		tb.Errorf("entry %d is %s of %q, want %s of %s", rc.LogIndex, en.Kind, en.Exchange, kind, rc.ExchangeID)
	}
	return en
}

// mustOK fails unless err is nil.
func mustOK(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// send posts a record with a simulated district's signed client and checks
// the status.
func send(tb testing.TB, what string, resp *sim.Response, err error, status int) *sim.Response {
	tb.Helper()
	if err != nil {
		if errors.Is(err, sim.ErrReceiptUnverified) {
			tb.Fatalf("%s: %v", what, err)
		}
		tb.Fatalf("%s: %v", what, err)
	}
	if resp.Status != status {
		tb.Fatalf("%s: HTTP %d, want %d: %s", what, resp.Status, status, resp.Body)
	}
	if (status == http.StatusAccepted || status == http.StatusOK) && resp.Receipt == nil {
		tb.Fatalf("%s: HTTP %d without a verified receipt", what, status)
	}
	return resp
}
