// Package sim holds simulated district approval systems — Nanhai's and
// Liwan's — that speak their contracts (districts.md, signing.md,
// gateway-api.md) exactly. They are tongban's test partners and the actors
// of its demo; nothing of the gateway depends on them.
//
// A [Partner] is an http.Handler serving the two delivery routes tongban
// POSTs to ({endpoint}/cases and {endpoint}/status): it verifies the
// gateway's signature, deduplicates by Idempotency-Key (a repeat gets the
// acknowledgement of the first), assigns case numbers in the district's own
// format and answers a signed acknowledgement bound to the request. It
// records what it received, so tests can check that nothing arrived twice,
// and has knobs to misbehave (fail, go down, sign badly, refuse). As a
// client it sends cases and status updates to the gateway, signed with the
// partner's key, and checks the gateway's signed receipt.
package sim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/adapters/liwan"
	"github.com/tongban/tongban/adapters/nanhai"
	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/httpsig"
)

// Kinds of record a partner receives.
const (
	KindCase   = "case"
	KindStatus = "status"
)

// ErrConfig: the options are incomplete.
var ErrConfig = errors.New("sim: invalid options")

// Options configures a [Partner].
type Options struct {
	// Division is the district simulated: adapters.DivisionNanhai or
	// adapters.DivisionLiwan. Its codec follows.
	Division string
	// Signer is the partner's key: it signs acknowledgements and the
	// requests the partner sends.
	Signer *certs.Signer
	// Trust holds the gateway's certificate (and its CA): deliveries must
	// be signed by a key of role gateway, and so must receipts.
	Trust *certs.TrustStore
	// PublicURL is the partner's base URL as the gateway addresses it
	// (scheme and authority, e.g. "http://127.0.0.1:9605"); the
	// @target-uri of deliveries is rebuilt from it.
	PublicURL string
	// HTTPClient sends cases and status updates to the gateway (its TLS
	// configuration trusts the gateway's listener). Default: a plain
	// client with a 30 s timeout.
	HTTPClient *http.Client
	// Nonces remembers the nonces of verified deliveries; default an
	// in-memory store.
	Nonces httpsig.NonceStore
	// MaxBody limits delivery bodies (16 MiB).
	MaxBody int64
	// OnReceive, if set, is called with each record the partner takes in
	// (not with repeats), after it has been answered or not; for the demo
	// and the command line to show what arrived.
	OnReceive func(Received)
	// Forget keeps no record of what was taken in (Received and Duplicates
	// stay empty, OnReceive still sees each record): for long load runs,
	// where holding every body would grow without bound. Repeats are still
	// answered with their key's first acknowledgement.
	Forget bool
	Now    func() time.Time
	Logger *slog.Logger
}

// Received is one record the partner took in: the first verified request
// of its Idempotency-Key. Repeats of the key are counted, not recorded
// again.
type Received struct {
	IdempotencyKey string
	Kind           string // KindCase or KindStatus
	// CaseNo is the partner's own number of the case: the one it assigned
	// to a new case, or the one a status update named.
	CaseNo   string
	Accepted bool
	Reason   string // why it was refused
	Body     []byte // the record as received
	At       time.Time
	// Case or Status is the decoded record (nil when it did not decode).
	Case   *adapters.Case
	Status *adapters.StatusUpdate
}

// Partner is a simulated district approval system. Its methods are safe
// for concurrent use.
type Partner struct {
	o       Options
	codec   adapters.Codec
	numbers *numbering
	handler http.Handler
	log     *slog.Logger

	mu sync.Mutex
	// receiptNonces refuses a receipt whose nonce was seen before.
	receiptNonces *httpsig.MemoryNonces

	byKey    map[string]*record
	received []Received
	requests map[string]int
	failN    int
	failCode int
	down     bool
	badSig   bool
	refuse   string
}

// record is what a key was answered, to answer a repeat the same way.
type record struct {
	digest string // hex SM3 of the body
	ack    []byte
}

// New returns a partner simulating the district o.Division.
func New(o Options) (*Partner, error) {
	if o.Signer == nil || o.Trust == nil || o.PublicURL == "" {
		return nil, fmt.Errorf("%w: Signer, Trust and PublicURL are required", ErrConfig)
	}
	p := &Partner{o: o, byKey: map[string]*record{}, requests: map[string]int{}, log: o.Logger,
		receiptNonces: httpsig.NewMemoryNonces(0)}
	switch o.Division {
	case adapters.DivisionNanhai:
		p.codec = nanhai.Codec
	case adapters.DivisionLiwan:
		p.codec = liwan.Codec
	default:
		return nil, fmt.Errorf("%w: unknown division %q", ErrConfig, o.Division)
	}
	var err error
	if p.numbers, err = newNumbering(o.Division); err != nil {
		return nil, err
	}
	if p.o.Now == nil {
		p.o.Now = time.Now
	}
	if p.o.HTTPClient == nil {
		p.o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if p.o.Nonces == nil {
		p.o.Nonces = httpsig.NewMemoryNonces(0)
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	verifier := &httpsig.Verifier{
		Trust: o.Trust, Nonces: p.o.Nonces, PublicURL: o.PublicURL, MaxBody: o.MaxBody, Now: p.o.Now,
		RequireIdempotencyKey: true,
	}
	mux := http.NewServeMux()
	mux.Handle("POST /cases", verifier.Middleware(http.HandlerFunc(p.serveDelivery(KindCase))))
	mux.Handle("POST /status", verifier.Middleware(http.HandlerFunc(p.serveDelivery(KindStatus))))
	p.handler = mux
	return p, nil
}

// Codec is the district's wire format.
func (p *Partner) Codec() adapters.Codec { return p.codec }

// Division is the district's division code.
func (p *Partner) Division() string { return p.o.Division }

// ServeHTTP serves POST /cases and POST /status, the routes tongban
// delivers to.
func (p *Partner) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	down := p.down
	p.mu.Unlock()
	if down {
		// Drop the connection without an answer, as a crashed system does.
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	p.handler.ServeHTTP(w, r)
}

// serveDelivery answers a verified delivery of kind.
func (p *Partner) serveDelivery(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, ok := httpsig.FromContext(r.Context())
		if !ok || v.Identity.Role != certs.RoleGateway {
			httpsig.WriteError(w, r, httpsig.ErrForbidden.WithDetail("deliveries are accepted from tongban's gateway key only"))
			return
		}
		key := v.IdempotencyKey // covered by the signature (RequireIdempotencyKey)
		body := v.Body
		// The verifier has checked the body against its SM3 (Content-Digest).
		digest := v.Request.Digest
		if digest == "" {
			digest = certs.SM3Hex(body)
		}

		p.mu.Lock()
		p.requests[key]++
		if p.failN > 0 {
			p.failN--
			status := p.failCode
			p.mu.Unlock()
			httpsig.WriteProblem(w, r, status, "internal", http.StatusText(status), "simulated failure", nil)
			return
		}
		rec, seen := p.byKey[key]
		p.mu.Unlock()
		if seen && rec.digest != digest {
			writeKeyConflict(w, r)
			return
		}
		var taken Received
		if !seen {
			// Decoding takes most of a delivery's time: it runs outside the
			// lock, so that deliveries are looked at in parallel; the key is
			// looked up again before the record is taken in, in case a
			// repeat of it was answered meanwhile.
			taken = p.decode(kind, key, body)
			p.mu.Lock()
			if rec, seen = p.byKey[key]; !seen {
				var err error
				if rec, err = p.takeIn(&taken, digest); err != nil {
					p.mu.Unlock()
					p.log.Error("sim: encode ack", "err", err)
					httpsig.WriteError(w, r, err)
					return
				}
			}
			p.mu.Unlock()
			if seen && rec.digest != digest {
				writeKeyConflict(w, r)
				return
			}
		}
		p.mu.Lock()
		badSig := p.badSig
		p.mu.Unlock()
		p.writeAck(w, r, v, rec.ack, badSig)
		if !seen && p.o.OnReceive != nil {
			p.o.OnReceive(taken)
		}
	}
}

func writeKeyConflict(w http.ResponseWriter, r *http.Request) {
	httpsig.WriteProblem(w, r, http.StatusConflict, "duplicate_conflict", "Idempotency-Key reused",
		"this Idempotency-Key was used with a different body", nil)
}

// decode looks at a new record without the lock: the record decoded, or
// the reason it is refused. The body is copied only if something keeps it
// (Received or OnReceive).
func (p *Partner) decode(kind, key string, body []byte) Received {
	got := Received{IdempotencyKey: key, Kind: kind, At: p.o.Now()}
	if !p.o.Forget || p.o.OnReceive != nil {
		got.Body = bytes.Clone(body)
	}
	switch kind {
	case KindCase:
		c, err := p.codec.DecodeDeliveredCase(body)
		if err != nil {
			got.Reason = "case not valid: " + err.Error()
			return got
		}
		got.Case = c
	case KindStatus:
		st, err := p.codec.DecodeStatus(body)
		if err != nil {
			got.Reason = "status not valid: " + err.Error()
			return got
		}
		got.Status, got.CaseNo = st, st.CaseNo
	}
	return got
}

// takeIn (p.mu held) decides on a decoded record — refused, or accepted
// with a new number for a case — and records the key's acknowledgement.
func (p *Partner) takeIn(got *Received, digest string) (*record, error) {
	if got.Reason == "" {
		switch {
		case p.refuse != "":
			got.Reason = p.refuse
		case got.Kind == KindCase:
			no, err := p.numbers.assign(got.At)
			if err != nil {
				got.Reason = err.Error()
				break
			}
			got.CaseNo, got.Accepted = no, true
		default:
			got.Accepted = true
		}
	}
	ack, err := p.codec.EncodeAck(&adapters.Ack{CaseNo: got.CaseNo, Accepted: got.Accepted, Reason: got.Reason})
	if err != nil {
		return nil, err
	}
	rec := &record{digest: digest, ack: ack}
	p.byKey[got.IdempotencyKey] = rec
	if !p.o.Forget {
		p.received = append(p.received, *got)
	}
	return rec, nil
}

// writeAck answers 200 with the acknowledgement, signed and bound to the
// request; with badSig the signature is spoiled.
func (p *Partner) writeAck(w http.ResponseWriter, r *http.Request, v *httpsig.Verified, ack []byte, badSig bool) {
	h := w.Header()
	h.Set("Content-Type", p.codec.ContentType())
	if _, err := httpsig.SignResponse(h, http.StatusOK, ack, v.Components, p.o.Signer, httpsig.WithClock(p.o.Now)); err != nil {
		p.log.Error("sim: sign ack", "err", err)
		httpsig.WriteError(w, r, err)
		return
	}
	if badSig {
		spoilSignature(h)
	}
	h.Set("Content-Length", strconv.Itoa(len(ack)))
	w.WriteHeader(http.StatusOK)
	w.Write(ack)
}

// spoilSignature flips a bit of the signature in the Signature field, so
// that it no longer verifies.
func spoilSignature(h http.Header) {
	v := h.Get(httpsig.HeaderSignature)
	// tb=:<base64>: — change one base64 character well inside the value.
	i := len(httpsig.Label) + 2 + 10
	if len(v) <= i+1 {
		return
	}
	b := []byte(v)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	h.Set(httpsig.HeaderSignature, string(b))
}

// Received returns, in arrival order, the records the partner took in,
// one per Idempotency-Key.
func (p *Partner) Received() []Received {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Received(nil), p.received...)
}

// Requests is the number of verified requests that carried key (the first
// and its repeats).
func (p *Partner) Requests(key string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests[key]
}

// Duplicates lists the records received more than once under different
// Idempotency-Keys: new cases with the same origin (sender's division and
// case number), or status updates with identical bodies. Empty means the
// partner never got anything twice.
func (p *Partner) Duplicates() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var dups []string
	origins := map[string]string{}
	statuses := map[string]string{}
	for _, r := range p.received {
		var k string
		var seen map[string]string
		switch {
		case r.Case != nil && r.Case.Origin != nil:
			k, seen = r.Case.Origin.Division+"/"+r.Case.Origin.CaseNo, origins
		case r.Kind == KindStatus:
			k, seen = certs.SM3Hex(r.Body), statuses
		default:
			continue
		}
		if first, ok := seen[k]; ok {
			dups = append(dups, fmt.Sprintf("%s %s under keys %s and %s", r.Kind, k, first, r.IdempotencyKey))
			continue
		}
		seen[k] = r.IdempotencyKey
	}
	return dups
}

// FailNext makes the next n deliveries fail with HTTP status: after their
// signature verified (so their nonces are spent and counted by Requests),
// before the record is looked at (nothing is taken in).
func (p *Partner) FailNext(n, status int) {
	p.mu.Lock()
	p.failN, p.failCode = n, status
	p.mu.Unlock()
}

// Down makes the partner drop every connection without answering (true)
// or serve again (false).
func (p *Partner) Down(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
}

// BadSignature makes the partner spoil the signature of its
// acknowledgements (the record is still taken in and numbered).
func (p *Partner) BadSignature(bad bool) {
	p.mu.Lock()
	p.badSig = bad
	p.mu.Unlock()
}

// Refuse makes the partner refuse new records with reason (RESULT 1 /
// accepted false); an empty reason accepts again. A refused record stays
// refused: its repeats get the same refusal.
func (p *Partner) Refuse(reason string) {
	p.mu.Lock()
	p.refuse = reason
	p.mu.Unlock()
}

// readAll reads at most limit bytes of r.
func readAll(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("sim: answer larger than %d bytes", limit)
	}
	return b, nil
}
