package httpsig

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/tongban/tongban/certs"
)

// Option adjusts signing or response verification.
type Option func(*options)

type options struct {
	now         func() time.Time
	nonce       string
	idempotency bool
	window      time.Duration
	nonces      NonceStore
	bodySum     *[certs.SM3Size]byte
}

func collect(opts []Option) options {
	o := options{now: time.Now, window: DefaultWindow}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// WithClock sets the clock used for created (signing) or for the ±window
// check (VerifyResponse). Default time.Now.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithNonce sets the nonce instead of a fresh random one; for tests and
// reproducible examples only — every attempt must have its own nonce.
func WithNonce(nonce string) Option { return func(o *options) { o.nonce = nonce } }

// WithIdempotencyKey makes SignRequest cover "idempotency-key" as the fifth
// component (tongban's deliveries); the request must carry the
// Idempotency-Key header.
func WithIdempotencyKey() Option { return func(o *options) { o.idempotency = true } }

// WithBodyDigest gives SignRequest the SM3 of the body, already computed by
// the caller, so that the body is not hashed again (a 20 KiB body costs
// ~70 µs). It must be the digest of exactly the body passed: a wrong one
// makes the receiver refuse the request (digest mismatch).
func WithBodyDigest(sum [certs.SM3Size]byte) Option {
	return func(o *options) { o.bodySum = &sum }
}

// WithWindow sets the allowed skew of created for VerifyResponse (default
// 300 s).
func WithWindow(d time.Duration) Option { return func(o *options) { o.window = d } }

// WithResponseNonces makes VerifyResponse remember response nonces in ns
// and refuse a repeated one as replayed.
func WithResponseNonces(ns NonceStore) Option { return func(o *options) { o.nonces = ns } }

// Errors of the signing side.
var (
	// ErrUnsupportedMethod means the profile has no covered components for
	// the request method (only GET, DELETE, POST, PUT, PATCH).
	ErrUnsupportedMethod = errors.New("httpsig: method not covered by the signature profile")
	// ErrMissingField means a field the signature must cover is absent
	// (Content-Type, Idempotency-Key, the request's Content-Digest).
	ErrMissingField = errors.New("httpsig: a covered field is missing")
)

// NewNonce returns a fresh random nonce: 32 characters of [A-Za-z0-9_-].
func NewNonce() string {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// validNonce: 16 to 64 characters of [A-Za-z0-9_-].
func validNonce(n string) bool {
	if len(n) < 16 || len(n) > 64 {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !isAlpha(c) && !isDigit(c) && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func (o *options) params(s *certs.Signer, components []component) (*sigParams, error) {
	nonce := o.nonce
	if nonce == "" {
		nonce = NewNonce()
	}
	if !validNonce(nonce) {
		return nil, fmt.Errorf("httpsig: nonce %q is not 16 to 64 characters of [A-Za-z0-9_-]", nonce)
	}
	return &sigParams{components: components, created: o.now().Unix(), nonce: nonce, keyID: s.KeyID()}, nil
}

func sign(s *certs.Signer, p *sigParams, values []string, digestHex string) (*Signed, string, string, error) {
	base := buildBase(p, values)
	sig, err := s.Sign([]byte(base))
	if err != nil {
		return nil, "", "", err
	}
	b64 := base64.StdEncoding.EncodeToString(sig)
	signed := &Signed{Digest: digestHex, SignatureBase: base, Signature: b64, KeyID: p.keyID}
	return signed, Label + "=" + p.serialize(), Label + "=:" + b64 + ":", nil
}

// SignRequest signs req for sending, with fresh created and nonce: it sets
// Content-Digest (POST, PUT, PATCH — an empty body too), Signature-Input
// and Signature, replacing earlier values, so that a retry is signed anew.
// body is the exact body to send: for POST, PUT and PATCH SignRequest also
// sets req.Body, req.GetBody and req.ContentLength from it; GET and DELETE
// must have none. The covered @target-uri is req.URL normalized as
// TargetURI. Content-Type must be set for a body-carrying method.
func SignRequest(req *http.Request, body []byte, s *certs.Signer, opts ...Option) (*Signed, error) {
	o := collect(opts)
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	hasBody, ok := methodHasBody(method)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnsupportedMethod, method)
	}
	target, err := TargetURI(req.URL)
	if err != nil {
		return nil, err
	}
	components, values := componentsNoBody, []string{method, target}
	var sum [certs.SM3Size]byte
	if o.bodySum != nil {
		sum = *o.bodySum
	} else {
		sum = certs.SM3(body)
	}
	if hasBody {
		ct, ok := fieldValue(req.Header, "Content-Type")
		if !ok || ct == "" {
			return nil, fmt.Errorf("%w: Content-Type", ErrMissingField)
		}
		cd := contentDigestOf(sum)
		components = componentsWithBody
		values = append(values, cd, ct)
		if o.idempotency {
			key, ok := fieldValue(req.Header, HeaderIdempotencyKey)
			if !ok || key == "" {
				return nil, fmt.Errorf("%w: Idempotency-Key", ErrMissingField)
			}
			components = append(append([]component(nil), componentsWithBody...), componentIdemKey)
			values = append(values, key)
		}
		req.Header.Set(HeaderContentDigest, cd)
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		req.ContentLength = int64(len(body))
	} else {
		if len(body) != 0 {
			return nil, fmt.Errorf("httpsig: a %s request carries no body", method)
		}
		if o.idempotency {
			return nil, fmt.Errorf("httpsig: idempotency-key is covered only with a body")
		}
	}
	p, err := o.params(s, components)
	if err != nil {
		return nil, err
	}
	signed, input, signature, err := sign(s, p, values, hex.EncodeToString(sum[:]))
	if err != nil {
		return nil, err
	}
	req.Header.Set(HeaderSignatureInput, input)
	req.Header.Set(HeaderSignature, signature)
	return signed, nil
}

// SignResponse signs a response that acknowledges a request (a receipt, a
// partner's acknowledgement): it sets Content-Digest, Signature-Input and
// Signature in h, covering @status, the response's content-digest and
// content-type (which h must hold), and the request's method, target URI
// and content-digest with the req flag. On the server side req comes from
// Verified.Components; it must carry a ContentDigest (responses
// acknowledge requests with a body).
func SignResponse(h http.Header, status int, body []byte, req RequestComponents, s *certs.Signer, opts ...Option) (*Signed, error) {
	o := collect(opts)
	if status < 100 || status > 999 {
		return nil, fmt.Errorf("httpsig: status %d", status)
	}
	if req.Method == "" || req.TargetURI == "" || req.ContentDigest == "" {
		return nil, fmt.Errorf("%w: the request's method, target URI and content-digest", ErrMissingField)
	}
	ct, ok := fieldValue(h, "Content-Type")
	if !ok || ct == "" {
		return nil, fmt.Errorf("%w: Content-Type", ErrMissingField)
	}
	sum := certs.SM3(body)
	cd := contentDigestOf(sum)
	p, err := o.params(s, componentsResponse)
	if err != nil {
		return nil, err
	}
	values := []string{strconv.Itoa(status), cd, ct, req.Method, req.TargetURI, req.ContentDigest}
	signed, input, signature, err := sign(s, p, values, hex.EncodeToString(sum[:]))
	if err != nil {
		return nil, err
	}
	h.Set(HeaderContentDigest, cd)
	h.Set(HeaderSignatureInput, input)
	h.Set(HeaderSignature, signature)
	return signed, nil
}
