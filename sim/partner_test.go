package sim_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/adapters/liwan"
	"github.com/tongban/tongban/adapters/nanhai"
	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/httpsig"
	"github.com/tongban/tongban/internal/pkitest"
	"github.com/tongban/tongban/sim"
)

var pki *certs.DevPKI

func TestMain(m *testing.M) {
	os.Exit(pkitest.Run(m, "sim-pki", func(p *certs.DevPKI, _ string) { pki = p }))
}

var caseNoFormat = map[string]*regexp.Regexp{
	adapters.DivisionNanhai: regexp.MustCompile(`^440605\d{8}\d{4}$`),
	adapters.DivisionLiwan:  regexp.MustCompile(`^LW\d{8}\d{5}$`),
}

func codecOf(division string) adapters.Codec {
	if division == adapters.DivisionNanhai {
		return nanhai.Codec
	}
	return liwan.Codec
}

func signerOf(division string) *certs.Signer {
	if division == adapters.DivisionNanhai {
		return pki.Nanhai
	}
	return pki.Liwan
}

// served starts a partner on loopback over real HTTP.
func served(t *testing.T, division string) (*sim.Partner, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	p, err := sim.New(sim.Options{Division: division, Signer: signerOf(division), Trust: pki.TrustStore(), PublicURL: url})
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: p}}
	srv.Start()
	t.Cleanup(srv.Close)
	return p, url
}

// deliveredCase is a case as tongban delivers it to division: the other
// district's sample, translated.
func deliveredCase(t *testing.T, division string, seq int) []byte {
	t.Helper()
	return deliveredCaseSized(t, division, seq, 0)
}

// deliveredCaseSized: deliveredCase with materials of matSize bytes (0:
// the samples' default).
func deliveredCaseSized(t *testing.T, division string, seq, matSize int) []byte {
	t.Helper()
	other := adapters.DivisionLiwan
	if division == adapters.DivisionLiwan {
		other = adapters.DivisionNanhai
	}
	sender, err := sim.New(sim.Options{Division: other, Signer: signerOf(other), Trust: pki.TrustStore(), PublicURL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	body, err := sender.SampleCase(seq, sim.SampleOptions{MaterialSize: matSize})
	if err != nil {
		t.Fatal(err)
	}
	c, err := codecOf(other).DecodeCase(body)
	if err != nil {
		t.Fatal(err)
	}
	d := c.ForDelivery(other, adapters.ModeRemoteReceipt, "IMPL", 6)
	out, err := codecOf(division).EncodeCase(&d)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type answer struct {
	status int
	body   []byte
	ack    *adapters.Ack
	err    error // of the signature check of a 200
}

// deliver POSTs body to the partner as tongban does: signed by signer,
// covering Idempotency-Key.
func deliver(t *testing.T, p *sim.Partner, url, route, key string, body []byte, signer *certs.Signer) answer {
	t.Helper()
	return send(t, p, deliveryRequest(t, p, url, route, key, body, signer))
}

func deliveryRequest(t *testing.T, p *sim.Partner, url, route, key string, body []byte, signer *certs.Signer) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+route, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", p.Codec().ContentType())
	req.Header.Set("Idempotency-Key", key)
	if _, err := httpsig.SignRequest(req, body, signer, httpsig.WithIdempotencyKey()); err != nil {
		t.Fatal(err)
	}
	return req
}

func send(t *testing.T, p *sim.Partner, req *http.Request) answer {
	t.Helper()
	a, err := post(p, req)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// post sends req and checks the answer as tongban does; err only when
// nothing was answered (safe to call outside the test's goroutine).
func post(p *sim.Partner, req *http.Request) (answer, error) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, body: b}
	if resp.StatusCode != http.StatusOK {
		return a, nil
	}
	partner := func(id certs.Identity) bool { return id.Role == certs.RolePartner && id.Division == p.Division() }
	if _, _, a.err = httpsig.VerifyResponse(resp, b, req, pki.TrustStore(), partner); a.err == nil {
		a.ack, a.err = p.Codec().DecodeAck(b)
	}
	return a, nil
}

func TestSampleCasesAreValid(t *testing.T) {
	for _, div := range []string{adapters.DivisionNanhai, adapters.DivisionLiwan} {
		p, err := sim.New(sim.Options{Division: div, Signer: signerOf(div), Trust: pki.TrustStore(), PublicURL: "http://127.0.0.1:1"})
		if err != nil {
			t.Fatal(err)
		}
		at := time.Date(2026, 11, 27, 9, 30, 15, 0, time.FixedZone("CST", 8*3600))
		for _, seq := range []int{1, 42, 9999} {
			body, err := p.SampleCase(seq, sim.SampleOptions{At: at})
			if err != nil {
				t.Fatalf("%s SampleCase(%d): %v", div, seq, err)
			}
			c, err := p.Codec().DecodeCase(body)
			if err != nil {
				t.Fatalf("%s sample %d does not decode: %v", div, seq, err)
			}
			if !caseNoFormat[div].MatchString(c.CaseNo) || c.OwnerDivision == div || len(c.Materials) != 4 {
				t.Errorf("%s sample %d: case %s owner %s, %d materials", div, seq, c.CaseNo, c.OwnerDivision, len(c.Materials))
			}
		}
		if _, err := p.SampleCase(0, sim.SampleOptions{}); err == nil {
			t.Errorf("%s: sequence 0 accepted", div)
		}
		st, err := p.SampleStatus(caseNoFor(div), adapters.Approved, at)
		if err != nil {
			t.Fatal(err)
		}
		su, err := p.Codec().DecodeStatus(st)
		if err != nil {
			t.Fatalf("%s sample status does not decode: %v", div, err)
		}
		if su.State != adapters.Approved || su.Certificate == nil {
			t.Errorf("%s status %+v", div, su)
		}
	}
}

func caseNoFor(div string) string {
	if div == adapters.DivisionNanhai {
		return "440605202611270201"
	}
	return "LW2026112700123"
}

func TestDeliveryAcknowledged(t *testing.T) {
	for _, div := range []string{adapters.DivisionNanhai, adapters.DivisionLiwan} {
		t.Run(div, func(t *testing.T) {
			p, url := served(t, div)
			body := deliveredCase(t, div, 1)
			a := deliver(t, p, url, "/cases", "01JX1", body, pki.Gateway)
			if a.status != http.StatusOK || a.err != nil {
				t.Fatalf("answer %d %s: %v", a.status, a.body, a.err)
			}
			if !a.ack.Accepted || !caseNoFormat[div].MatchString(a.ack.CaseNo) {
				t.Fatalf("ack %+v", a.ack)
			}
			// A repeat, signed anew, gets the same acknowledgement.
			again := deliver(t, p, url, "/cases", "01JX1", body, pki.Gateway)
			if again.err != nil || !bytes.Equal(again.body, a.body) {
				t.Fatalf("repeat answered %s (%v), first %s", again.body, again.err, a.body)
			}
			// Another case gets the next number.
			b := deliver(t, p, url, "/cases", "01JX2", deliveredCase(t, div, 2), pki.Gateway)
			if b.err != nil || b.ack.CaseNo == a.ack.CaseNo || b.ack.CaseNo[len(b.ack.CaseNo)-1] != '2' {
				t.Fatalf("second case %+v (%v)", b.ack, b.err)
			}
			// The same key with another body is a conflict, not an ack.
			if c := deliver(t, p, url, "/cases", "01JX1", deliveredCase(t, div, 3), pki.Gateway); c.status != http.StatusConflict {
				t.Errorf("reused key with another body: %d", c.status)
			}
			// A status update of the case.
			st, err := p.SampleStatus(a.ack.CaseNo, adapters.InReview, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			s := deliver(t, p, url, "/status", "01JX1.1", st, pki.Gateway)
			if s.err != nil || !s.ack.Accepted || s.ack.CaseNo != a.ack.CaseNo {
				t.Fatalf("status ack %+v (%v)", s.ack, s.err)
			}
			got := p.Received()
			if len(got) != 3 || got[0].CaseNo != a.ack.CaseNo || got[2].Kind != sim.KindStatus {
				t.Fatalf("received %+v", got)
			}
			if p.Requests("01JX1") != 3 || p.Requests("01JX2") != 1 {
				t.Errorf("requests %d %d", p.Requests("01JX1"), p.Requests("01JX2"))
			}
			if d := p.Duplicates(); len(d) != 0 {
				t.Errorf("duplicates %v", d)
			}
		})
	}
}

// TestConcurrentRepeats: records are decoded outside the partner's lock;
// repeats of one key arriving together must still be taken in once, and
// all get the first acknowledgement (one number).
func TestConcurrentRepeats(t *testing.T) {
	p, url := served(t, adapters.DivisionLiwan)
	const n = 6
	reqs := make([]*http.Request, 2*n)
	for i := range reqs {
		key, seq := "01JXA", 1 // half repeat one key, half are other cases
		if i%2 == 1 {
			key, seq = fmt.Sprintf("01JXB%02d", i), 10+i
		}
		// Large materials: decoding takes long enough for the repeats to
		// overlap.
		reqs[i] = deliveryRequest(t, p, url, "/cases", key, deliveredCaseSized(t, adapters.DivisionLiwan, seq, 256<<10), pki.Gateway)
	}
	answers := make([]answer, len(reqs))
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Go(func() { answers[i], errs[i] = post(p, req) })
	}
	wg.Wait()
	numbers := map[string]bool{}
	for i, a := range answers {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		if a.status != http.StatusOK || a.err != nil || !a.ack.Accepted {
			t.Fatalf("answer %d: %d %s (%v)", i, a.status, a.body, a.err)
		}
		if i%2 == 0 && !bytes.Equal(a.body, answers[0].body) {
			t.Errorf("repeat %d answered %s, first %s", i, a.body, answers[0].body)
		}
		numbers[a.ack.CaseNo] = true
	}
	if got := len(p.Received()); got != n+1 || len(numbers) != n+1 {
		t.Errorf("took in %d records with %d numbers, want %d", got, len(numbers), n+1)
	}
	if p.Requests("01JXA") != n {
		t.Errorf("requests of the repeated key: %d", p.Requests("01JXA"))
	}
}

func TestDeliveryRefusedBeforeProcessing(t *testing.T) {
	p, url := served(t, adapters.DivisionLiwan)
	body := deliveredCase(t, adapters.DivisionLiwan, 1)

	// Signed by a partner, not by the gateway.
	if a := deliver(t, p, url, "/cases", "k1", body, pki.Nanhai); a.status != http.StatusForbidden {
		t.Errorf("delivery signed by nanhai: %d %s", a.status, a.body)
	}
	// Without the Idempotency-Key covered.
	req, _ := http.NewRequest(http.MethodPost, url+"/cases", nil)
	req.Header.Set("Content-Type", p.Codec().ContentType())
	req.Header.Set("Idempotency-Key", "k2")
	if _, err := httpsig.SignRequest(req, body, pki.Gateway); err != nil {
		t.Fatal(err)
	}
	if a := send(t, p, req); a.status != http.StatusUnauthorized {
		t.Errorf("idempotency-key not covered: %d %s", a.status, a.body)
	}
	// A replayed signature.
	req, _ = http.NewRequest(http.MethodPost, url+"/cases", nil)
	req.Header.Set("Content-Type", p.Codec().ContentType())
	req.Header.Set("Idempotency-Key", "k3")
	if _, err := httpsig.SignRequest(req, body, pki.Gateway, httpsig.WithIdempotencyKey()); err != nil {
		t.Fatal(err)
	}
	replay, _ := http.NewRequest(http.MethodPost, url+"/cases", bytes.NewReader(body))
	replay.Header = req.Header.Clone()
	if a := send(t, p, req); a.status != http.StatusOK || a.err != nil {
		t.Fatalf("first: %d %v", a.status, a.err)
	}
	if a := send(t, p, replay); a.status != http.StatusUnauthorized || !bytes.Contains(a.body, []byte("replayed")) {
		t.Errorf("replay: %d %s", a.status, a.body)
	}
	if n := len(p.Received()); n != 1 {
		t.Errorf("took in %d records", n)
	}
}

func TestFaultKnobs(t *testing.T) {
	p, url := served(t, adapters.DivisionNanhai)
	body := deliveredCase(t, adapters.DivisionNanhai, 1)

	p.FailNext(2, http.StatusBadGateway)
	for i := range 2 {
		if a := deliver(t, p, url, "/cases", "k", body, pki.Gateway); a.status != http.StatusBadGateway {
			t.Fatalf("failure %d: %d", i, a.status)
		}
	}
	if len(p.Received()) != 0 || p.Requests("k") != 2 {
		t.Fatalf("a failed request was taken in (%d) or not counted (%d)", len(p.Received()), p.Requests("k"))
	}

	p.BadSignature(true)
	a := deliver(t, p, url, "/cases", "k", body, pki.Gateway)
	if a.status != http.StatusOK || !errors.Is(a.err, httpsig.ErrSignatureInvalid) && !errors.Is(a.err, httpsig.ErrSignatureMalformed) {
		t.Fatalf("bad signature: %d %v", a.status, a.err)
	}
	p.BadSignature(false)
	if b := deliver(t, p, url, "/cases", "k", body, pki.Gateway); b.err != nil || !bytes.Equal(b.body, a.body) {
		t.Fatalf("after the bad signature: %v %s", b.err, b.body)
	}

	p.Refuse("事项不属本区")
	r := deliver(t, p, url, "/cases", "k2", deliveredCase(t, adapters.DivisionNanhai, 2), pki.Gateway)
	if r.err != nil || r.ack.Accepted || r.ack.Reason != "事项不属本区" {
		t.Fatalf("refusal %+v %v", r.ack, r.err)
	}
	p.Refuse("")
	if r2 := deliver(t, p, url, "/cases", "k2", deliveredCase(t, adapters.DivisionNanhai, 2), pki.Gateway); r2.err != nil || r2.ack.Accepted {
		t.Errorf("a refused record's repeat was accepted: %+v", r2.ack)
	}

	p.Down(true)
	req, _ := http.NewRequest(http.MethodPost, url+"/cases", bytes.NewReader(body))
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("down partner answered %d", resp.StatusCode)
	}
	p.Down(false)

	// A record that does not decode is refused with the reason.
	bad := deliver(t, p, url, "/cases", "k3", []byte(`<?xml version="1.0" encoding="GBK"?><CASE></CASE>`), pki.Gateway)
	if bad.err != nil || bad.ack.Accepted || bad.ack.Reason == "" {
		t.Errorf("invalid case: %+v %v", bad.ack, bad.err)
	}
}

// fakeGateway verifies partner requests and answers a receipt signed by
// signer, as tongban's transport does.
func fakeGateway(t *testing.T, signer *certs.Signer, status int) string {
	t.Helper()
	url, _ := fakeGatewayPaths(t, signer, status)
	return url
}

// fakeGatewayPaths is fakeGateway, also giving the paths it was sent to.
func fakeGatewayPaths(t *testing.T, signer *certs.Signer, status int) (string, *[]string) {
	t.Helper()
	var paths []string
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	v := &httpsig.Verifier{Trust: pki.TrustStore(), PublicURL: url}
	h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ := httpsig.FromContext(r.Context())
		paths = append(paths, r.URL.Path)
		if got.Identity.Role != certs.RolePartner {
			httpsig.WriteError(w, r, httpsig.ErrForbidden)
			return
		}
		if status >= 400 {
			httpsig.WriteProblem(w, r, status, "policy_denied", "Denied", "", nil)
			return
		}
		body := []byte(`{"exchangeId":"01JDFAKE","state":"queued","logIndex":7,"leafHash":"00","decision":{"allow":true,"mode":"REMOTE_RECEIPT","revision":"ab"}}`)
		w.Header().Set("Content-Type", "application/json")
		if _, err := httpsig.SignResponse(w.Header(), status, body, got.Components, signer); err != nil {
			t.Error(err)
		}
		w.WriteHeader(status)
		w.Write(body)
	}))
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: h}}
	srv.Start()
	t.Cleanup(srv.Close)
	return url, &paths
}

func TestSendCase(t *testing.T) {
	p, err := sim.New(sim.Options{Division: adapters.DivisionNanhai, Signer: pki.Nanhai, Trust: pki.TrustStore(), PublicURL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	body, no, err := p.NextCase(sim.SampleOptions{})
	if err != nil || !caseNoFormat[adapters.DivisionNanhai].MatchString(no) {
		t.Fatalf("NextCase: %s %v", no, err)
	}
	ctx := context.Background()

	res, err := p.SendCase(ctx, fakeGateway(t, pki.Gateway, http.StatusAccepted), body)
	if err != nil {
		t.Fatalf("SendCase: %v", err)
	}
	if res.Status != http.StatusAccepted || res.Receipt == nil || res.Receipt.ExchangeID != "01JDFAKE" || res.Receipt.Decision.Mode != "REMOTE_RECEIPT" {
		t.Fatalf("response %+v", res)
	}
	if res.ReceiptSignature.KeyID != pki.Gateway.KeyID() || res.Request.KeyID != pki.Nanhai.KeyID() {
		t.Errorf("keyids: receipt %s, request %s", res.ReceiptSignature.KeyID, res.Request.KeyID)
	}

	// A receipt signed by another key is not trusted.
	res, err = p.SendCase(ctx, fakeGateway(t, pki.Liwan, http.StatusAccepted), body)
	if !errors.Is(err, sim.ErrReceiptUnverified) || res == nil || res.Receipt != nil {
		t.Fatalf("receipt by liwan's key: %v %+v", err, res)
	}

	// A refusal is an answer, not an error.
	res, err = p.SendStatus(ctx, fakeGateway(t, pki.Gateway, http.StatusForbidden), body)
	if err != nil || res.Status != http.StatusForbidden || !bytes.Contains(res.Body, []byte("policy_denied")) {
		t.Fatalf("refusal: %v %+v", err, res)
	}
}

// Send posts a status update to /v1/status and anything else to
// /v1/exchanges.
func TestSendDetectsStatus(t *testing.T) {
	for _, div := range []string{adapters.DivisionNanhai, adapters.DivisionLiwan} {
		p, err := sim.New(sim.Options{Division: div, Signer: signerOf(div), Trust: pki.TrustStore(), PublicURL: "http://127.0.0.1:1"})
		if err != nil {
			t.Fatal(err)
		}
		url, paths := fakeGatewayPaths(t, pki.Gateway, http.StatusAccepted)
		c, _ := p.SampleCase(1, sim.SampleOptions{})
		st, _ := p.SampleStatus(caseNoFor(div), adapters.InReview, time.Time{})
		for _, b := range [][]byte{c, st, []byte("not a record")} {
			if _, err := p.Send(context.Background(), url, b); err != nil {
				t.Fatalf("%s Send: %v", div, err)
			}
		}
		want := []string{"/v1/exchanges", "/v1/status", "/v1/exchanges"}
		if len(*paths) != 3 || (*paths)[0] != want[0] || (*paths)[1] != want[1] || (*paths)[2] != want[2] {
			t.Errorf("%s sent to %v, want %v", div, *paths, want)
		}
	}
}

// OnReceive sees each record once, not its repeats.
func TestOnReceive(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	got := make(chan sim.Received, 4)
	p, err := sim.New(sim.Options{Division: adapters.DivisionLiwan, Signer: pki.Liwan, Trust: pki.TrustStore(), PublicURL: url,
		OnReceive: func(r sim.Received) { got <- r }})
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: p}}
	srv.Start()
	defer srv.Close()
	body := deliveredCase(t, adapters.DivisionLiwan, 1)
	for range 2 {
		if a := deliver(t, p, url, "/cases", "k", body, pki.Gateway); a.err != nil {
			t.Fatal(a.err)
		}
	}
	if len(got) != 1 {
		t.Fatalf("OnReceive called %d times, want 1", len(got))
	}
	if r := <-got; r.IdempotencyKey != "k" || !r.Accepted || r.Case == nil || r.Case.Origin == nil {
		t.Errorf("received %+v", r)
	}
}
