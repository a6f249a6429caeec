package gateway_test

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/gateway"
	"github.com/tongban/tongban/httpsig"
)

// maxBody is the body limit of the gateway the refusal tests run against:
// small, so that too_large is cheap to provoke, and above every sample.
const maxBody = 16 << 10

// variant re-encodes a sample case after changing it.
func variant(t *testing.T, f *fixture, change func(*adapters.Case)) []byte {
	t.Helper()
	c := caseOf(t, f)
	change(c)
	b, err := gateway.PilotPartners().ByID(f.Exp.From).Codec.EncodeCase(c)
	mustOK(t, err)
	return b
}

// breakCheckDigit changes the last character of a resident ID number, so
// that its check digit is wrong.
func breakCheckDigit(id string) string {
	last := id[len(id)-1]
	next := byte('0')
	if last >= '0' && last < '9' {
		next = last + 1
	}
	return id[:len(id)-1] + string(next)
}

// TestSignatureRefusals provokes every refusal of signing.md's table, in
// its order, over real HTTP: each answers its status and problem+json,
// and none is written to the exchange log (the signature did not verify);
// the role check, which follows a verified signature, is logged.
func TestSignatureRefusals(t *testing.T) {
	t.Parallel()
	now := time.Now()
	unknown, err := pki.IssueLeaf(certs.Identity{Role: certs.RolePartner, Partner: "nanhai", Division: adapters.DivisionNanhai}, now.Add(-time.Hour), now.Add(time.Hour))
	mustOK(t, err)
	expired, err := pki.IssueLeaf(certs.Identity{Role: certs.RolePartner, Partner: "nanhai", Division: adapters.DivisionNanhai}, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	mustOK(t, err)
	e := newEnv(t, withMaxBody(maxBody), withPartnerCert("nanhai", expired.Certificate()))
	fixtures := loadFixtures(t)
	body := fixtures["nanhai-llc-setup"].Input
	const ct = "application/xml; charset=GBK"
	const path = "/v1/exchanges"

	signedReq := func(t *testing.T, signer *certs.Signer, body []byte, opts ...httpsig.Option) *http.Request {
		req := e.request(t, http.MethodPost, path, ct)
		_, err := httpsig.SignRequest(req, body, signer, opts...)
		mustOK(t, err)
		return req
	}
	// A request refused after its signature verified (a malformed body)
	// has spent its nonce; it is sent again below.
	replayed := e.request(t, http.MethodPost, path, ct)
	_, err = httpsig.SignRequest(replayed, []byte("<CASE"), pki.Nanhai)
	mustOK(t, err)
	if a := e.do(t, replayed); a.Status != http.StatusBadRequest {
		t.Fatalf("first request: HTTP %d %s", a.Status, a.Body)
	}
	tests := []struct {
		name   string
		status int
		code   string
		send   func(t *testing.T) *answer
	}{
		{"no signature", 401, "signature_missing", func(t *testing.T) *answer {
			req := e.request(t, http.MethodPost, path, ct)
			req.Body, req.ContentLength = io.NopCloser(strings.NewReader(string(body))), int64(len(body))
			return e.do(t, req)
		}},
		{"unknown parameter", 401, "signature_malformed", func(t *testing.T) *answer {
			req := signedReq(t, pki.Nanhai, body)
			req.Header.Set(httpsig.HeaderSignatureInput, req.Header.Get(httpsig.HeaderSignatureInput)+`;tag="x"`)
			return e.do(t, req)
		}},
		{"certificate not in the trust store", 401, "key_unknown", func(t *testing.T) *answer {
			return e.do(t, signedReq(t, unknown, body))
		}},
		{"expired certificate", 401, "certificate_invalid", func(t *testing.T) *answer {
			return e.do(t, signedReq(t, expired, body))
		}},
		{"created an hour ago", 401, "signature_expired", func(t *testing.T) *answer {
			return e.do(t, signedReq(t, pki.Nanhai, body, httpsig.WithClock(func() time.Time { return time.Now().Add(-time.Hour) })))
		}},
		{"same nonce twice", 401, "replayed", func(t *testing.T) *answer {
			again := e.request(t, http.MethodPost, path, ct)
			again.Header = replayed.Header.Clone()
			again.Body, again.ContentLength = io.NopCloser(strings.NewReader("<CASE")), 5
			return e.do(t, again)
		}},
		{"body changed after signing", 400, "digest_mismatch", func(t *testing.T) *answer {
			req := signedReq(t, pki.Nanhai, body)
			changed := []byte(strings.Replace(string(body), "440605202611270001", "440605202611270009", 1))
			req.Body = io.NopCloser(strings.NewReader(string(changed)))
			return e.do(t, req)
		}},
		{"signature of another request", 401, "signature_invalid", func(t *testing.T) *answer {
			req := signedReq(t, pki.Nanhai, body)
			other := signedReq(t, pki.Nanhai, body)
			req.Header.Set(httpsig.HeaderSignature, other.Header.Get(httpsig.HeaderSignature))
			return e.do(t, req)
		}},
		{"declared length over the limit", 413, "too_large", func(t *testing.T) *answer {
			return e.do(t, signedReq(t, pki.Nanhai, make([]byte, maxBody+1)))
		}},
		{"unsigned lookup", 401, "signature_missing", func(t *testing.T) *answer {
			return e.do(t, e.request(t, http.MethodGet, "/v1/cases/440605202611270001", ""))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := e.logSize(t)
			a := tc.send(t)
			instance := path
			if tc.name == "unsigned lookup" {
				instance = "/v1/cases/440605202611270001"
			}
			checkProblem(t, a, tc.status, tc.code, instance)
			checkNoEntry(t, e, before)
		})
	}

	t.Run("role may not call the route", func(t *testing.T) {
		for _, signer := range []*certs.Signer{pki.Admin, pki.Auditor} {
			before := e.logSize(t)
			a := e.signed(t, signer, http.MethodPost, path, ct, body)
			checkProblem(t, a, http.StatusForbidden, gateway.CodeForbidden, path)
			d := checkDenied(t, e, before, gateway.CodeForbidden, signer)
			if d.From != signer.KeyID() {
				t.Errorf("denied entry from %q, want the key id %s", d.From, signer.KeyID())
			}
		}
		// An auditor on an administrator's POST route.
		before := e.logSize(t)
		a := e.signed(t, pki.Auditor, http.MethodPost, "/admin/v1/policy/drafts", "application/x-tar", []byte("x"))
		checkProblem(t, a, http.StatusForbidden, gateway.CodeForbidden, "/admin/v1/policy/drafts")
		checkDenied(t, e, before, gateway.CodeForbidden, pki.Auditor)
	})
}

// countingReader yields n zero bytes and counts what was read.
type countingReader struct {
	n    int64
	read atomic.Int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	left := r.n - r.read.Load()
	if left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	clear(p)
	r.read.Add(int64(len(p)))
	return len(p), nil
}

// TestTooLargeStreamed sends a signed body without Content-Length, far
// over the limit: 413 too_large, after reading little more than the limit.
func TestTooLargeStreamed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withMaxBody(maxBody))
	req := e.request(t, http.MethodPost, "/v1/exchanges", "application/xml; charset=GBK")
	_, err := httpsig.SignRequest(req, []byte("x"), pki.Nanhai)
	mustOK(t, err)
	const total = 256 << 20
	body := &countingReader{n: total}
	req.Body, req.ContentLength, req.GetBody = io.NopCloser(body), -1, nil
	before := e.logSize(t)
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("no answer: %v (read %d bytes)", err, body.read.Load())
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	checkProblem(t, &answer{Status: resp.StatusCode, Header: resp.Header, Body: b}, http.StatusRequestEntityTooLarge, gateway.CodeTooLarge, "/v1/exchanges")
	t.Logf("the client sent %d bytes before the answer", body.read.Load())
	if n := body.read.Load(); n >= total/4 {
		t.Errorf("the client had to send %d of %d bytes", n, total)
	}
	checkNoEntry(t, e, before)
}

// TestRequestRefusals provokes the gateway-api.md refusals of requests
// whose signature verified; each is a `denied` log entry with its code,
// and none holds personal data.
func TestRequestRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fx := loadFixtures(t)
	llc, physician, hukou := fx["nanhai-llc-setup"], fx["liwan-physician"], fx["nanhai-hukou-denied"]
	var pii []string
	for _, f := range []*fixture{llc, physician, hukou} {
		pii = append(pii, personalData(caseOf(t, f))...)
	}
	start := e.logSize(t)
	defer func() { checkNoPersonalData(t, e, start, pii) }()
	ctx := context.Background()

	// An accepted case of each district, for the conflicts; Liwan is down,
	// so that Nanhai's case stays undelivered for the withdrawal.
	e.liwan.Down(true)
	resp, err := e.nanhai.SendCase(ctx, e.url, llc.Input)
	accepted := send(t, "llc", resp, err, http.StatusAccepted)
	resp, err = e.liwan.SendCase(ctx, e.url, physician.Input)
	send(t, "physician", resp, err, http.StatusAccepted)

	invalid := variant(t, physician, func(c *adapters.Case) {
		c.CaseNo = "LW2026112700124"
		c.Applicant.IDNumber = breakCheckDigit(c.Applicant.IDNumber)
	})
	conflict := variant(t, physician, func(c *adapters.Case) { c.Address = "广州市荔湾区中山八路1号" })
	withdrawn, err := e.nanhai.SampleStatus(caseOf(t, llc).CaseNo, adapters.Withdrawn, time.Time{})
	mustOK(t, err)
	unknownStatus, err := e.liwan.SampleStatus("LW2026112799999", adapters.Accepted, time.Time{})
	mustOK(t, err)
	tests := []struct {
		name   string
		signer *certs.Signer
		path   string
		ct     string
		body   []byte
		status int
		code   string
		fields []string
	}{
		{"Nanhai XML from Liwan", pki.Liwan, "/v1/exchanges", "application/xml; charset=GBK", llc.Input, 415, gateway.CodeUnsupportedMedia, nil},
		{"XML labelled JSON", pki.Liwan, "/v1/exchanges", "application/json", llc.Input, 400, gateway.CodeMalformed, nil},
		{"JSON labelled Nanhai XML", pki.Nanhai, "/v1/exchanges", "application/xml; charset=GBK", physician.Input, 400, gateway.CodeMalformed, nil},
		{"wrong check digit", pki.Liwan, "/v1/exchanges", "application/json", invalid, 422, gateway.CodeValidationFailed, []string{"/applicant/idNumber"}},
		{"not a cross-district item", pki.Nanhai, "/v1/exchanges", "application/xml; charset=GBK", hukou.Input, 403, gateway.CodePolicyDenied, nil},
		{"same case number, other content", pki.Liwan, "/v1/exchanges", "application/json", conflict, 409, gateway.CodeDuplicateConflict, nil},
		{"status of no case of the caller", pki.Liwan, "/v1/status", "application/json", unknownStatus, 404, gateway.CodeNotFound, nil},
		{"status of an unknown exchange", pki.Liwan, "/v1/exchanges/01JD000000000000000000000/status", "application/json", unknownStatus, 404, gateway.CodeNotFound, nil},
		{"withdrawal before delivery", pki.Nanhai, "/v1/status", "application/xml; charset=GBK", withdrawn, 409, gateway.CodeInvalidTransition, nil},
		{"no such route", pki.Nanhai, "/v1/nothing", "application/xml; charset=GBK", llc.Input, 404, gateway.CodeNotFound, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := e.logSize(t)
			a := e.signed(t, tc.signer, http.MethodPost, tc.path, tc.ct, tc.body)
			p := checkProblem(t, a, tc.status, tc.code, tc.path)
			if tc.code == gateway.CodeInvalidTransition && p.Detail != "case not yet delivered" {
				t.Errorf("detail %q, want \"case not yet delivered\"", p.Detail)
			}
			var fields []string
			for _, fe := range p.Errors {
				fields = append(fields, fe.Field)
				if fe.Code == "" || fe.Message == "" {
					t.Errorf("field error %+v without code or message", fe)
				}
			}
			for _, want := range tc.fields {
				if !slices.Contains(fields, want) {
					t.Errorf("errors name %q, want %q among them", fields, want)
				}
			}
			// An unknown route is refused after the signature verified too:
			// like every such POST it is a denied entry (exchange-log.md).
			d := checkDenied(t, e, before, tc.code, tc.signer)
			if !slices.Equal(d.Fields, fields) {
				t.Errorf("denied entry's fields %q, want the problem's %q", d.Fields, fields)
			}
			if (tc.code == gateway.CodePolicyDenied) != (d.PolicyInput != nil && d.Decision != nil) {
				t.Errorf("policy_input %s and decision %s in a %s entry", d.PolicyInput, d.Decision, tc.code)
			}
		})
	}
	e.liwan.Down(false)
	e.waitDelivered(t, accepted.Receipt.ExchangeID)
}
