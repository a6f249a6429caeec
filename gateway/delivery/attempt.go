package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/gateway/exchangelog"
	"github.com/tongban/tongban/gateway/store"
	"github.com/tongban/tongban/httpsig"
)

// Delivery kinds (store.Delivery.Kind) and the partner routes they go to.
const (
	kindCase   = "case"
	kindStatus = "status"
)

// Reasons an answer is not an acknowledgement. They end an attempt, which
// is then retried; they are what a retrying or dead delivery shows as its
// last error.
var (
	// ErrNotAcknowledged: the partner answered something other than 200.
	ErrNotAcknowledged = errors.New("delivery: partner did not acknowledge")
	// ErrAckUnverified: a 200 whose signature does not verify, is not
	// bound to the request sent, or is not by a key of the addressed
	// partner.
	ErrAckUnverified = errors.New("delivery: acknowledgement signature not accepted")
	// ErrAckMalformed: a verified 200 whose body is not an acknowledgement
	// in the partner's format.
	ErrAckMalformed = errors.New("delivery: acknowledgement malformed")
)

// result is how one attempt ended. err nil means ack holds a verified
// acknowledgement (accepted or refusing).
type result struct {
	err error
	// unreachable: no answer, or 5xx/429 — what opens the breaker.
	unreachable bool
	request     exchangelog.Signed // the signed request that was answered
	response    exchangelog.Signed // the partner's signed acknowledgement
	ack         *adapters.Ack
}

func routeOf(kind string) (string, error) {
	switch kind {
	case kindCase:
		return "/cases", nil
	case kindStatus:
		return "/status", nil
	}
	return "", fmt.Errorf("delivery: unknown delivery kind %q", kind)
}

// deliver makes one attempt: POST, quick retries each signed anew, then
// the acknowledgement checked.
func (w *Worker) deliver(ctx context.Context, p *partnerState, d store.Delivery) result {
	route, err := routeOf(d.Kind)
	if err != nil {
		return result{err: err}
	}
	url := p.Endpoint + route
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, url, d.Payload)
	if err != nil {
		return result{err: fmt.Errorf("delivery: request to %s: %w", url, err)}
	}
	req.Header.Set("Content-Type", p.Codec.ContentType())
	req.Header.Set(httpsig.HeaderIdempotencyKey, d.ID)

	// Every HTTP request of the attempt gets a fresh signature; the last
	// one made is the one the answer belongs to.
	var sent *httpsig.Signed
	var sentReq *http.Request
	// The payload's SM3 was computed once, for the log entry, and stored
	// with the row; rows without it are hashed once per attempt.
	sum := d.PayloadSM3
	if sum == ([certs.SM3Size]byte{}) {
		sum = certs.SM3(d.Payload)
	}
	sign := func(r *http.Request) error {
		// The retry is a shallow copy sharing the header map with the
		// request already sent: sign a copy of it.
		r.Header = r.Header.Clone()
		s, err := httpsig.SignRequest(r, d.Payload, w.o.Signer, httpsig.WithIdempotencyKey(), httpsig.WithBodyDigest(sum))
		if err != nil {
			return err
		}
		sent, sentReq = s, r
		return nil
	}
	if err := sign(req.Request); err != nil {
		return result{err: fmt.Errorf("delivery: sign: %w", err)}
	}
	client := &retryablehttp.Client{
		HTTPClient:   w.o.HTTPClient,
		RetryMax:     w.o.QuickRetries,
		RetryWaitMin: w.o.QuickRetryMin,
		RetryWaitMax: w.o.QuickRetryMax,
		CheckRetry:   retryablehttp.DefaultRetryPolicy,
		Backoff: func(lo, hi time.Duration, n int, resp *http.Response) time.Duration {
			// A partner's Retry-After may ask for longer than a quick
			// retry; the durable backoff covers longer waits.
			return min(retryablehttp.DefaultBackoff(lo, hi, n, resp), hi)
		},
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
		PrepareRetry: sign,
	}
	resp, err := client.Do(req)
	if err != nil {
		return result{err: fmt.Errorf("POST %s: %w", url, err), unreachable: true}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, w.o.MaxAckBytes+1))
	if err != nil {
		return result{err: fmt.Errorf("POST %s: reading the answer: %w", url, err), unreachable: true}
	}
	if resp.StatusCode != http.StatusOK {
		return result{
			err:         fmt.Errorf("%w: POST %s: %s%s", ErrNotAcknowledged, url, resp.Status, problemCode(resp, body)),
			unreachable: resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests,
		}
	}
	if int64(len(body)) > w.o.MaxAckBytes {
		return result{err: fmt.Errorf("%w: larger than %d bytes", ErrAckMalformed, w.o.MaxAckBytes)}
	}
	ackSig, err := w.verifyAck(resp, body, sentReq, d.To)
	if err != nil {
		return result{err: err}
	}
	ack, err := p.Codec.DecodeAck(body)
	if err != nil {
		return result{err: fmt.Errorf("%w: %v", ErrAckMalformed, err)}
	}
	return result{request: recorded(sent), response: ackSig, ack: ack}
}

// verifyAck checks the acknowledgement's signature (signing.md, "Signed
// responses"): fresh, bound to the request actually sent, and made by a
// partner key of division to.
func (w *Worker) verifyAck(resp *http.Response, body []byte, sent *http.Request, to string) (exchangelog.Signed, error) {
	addressed := func(id certs.Identity) bool { return id.Role == certs.RolePartner && id.Division == to }
	s, id, err := httpsig.VerifyResponse(resp, body, sent, w.o.Trust, addressed,
		httpsig.WithClock(w.o.Now), httpsig.WithResponseNonces(w.ackNonces))
	if err != nil {
		if errors.Is(err, httpsig.ErrForbidden) {
			return exchangelog.Signed{}, fmt.Errorf("%w: signed by %s (%s %s), not by partner %s", ErrAckUnverified, id.KeyID, id.Role, id.Division, to)
		}
		return exchangelog.Signed{}, fmt.Errorf("%w: %v", ErrAckUnverified, err)
	}
	return recorded(s), nil
}

// recorded is a signature as the exchange log records it.
func recorded(s *httpsig.Signed) exchangelog.Signed {
	return exchangelog.Signed{Digest: s.Digest, SignatureBase: s.SignatureBase, Signature: s.Signature, KeyID: s.KeyID}
}

// problemCode names the problem code of a problem+json answer, if any, for
// the delivery's last error.
func problemCode(resp *http.Response, body []byte) string {
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
		return ""
	}
	var p struct {
		Code string `json:"code"`
	}
	if json.Unmarshal(body, &p) != nil || p.Code == "" || len(p.Code) > 64 {
		return ""
	}
	return " (" + p.Code + ")"
}
