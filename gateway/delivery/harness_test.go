package delivery_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/adapters/liwan"
	"github.com/tongban/tongban/adapters/nanhai"
	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/gateway/delivery"
	"github.com/tongban/tongban/gateway/exchangelog"
	"github.com/tongban/tongban/gateway/store"
	"github.com/tongban/tongban/httpsig"
	"github.com/tongban/tongban/internal/pkitest"
	"github.com/tongban/tongban/sim"
)

// pki is one dev PKI for the whole test binary (InitDevPKI as `tongban
// certs init` lays it out).
var pki *certs.DevPKI

func TestMain(m *testing.M) {
	os.Exit(pkitest.Run(m, "delivery-pki", func(p *certs.DevPKI, _ string) { pki = p }))
}

// simServer is a simulated partner served over real HTTP on loopback. Its
// address is fixed at creation, so it can be stopped and started again
// (a partner that is down, then up).
type simServer struct {
	*sim.Partner
	addr string
	url  string

	mu  sync.Mutex
	srv *httptest.Server
}

// newSim creates a partner of division listening on a fresh loopback port;
// started=false reserves the address without listening (connections are
// refused until start).
func newSim(t testing.TB, division string, started bool) *simServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	signer := pki.Nanhai
	if division == adapters.DivisionLiwan {
		signer = pki.Liwan
	}
	p, err := sim.New(sim.Options{Division: division, Signer: signer, Trust: pki.TrustStore(), PublicURL: "http://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	s := &simServer{Partner: p, addr: addr, url: "http://" + addr}
	if started {
		s.serve(t, ln)
	} else {
		ln.Close()
	}
	t.Cleanup(s.stop)
	return s
}

func (s *simServer) serve(t testing.TB, ln net.Listener) {
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: s.Partner}}
	srv.Start()
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
}

// start listens on the partner's address again.
func (s *simServer) start(t testing.TB) {
	t.Helper()
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen again on %s: %v", s.addr, err)
	}
	s.serve(t, ln)
}

func (s *simServer) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		s.srv.CloseClientConnections()
		s.srv.Close()
		s.srv = nil
	}
}

// env is a SQLite store in a temporary directory and the two partners.
type env struct {
	dbPath string
	st     store.Store
	nanhai *simServer
	liwan  *simServer
	now    time.Time
	// translatedSM3, when set, gives the digest queueCase stores with the
	// delivery (the gateway stores the SM3 of the record); unset, none is
	// stored and the worker hashes the payload itself.
	translatedSM3 func(translated []byte) [32]byte
}

func newEnv(t testing.TB, nanhaiUp, liwanUp bool) *env {
	t.Helper()
	e := &env{dbPath: filepath.Join(t.TempDir(), "tongban.db"), now: time.Now()}
	e.st = openStore(t, e.dbPath)
	e.nanhai = newSim(t, adapters.DivisionNanhai, nanhaiUp)
	e.liwan = newSim(t, adapters.DivisionLiwan, liwanUp)
	return e
}

func openStore(t testing.TB, path string) store.Store {
	t.Helper()
	st, err := store.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// fast are worker options scaled down for tests: the same logic, shorter
// waits.
func (e *env) options(st store.Store) delivery.Options {
	return delivery.Options{
		Store:  st,
		Signer: pki.Gateway,
		Trust:  pki.TrustStore(),
		Partners: []delivery.Partner{
			{Division: adapters.DivisionNanhai, Endpoint: e.nanhai.url, Codec: nanhai.Codec},
			{Division: adapters.DivisionLiwan, Endpoint: e.liwan.url, Codec: liwan.Codec},
		},
		MaxAttempts:      12,
		InitialBackoff:   20 * time.Millisecond,
		MaxBackoff:       200 * time.Millisecond,
		AttemptTimeout:   3 * time.Second,
		QuickRetries:     2,
		QuickRetryMin:    5 * time.Millisecond,
		QuickRetryMax:    20 * time.Millisecond,
		PollInterval:     20 * time.Millisecond,
		BreakerThreshold: -1,
		Logger:           slog.New(slog.DiscardHandler),
	}
}

// run starts a worker and stops it when the test ends (or when the
// returned stop is called).
func run(t testing.TB, o delivery.Options) (w *delivery.Worker, stop func()) {
	t.Helper()
	w, err := delivery.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return w, stop
}

// queueCase stores an accepted exchange as the gateway would after a 202:
// a real sample case sent by from, translated for the other district by
// the codecs, its exchange entry with the sender's real signature, and
// its queued delivery.
func (e *env) queueCase(t testing.TB, from *simServer, seq int) *store.Exchange {
	t.Helper()
	body, err := from.SampleCase(seq, sim.SampleOptions{At: e.now})
	if err != nil {
		t.Fatal(err)
	}
	fromCodec, toCodec, signer := nanhai.Codec, liwan.Codec, pki.Nanhai
	implCode := "11440103MB2D31010A000105001000"
	if from.Division() == adapters.DivisionLiwan {
		fromCodec, toCodec, signer = liwan.Codec, nanhai.Codec, pki.Liwan
		implCode = "11440605MB2C32020N000114001000"
	}
	c, err := fromCodec.DecodeCase(body)
	if err != nil {
		t.Fatalf("sample case does not decode: %v", err)
	}
	d := c.ForDelivery(from.Division(), adapters.ModeRemoteReceipt, implCode, 6)
	translated, err := toCodec.EncodeCase(&d)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "https://127.0.0.1:8443/v1/exchanges", nil)
	req.Header.Set("Content-Type", fromCodec.ContentType())
	signed, err := httpsig.SignRequest(req, body, signer)
	if err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("01JTEST%s%04d", from.Division(), seq)
	now := time.Now()
	policyInput := json.RawMessage(`{"item":"` + c.Item.BasicCode + `"}`)
	decision := json.RawMessage(`{"allow":true,"mode":"REMOTE_RECEIPT"}`)
	entry := &exchangelog.ExchangeEntry{
		Header: exchangelog.Header{Time: now}, Exchange: id, From: from.Division(), To: c.OwnerDivision,
		Item: c.Item.BasicCode, SourceCase: c.CaseNo, PolicyInput: policyInput, Decision: decision,
		Request:    exchangelog.Signed(*signed),
		Translated: exchangelog.Digest{Digest: certs.SM3Hex(translated)},
	}
	b, err := exchangelog.Marshal(entry)
	if err != nil {
		t.Fatal(err)
	}
	ex := &store.Exchange{
		ID: id, From: from.Division(), To: c.OwnerDivision, SourceCaseNo: c.CaseNo, Item: c.Item.BasicCode,
		Mode: string(adapters.ModeRemoteReceipt), Revision: "test", RequestDigest: signed.Digest,
		ContentType: fromCodec.ContentType(), Request: body, Translated: translated,
		PolicyInput: policyInput, Decision: decision, CreatedAt: now,
	}
	if e.translatedSM3 != nil {
		ex.TranslatedSM3 = e.translatedSM3(translated)
	}
	la := store.LogAppend{Kind: exchangelog.KindExchange, Exchange: id, Time: now, Bytes: b, LeafHash: exchangelog.LeafHash(b)}
	got, err := e.st.CreateExchange(context.Background(), ex, la, func(p store.LogPosition) ([]byte, error) {
		return []byte(fmt.Sprintf(`{"exchangeId":%q,"state":"queued","logIndex":%d}`, id, p.Index)), nil
	})
	if err != nil {
		t.Fatalf("CreateExchange: %v", err)
	}
	return got
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func delivery1(t testing.TB, st store.Store, id string) *store.Delivery {
	t.Helper()
	d, err := st.GetDelivery(context.Background(), id)
	if err != nil {
		t.Fatalf("GetDelivery %s: %v", id, err)
	}
	return d
}

func waitState(t testing.TB, st store.Store, id, state string, timeout time.Duration) *store.Delivery {
	t.Helper()
	var d *store.Delivery
	waitFor(t, fmt.Sprintf("delivery %s to be %s", id, state), timeout, func() bool {
		d = delivery1(t, st, id)
		return d.State == state
	})
	return d
}

// entriesOf returns the parsed log entries of an exchange.
func entriesOf(t testing.TB, st store.Store, exchangeID string) []exchangelog.Entry {
	t.Helper()
	stored, err := st.EntriesOfExchange(context.Background(), exchangeID)
	if err != nil {
		t.Fatal(err)
	}
	var out []exchangelog.Entry
	for _, s := range stored {
		e, err := exchangelog.ParseEntry(s.Bytes)
		if err != nil {
			t.Fatalf("entry %d: %v", s.Index, err)
		}
		if s.LeafHash != exchangelog.LeafHash(s.Bytes) {
			t.Fatalf("entry %d: stored leaf hash is not SM3(0x00 ‖ entry)", s.Index)
		}
		out = append(out, e)
	}
	return out
}

func kinds(es []exchangelog.Entry) []string {
	var k []string
	for _, e := range es {
		k = append(k, exchangelog.Kind(e))
	}
	return k
}

// noDuplicates checks, by the simulator's own record, that the partner
// took in each key once and never the same case under two keys.
func noDuplicates(t testing.TB, s *simServer) {
	t.Helper()
	seen := map[string]bool{}
	for _, r := range s.Received() {
		if seen[r.IdempotencyKey] {
			t.Errorf("%s took in key %s twice", s.Division(), r.IdempotencyKey)
		}
		seen[r.IdempotencyKey] = true
	}
	if d := s.Duplicates(); len(d) != 0 {
		t.Errorf("%s received duplicates: %v", s.Division(), d)
	}
}

// checkAcknowledged checks a delivered or refused entry as an auditor
// would (exchange-log.md, "What an auditor checks offline", item 4).
func checkAcknowledged(t testing.TB, ex *store.Exchange, delivered, ack exchangelog.Signed, to string) {
	t.Helper()
	gw := pki.Gateway.Certificate()
	if err := httpsig.VerifySigned((*httpsig.Signed)(&delivered), gw); err != nil {
		t.Errorf("delivery signature: %v", err)
	}
	if delivered.Digest != certs.SM3Hex(ex.Translated) {
		t.Errorf("delivery digest %s is not the SM3 of the translated record", delivered.Digest)
	}
	partner := pki.Liwan
	if to == adapters.DivisionNanhai {
		partner = pki.Nanhai
	}
	if ack.KeyID != partner.KeyID() {
		t.Errorf("ack keyid %s is not partner %s's", ack.KeyID, to)
	}
	if err := httpsig.VerifySigned((*httpsig.Signed)(&ack), partner.Certificate()); err != nil {
		t.Errorf("ack signature: %v", err)
	}
	dl, err := httpsig.ParseBase(delivered.SignatureBase)
	if err != nil {
		t.Fatal(err)
	}
	al, err := httpsig.ParseBase(ack.SignatureBase)
	if err != nil {
		t.Fatal(err)
	}
	if al["@status"] != "200" {
		t.Errorf("ack base status %q", al["@status"])
	}
	for _, c := range []string{"@method", "@target-uri", "content-digest"} {
		if al[c+";req"] != dl[c] {
			t.Errorf("ack %s;req = %q, delivery %s = %q", c, al[c+";req"], c, dl[c])
		}
	}
	if dl["idempotency-key"] == "" {
		t.Errorf("the delivery signature does not cover idempotency-key")
	}
}

// addStatus stores a status update of ex sent by its owner (Liwan's
// simulator, in its format, by its own case number), translated for the
// sender of the case, as the gateway would; it queues the status delivery.
func (e *env) addStatus(t testing.TB, ex *store.Exchange, state adapters.State) *store.StatusUpdate {
	t.Helper()
	owner, sender := e.liwan, e.nanhai
	ownerCodec, senderCodec, signer := liwan.Codec, nanhai.Codec, pki.Liwan
	if ex.To == adapters.DivisionNanhai {
		owner, sender = e.nanhai, e.liwan
		ownerCodec, senderCodec, signer = nanhai.Codec, liwan.Codec, pki.Nanhai
	}
	_ = sender
	body, err := owner.SampleStatus(ex.TargetCaseNo, state, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	su, err := ownerCodec.DecodeStatus(body)
	if err != nil {
		t.Fatalf("sample status does not decode: %v", err)
	}
	su.CaseNo = ex.SourceCaseNo
	translated, err := senderCodec.EncodeStatus(su)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "https://127.0.0.1:8443/v1/status", nil)
	req.Header.Set("Content-Type", ownerCodec.ContentType())
	signed, err := httpsig.SignRequest(req, body, signer)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	b, err := exchangelog.Marshal(&exchangelog.StatusEntry{
		Header: exchangelog.Header{Time: now}, Exchange: ex.ID, From: ex.To, To: ex.From, State: string(state),
		Request: exchangelog.Signed(*signed), Translated: exchangelog.Digest{Digest: certs.SM3Hex(translated)},
	})
	if err != nil {
		t.Fatal(err)
	}
	st := &store.StatusUpdate{
		ExchangeID: ex.ID, From: ex.To, To: ex.From, State: string(state), At: now,
		RequestDigest: signed.Digest, Request: body, Translated: translated, CreatedAt: now,
	}
	la := store.LogAppend{Kind: exchangelog.KindStatus, Exchange: ex.ID, Time: now, Bytes: b, LeafHash: exchangelog.LeafHash(b)}
	got, err := e.st.AddStatus(context.Background(), st, func(s string) bool { return adapters.State(s).Terminal() }, la,
		func(p store.LogPosition) ([]byte, error) { return []byte(`{"state":"queued"}`), nil })
	if err != nil {
		t.Fatalf("AddStatus: %v", err)
	}
	return got
}

// deliverByHand POSTs ex's delivery to partner as a gateway worker would,
// and returns the answer's status: for simulating a worker that died after
// its request reached the partner.
func deliverByHand(t testing.TB, partner *simServer, ex *store.Exchange) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, partner.url+"/cases", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", partner.Codec().ContentType())
	req.Header.Set("Idempotency-Key", ex.ID)
	if _, err := httpsig.SignRequest(req, ex.Translated, pki.Gateway, httpsig.WithIdempotencyKey()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
