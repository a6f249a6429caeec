package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/httpsig"
)

// maxAnswer bounds the gateway answers the client reads.
const maxAnswer = 4 << 20

// ErrReceiptUnverified: the gateway answered 200 or 202 but its receipt's
// signature did not verify, was not bound to the request sent, or was not
// by the gateway's key. The receipt must not be trusted.
var ErrReceiptUnverified = errors.New("sim: receipt signature not accepted")

// Receipt is the gateway's receipt of a case or status update
// (gateway-api.md).
type Receipt struct {
	ExchangeID string           `json:"exchangeId"`
	State      string           `json:"state"`
	LogIndex   uint64           `json:"logIndex"`
	LeafHash   string           `json:"leafHash"`
	Decision   *ReceiptDecision `json:"decision,omitempty"`
}

// ReceiptDecision is the policy decision a case receipt summarises.
type ReceiptDecision struct {
	Allow    bool   `json:"allow"`
	Mode     string `json:"mode"`
	Revision string `json:"revision"`
}

// Response is the gateway's answer to a request the partner sent.
type Response struct {
	Status      int
	ContentType string
	// Body is the answer as received: the receipt JSON, or a
	// problem+json document on a refusal.
	Body []byte
	// Request is the signature the partner sent.
	Request *httpsig.Signed
	// Receipt and ReceiptSignature are set on a 200 or 202 whose signed
	// receipt verified.
	Receipt          *Receipt
	ReceiptSignature *httpsig.Signed

	header http.Header
}

// SendCase sends a new case in the partner's format to the gateway at
// gatewayURL (POST /v1/exchanges), signed with the partner's key. Any HTTP
// answer gives a Response (a refusal is a 4xx with its problem in Body);
// the error is for a request that got no answer, or a 200/202 whose
// receipt did not verify (ErrReceiptUnverified, with the Response).
func (p *Partner) SendCase(ctx context.Context, gatewayURL string, body []byte) (*Response, error) {
	return p.post(ctx, gatewayURL, "/v1/exchanges", body)
}

// SendStatus sends a status update in the partner's format (POST
// /v1/status); the gateway finds the case by the partner's own case number
// inside it.
func (p *Partner) SendStatus(ctx context.Context, gatewayURL string, body []byte) (*Response, error) {
	return p.post(ctx, gatewayURL, "/v1/status", body)
}

// Send sends a record in the partner's format, as a status update if it
// reads as one (DecodeStatus accepts it) and otherwise as a new case, so
// that the gateway's answer names whatever is wrong with it; for
// `tongban sim ... --send FILE`.
func (p *Partner) Send(ctx context.Context, gatewayURL string, body []byte) (*Response, error) {
	if _, err := p.codec.DecodeStatus(body); err == nil {
		return p.SendStatus(ctx, gatewayURL, body)
	}
	return p.SendCase(ctx, gatewayURL, body)
}

// SendStatusOf sends a status update of the exchange id (POST
// /v1/exchanges/{id}/status).
func (p *Partner) SendStatusOf(ctx context.Context, gatewayURL, exchangeID string, body []byte) (*Response, error) {
	return p.post(ctx, gatewayURL, "/v1/exchanges/"+url.PathEscape(exchangeID)+"/status", body)
}

// Track asks the gateway for a case by either district's case number (GET
// /v1/cases/{caseNo}) and returns the answer (the exchange view as JSON,
// or a problem).
func (p *Partner) Track(ctx context.Context, gatewayURL, caseNo string) (*Response, error) {
	req, err := p.newRequest(ctx, http.MethodGet, gatewayURL, "/v1/cases/"+url.PathEscape(caseNo))
	if err != nil {
		return nil, err
	}
	signed, err := httpsig.SignRequest(req, nil, p.o.Signer, httpsig.WithClock(p.o.Now))
	if err != nil {
		return nil, fmt.Errorf("sim: sign: %w", err)
	}
	return p.do(req, signed)
}

func (p *Partner) newRequest(ctx context.Context, method, gatewayURL, path string) (*http.Request, error) {
	u := strings.TrimRight(gatewayURL, "/") + path
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	return req, nil
}

func (p *Partner) post(ctx context.Context, gatewayURL, path string, body []byte) (*Response, error) {
	req, err := p.newRequest(ctx, http.MethodPost, gatewayURL, path)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", p.codec.ContentType())
	signed, err := httpsig.SignRequest(req, body, p.o.Signer, httpsig.WithClock(p.o.Now))
	if err != nil {
		return nil, fmt.Errorf("sim: sign: %w", err)
	}
	res, err := p.do(req, signed)
	if err != nil {
		return res, err
	}
	if res.Status != http.StatusOK && res.Status != http.StatusAccepted {
		return res, nil
	}
	return res, p.checkReceipt(req, res)
}

func (p *Partner) do(req *http.Request, signed *httpsig.Signed) (*Response, error) {
	resp, err := p.o.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sim: %s %s: %w", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := readAll(resp.Body, maxAnswer)
	if err != nil {
		return nil, fmt.Errorf("sim: %s %s: %w", req.Method, req.URL, err)
	}
	r := &Response{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: body, Request: signed}
	r.header = resp.Header
	return r, nil
}

// checkReceipt verifies a receipt: signed by the gateway's key, bound to
// the request sent, fresh.
func (p *Partner) checkReceipt(req *http.Request, res *Response) error {
	resp := &http.Response{StatusCode: res.Status, Header: res.header}
	s, _, err := httpsig.VerifyResponse(resp, res.Body, req, p.o.Trust, httpsig.AllowRole(certs.RoleGateway),
		httpsig.WithClock(p.o.Now), httpsig.WithResponseNonces(p.receiptNonces))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrReceiptUnverified, err)
	}
	var rc Receipt
	if err := json.Unmarshal(res.Body, &rc); err != nil || rc.ExchangeID == "" {
		return fmt.Errorf("%w: the body is not a receipt", ErrReceiptUnverified)
	}
	res.Receipt, res.ReceiptSignature = &rc, s
	return nil
}

// SampleCase returns a valid new case in the partner's format, as its
// district sends it to tongban, numbered seq on the day of opts.At (seq 1
// to 9999 for Nanhai, to 99999 for Liwan). Nanhai's sample is a company
// set-up owned by Liwan, Liwan's a physician registration owned by Nanhai
// (after the shared fixtures nanhai-llc-setup and liwan-physician).
// Numbers given here are not taken from the partner's own sequence; see
// [Partner.NextCase].
func (p *Partner) SampleCase(seq int, opts SampleOptions) ([]byte, error) {
	if seq < 1 || seq > p.numbers.max() {
		return nil, fmt.Errorf("sim: sample sequence %d out of range 1..%d", seq, p.numbers.max())
	}
	at := opts.at(p.o.Now())
	c, err := sampleCase(p.o.Division, p.numbers.format(at, seq), at, opts.MaterialSize)
	if err != nil {
		return nil, err
	}
	return p.codec.EncodeCase(c)
}

// NextCase returns a sample case (as SampleCase) numbered from the
// partner's own sequence of the day, which it shares with the numbers it
// assigns to delivered cases, and that number.
func (p *Partner) NextCase(opts SampleOptions) (body []byte, caseNo string, err error) {
	at := opts.at(p.o.Now())
	if caseNo, err = p.numbers.assign(at); err != nil {
		return nil, "", err
	}
	c, err := sampleCase(p.o.Division, caseNo, at, opts.MaterialSize)
	if err != nil {
		return nil, "", err
	}
	body, err = p.codec.EncodeCase(c)
	return body, caseNo, err
}

// SampleStatus returns a status update in the partner's format for the case
// the partner numbers caseNo (its own number: the one it sent, or the one
// its acknowledgement assigned). A final approval carries a certificate.
func (p *Partner) SampleStatus(caseNo string, state adapters.State, at time.Time) ([]byte, error) {
	if at.IsZero() {
		at = p.o.Now()
	}
	return p.codec.EncodeStatus(sampleStatus(p.o.Division, caseNo, state, at.Truncate(time.Second)))
}
