package httpsig

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tongban/tongban/certs"
)

// received is what the Signature-Input and Signature fields say about the
// tb signature.
type received struct {
	params sigParams
	sig    []byte // strict DER
}

// parseSignatureFields reads the tb members of Signature-Input and
// Signature: present (else signature_missing), well-formed RFC 8941, the
// inner list of string components (each bare or with only ;req), exactly
// the parameters created, nonce, keyid, alg in that order, alg sm2-sm3, a
// valid nonce, the member bytes equal to their re-serialization, and a
// strict DER signature (else signature_malformed). Other labels are
// ignored.
func parseSignatureFields(h http.Header) (*received, error) {
	input, ok1 := fieldValue(h, HeaderSignatureInput)
	signature, ok2 := fieldValue(h, HeaderSignature)
	if !ok1 && !ok2 {
		return nil, ErrSignatureMissing.WithDetail("Signature-Input and Signature are required")
	}
	if !ok1 || !ok2 {
		return nil, ErrSignatureMissing.WithDetail("both Signature-Input and Signature are required")
	}
	if len(input) > maxFieldBytes || len(signature) > maxFieldBytes {
		return nil, ErrSignatureMalformed.WithDetail("signature fields too long")
	}
	inputs, err := parseDictionary(input)
	if err != nil {
		return nil, ErrSignatureMalformed.WithDetail("Signature-Input is not an RFC 8941 dictionary")
	}
	sigs, err := parseDictionary(signature)
	if err != nil {
		return nil, ErrSignatureMalformed.WithDetail("Signature is not an RFC 8941 dictionary")
	}
	in, sg := findMember(inputs, Label), findMember(sigs, Label)
	if in == nil && sg == nil {
		return nil, ErrSignatureMissing.WithDetail(`no signature labelled "tb"`)
	}
	if in == nil || sg == nil {
		return nil, ErrSignatureMalformed.WithDetail(`"tb" must be in both Signature-Input and Signature`)
	}
	if in.counted != 1 || sg.counted != 1 {
		return nil, ErrSignatureMalformed.WithDetail(`"tb" repeated`)
	}
	if sg.inner || sg.item.bare.kind != sfBytes || len(sg.item.params) != 0 {
		return nil, ErrSignatureMalformed.WithDetail("Signature tb must be a byte sequence")
	}
	if _, _, err := certs.ParseSignatureDER(sg.item.bare.b); err != nil {
		return nil, ErrSignatureMalformed.withCause("signature is not a strict DER SM2 signature", err)
	}
	if !in.inner {
		return nil, ErrSignatureMalformed.WithDetail("Signature-Input tb must be an inner list")
	}
	rc := &received{sig: sg.item.bare.b}
	for _, it := range in.items {
		if it.bare.kind != sfString || !validSFString(it.bare.s) {
			return nil, ErrSignatureMalformed.WithDetail("covered components must be strings")
		}
		c := component{name: it.bare.s}
		switch {
		case len(it.params) == 0:
		case len(it.params) == 1 && it.params[0].key == "req" && it.params[0].val.kind == sfBoolean && it.params[0].val.t:
			c.req = true
		default:
			return nil, ErrSignatureMalformed.WithDetail("unexpected component parameters")
		}
		rc.params.components = append(rc.params.components, c)
	}
	ps := in.params
	if len(ps) != 4 || ps[0].key != "created" || ps[1].key != "nonce" || ps[2].key != "keyid" || ps[3].key != "alg" {
		return nil, ErrSignatureMalformed.WithDetail("parameters must be exactly created, nonce, keyid, alg in that order")
	}
	if ps[0].val.kind != sfInteger || ps[1].val.kind != sfString || ps[2].val.kind != sfString || ps[3].val.kind != sfString {
		return nil, ErrSignatureMalformed.WithDetail("created must be an integer; nonce, keyid and alg strings")
	}
	if ps[3].val.s != Alg {
		return nil, ErrSignatureMalformed.WithDetail(`alg must be "sm2-sm3"`)
	}
	rc.params.created, rc.params.nonce, rc.params.keyID = ps[0].val.i, ps[1].val.s, ps[2].val.s
	if !validNonce(rc.params.nonce) {
		return nil, ErrSignatureMalformed.WithDetail("nonce must be 16 to 64 characters of [A-Za-z0-9_-]")
	}
	if !validSFString(rc.params.keyID) {
		return nil, ErrSignatureMalformed.WithDetail("bad keyid")
	}
	if in.raw != rc.params.serialize() {
		return nil, ErrSignatureMalformed.WithDetail("Signature-Input tb is not in its canonical serialization")
	}
	return rc, nil
}

func findMember(ms []*sfMember, key string) *sfMember {
	for _, m := range ms {
		if m.key == key {
			return m
		}
	}
	return nil
}

func sameComponents(got, want []component) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// Verified is what the verifier established about a request, put in its
// context for the handlers.
type Verified struct {
	Identity       certs.Identity    // who signed
	Request        Signed            // the signed request, as the exchange log records it
	Body           []byte            // the body, read and checked against Content-Digest
	ContentType    string            // the covered Content-Type value ("" for GET, DELETE)
	IdempotencyKey string            // the covered Idempotency-Key, "" when not covered
	Created        time.Time         // the signature's created parameter
	Nonce          string            // the signature's nonce
	Components     RequestComponents // for SignResponse: method, target URI, content-digest
	// Pending is the nonce still to record when the Verifier deferred it
	// to the handler (Verifier.Defer); nil when it is recorded.
	Pending *PendingNonce
}

// PendingNonce is a verified request's nonce that the handler records in
// the same transaction as what the request writes (one commit instead of
// two), then marks Settled. Verifier.Settle records it on its own when the
// handler did not.
type PendingNonce struct {
	KeyID, Nonce string
	Until        time.Time
	settled      atomic.Bool
}

// Settle marks the nonce recorded (or found replayed) by the handler.
func (p *PendingNonce) Settle() { p.settled.Store(true) }

// Settled reports whether Settle was called.
func (p *PendingNonce) Settled() bool { return p.settled.Load() }

type verifiedKey struct{}

// NewContext returns ctx carrying v.
func NewContext(ctx context.Context, v *Verified) context.Context {
	return context.WithValue(ctx, verifiedKey{}, v)
}

// FromContext returns the Verified the middleware put in ctx.
func FromContext(ctx context.Context) (*Verified, bool) {
	v, ok := ctx.Value(verifiedKey{}).(*Verified)
	return v, ok && v != nil
}

// Verifier checks signed requests (signing.md). Trust and PublicURL are
// required; the other fields have defaults: Nonces an in-process
// MemoryNonces (one replica only — several replicas need a shared store),
// MaxBody 16 MiB, Window 300 s, Now time.Now, OnError WriteError.
type Verifier struct {
	Trust     *certs.TrustStore
	Nonces    NonceStore
	PublicURL string // scheme and authority the clients sign, e.g. https://127.0.0.1:8443
	MaxBody   int64
	Window    time.Duration
	Now       func() time.Time
	OnError   func(w http.ResponseWriter, r *http.Request, err error)
	// RequireIdempotencyKey makes "idempotency-key" a required fifth
	// component of POST, PUT and PATCH (a partner receiving deliveries).
	// Without it the fifth component is accepted but optional.
	RequireIdempotencyKey bool
	// Defer, when set, selects requests whose nonce is not recorded by
	// Verify but handed to the handler (Verified.Pending) to record with
	// its own write; Settle records what the handler did not. The replay
	// check before the body is read stays (Nonces must implement
	// NonceChecker), and the atomic one moves into the handler's write.
	Defer func(*http.Request) bool

	once    sync.Once
	base    string
	initErr error
}

func (v *Verifier) init() {
	v.once.Do(func() {
		if v.Trust == nil {
			v.initErr = errors.New("httpsig: Verifier.Trust is nil")
			return
		}
		if v.base, v.initErr = NormalizeBaseURL(v.PublicURL); v.initErr != nil {
			return
		}
		if v.Nonces == nil {
			v.Nonces = NewMemoryNonces(0)
		}
		if _, ok := v.Nonces.(NonceChecker); v.Defer != nil && !ok {
			v.initErr = errors.New("httpsig: Verifier.Defer needs Nonces that implement NonceChecker")
			return
		}
		if v.MaxBody <= 0 {
			v.MaxBody = DefaultMaxBody
		}
		if v.Window <= 0 {
			v.Window = DefaultWindow
		}
		if v.Now == nil {
			v.Now = time.Now
		}
		if v.OnError == nil {
			v.OnError = WriteError
		}
	})
}

// Middleware verifies every request before next sees it; a refused request
// goes to OnError with an *Error and never reaches next. On success next
// gets the Verified in the request context and r.Body replaced by the
// buffered, checked body. The role check (403 forbidden) is left to the
// routes (RequireRole). It panics if Trust is nil or PublicURL is not a
// scheme-and-authority URL: a configuration error found at startup.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	v.init()
	if v.initErr != nil {
		panic(v.initErr)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, v.MaxBody)
		}
		verified, err := v.Verify(r)
		if err != nil {
			v.OnError(w, r, err)
			return
		}
		r = r.WithContext(NewContext(r.Context(), verified))
		if verified.Pending == nil {
			next.ServeHTTP(w, r)
			return
		}
		sw := &settlingWriter{ResponseWriter: w, v: v, r: r}
		next.ServeHTTP(sw, r)
		sw.settle()
	})
}

// settlingWriter records a deferred nonce the handler left unrecorded
// before the first byte of the answer goes out (Verifier.Defer): if it
// turns out replayed, the handler's answer is replaced by the refusal and
// what the handler writes is dropped.
type settlingWriter struct {
	http.ResponseWriter
	v       *Verifier
	r       *http.Request
	done    bool // settled
	refused bool // the answer is the refusal: drop the handler's
}

func (w *settlingWriter) settle() {
	if w.done {
		return
	}
	w.done = true
	if err := w.v.Settle(w.r.Context()); err != nil {
		w.refused = true
		clear(w.ResponseWriter.Header()) // the handler's, signature fields included
		w.v.OnError(w.ResponseWriter, w.r, err)
	}
}

func (w *settlingWriter) WriteHeader(code int) {
	if w.settle(); !w.refused {
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *settlingWriter) Write(b []byte) (int, error) {
	if w.settle(); w.refused {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *settlingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Verify runs the checks of signing.md on r, in its order:
//
//  1. (before anything) a Content-Length over MaxBody → 413 too_large;
//  2. Signature-Input and Signature present and well formed, alg, covered
//     components and parameters → 401 signature_missing / signature_malformed;
//  3. keyid known, certificate valid now, chained with the default ID, not
//     revoked → 401 key_unknown / certificate_invalid;
//  4. created within ±Window → 401 signature_expired;
//  5. nonce not seen for this keyid (when Nonces implements NonceChecker)
//     → 401 replayed;
//  6. the body, read up to MaxBody (413 too_large beyond, without reading
//     it whole), hashed while read, equal to Content-Digest → 400
//     digest_mismatch (a GET or DELETE must have no body);
//  7. the SM2 signature over the rebuilt base → 401 signature_invalid;
//  8. the nonce recorded atomically until created+Window → 401 replayed
//     (for a request Defer selects: by the handler, with its write).
//
// On success r.Body is replaced by the buffered body. The error is always
// an *Error.
func (v *Verifier) Verify(r *http.Request) (*Verified, error) {
	v.init()
	if v.initErr != nil {
		return nil, ErrInternal.withCause("", v.initErr)
	}
	if r.ContentLength > v.MaxBody {
		return nil, ErrTooLarge.WithDetail(fmt.Sprintf("the body may not exceed %d bytes", v.MaxBody))
	}
	rc, err := parseSignatureFields(r.Header)
	if err != nil {
		return nil, err
	}
	hasBody, ok := methodHasBody(r.Method)
	if !ok {
		return nil, ErrSignatureMalformed.WithDetail("method " + r.Method + " is not covered by the signature profile")
	}
	want := componentsNoBody
	if hasBody {
		want = componentsWithBody
		if len(rc.params.components) == len(componentsWithBody)+1 || v.RequireIdempotencyKey {
			want = append(append([]component(nil), componentsWithBody...), componentIdemKey)
		}
	}
	if !sameComponents(rc.params.components, want) {
		return nil, ErrSignatureMalformed.WithDetail("covered components must be " + componentList(want))
	}

	target := v.base + requestTarget(r)
	values := []string{r.Method, target}
	vf := &Verified{Components: RequestComponents{Method: r.Method, TargetURI: target}}
	var digest []byte
	if hasBody {
		cd, ok := fieldValue(r.Header, HeaderContentDigest)
		if !ok {
			return nil, ErrSignatureMalformed.WithDetail("Content-Digest is required")
		}
		if digest, err = parseContentDigest(cd); err != nil {
			return nil, ErrSignatureMalformed.withCause(err.Error(), err)
		}
		ct, ok := fieldValue(r.Header, "Content-Type")
		if !ok || ct == "" {
			return nil, ErrSignatureMalformed.WithDetail("Content-Type is required")
		}
		if len(ct) > maxFieldBytes {
			return nil, ErrSignatureMalformed.WithDetail("Content-Type too long")
		}
		values = append(values, cd, ct)
		vf.ContentType, vf.Components.ContentDigest = ct, cd
		if len(want) > len(componentsWithBody) {
			key, ok := fieldValue(r.Header, HeaderIdempotencyKey)
			if !ok || key == "" {
				return nil, ErrSignatureMalformed.WithDetail("Idempotency-Key is required")
			}
			if len(key) > maxFieldBytes {
				return nil, ErrSignatureMalformed.WithDetail("Idempotency-Key too long")
			}
			values = append(values, key)
			vf.IdempotencyKey = key
		}
	}

	now := v.Now()
	id, err := v.Trust.Lookup(rc.params.keyID, now)
	if err != nil {
		if errors.Is(err, certs.ErrKeyUnknown) {
			return nil, ErrKeyUnknown.withCause("no certificate with this keyid", err)
		}
		return nil, ErrCertificateInvalid.withCause(err.Error(), err)
	}

	created := time.Unix(rc.params.created, 0)
	if d := now.Sub(created); d > v.Window || d < -v.Window {
		return nil, ErrSignatureExpired.WithDetail(fmt.Sprintf("created must be within %d s of the receiver's clock", int(v.Window/time.Second)))
	}

	ctx := r.Context()
	if c, ok := v.Nonces.(NonceChecker); ok {
		seen, err := c.Seen(ctx, rc.params.keyID, rc.params.nonce)
		if err != nil {
			return nil, ErrInternal.withCause("", err)
		}
		if seen {
			return nil, ErrReplayed.WithDetail("this nonce was already used")
		}
	}

	body, sum, err := readBody(r, v.MaxBody)
	if err != nil {
		return nil, err
	}
	if hasBody {
		if !bytes.Equal(sum, digest) {
			return nil, ErrDigestMismatch.WithDetail("Content-Digest is not the SM3 of the body")
		}
	} else if len(body) != 0 {
		return nil, ErrDigestMismatch.WithDetail("a " + r.Method + " request must not carry a body")
	}

	base := buildBase(&rc.params, values)
	if err := certs.VerifySignature(id.Certificate, []byte(base), rc.sig); err != nil {
		return nil, ErrSignatureInvalid.withCause("", err)
	}

	if v.Defer != nil && v.Defer(r) {
		vf.Pending = &PendingNonce{KeyID: rc.params.keyID, Nonce: rc.params.nonce, Until: created.Add(v.Window)}
	} else if err := v.remember(ctx, rc.params.keyID, rc.params.nonce, created.Add(v.Window)); err != nil {
		return nil, err
	}

	if r.Body != nil {
		r.Body.Close()
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }

	vf.Identity = id
	vf.Body = body
	vf.Created = created
	vf.Nonce = rc.params.nonce
	vf.Request = Signed{
		Digest:        hex.EncodeToString(sum),
		SignatureBase: base,
		Signature:     base64.StdEncoding.EncodeToString(rc.sig),
		KeyID:         rc.params.keyID,
	}
	return vf, nil
}

// remember records a nonce in Nonces: ErrReplayed if it is there already.
func (v *Verifier) remember(ctx context.Context, keyID, nonce string, until time.Time) error {
	fresh, err := v.Nonces.Remember(ctx, keyID, nonce, until)
	if err != nil {
		if errors.Is(err, ErrNonceStoreFull) {
			return ErrRateLimited.withCause("", err)
		}
		return ErrInternal.withCause("", err)
	}
	if !fresh {
		return ErrReplayed.WithDetail("this nonce was already used")
	}
	return nil
}

// Settle records the deferred nonce of the request in ctx (Defer) unless
// the handler did; an *Error (replayed, rate_limited, internal) when it
// cannot, which the caller answers instead of the handler's result. A
// request without a deferred nonce settles to nil.
func (v *Verifier) Settle(ctx context.Context) error {
	vf, ok := FromContext(ctx)
	if !ok || vf.Pending == nil {
		return nil
	}
	p := vf.Pending
	if p.Settled() {
		if n, ok := v.Nonces.(NonceNoter); ok {
			n.Note(p.KeyID, p.Nonce, p.Until)
		}
		return nil
	}
	p.Settle()
	return v.remember(ctx, p.KeyID, p.Nonce, p.Until)
}

// readBody reads at most max bytes of r.Body, hashing them with SM3 as
// they come; more than max is ErrTooLarge without reading further.
func readBody(r *http.Request, max int64) ([]byte, []byte, error) {
	h := certs.NewSM3()
	if r.Body == nil || r.Body == http.NoBody {
		return nil, h.Sum(nil), nil
	}
	size := 512
	if r.ContentLength > 0 && r.ContentLength <= max {
		size = int(r.ContentLength)
	}
	// Room for the whole announced body plus bytes.MinRead, so that
	// ReadFrom can see EOF without growing the buffer.
	buf := bytes.NewBuffer(make([]byte, 0, size+bytes.MinRead))
	n, err := buf.ReadFrom(io.TeeReader(io.LimitReader(r.Body, max+1), h))
	var tooBig *http.MaxBytesError
	switch {
	case n > max || errors.As(err, &tooBig):
		return nil, nil, ErrTooLarge.WithDetail(fmt.Sprintf("the body may not exceed %d bytes", max))
	case err != nil:
		return nil, nil, ErrMalformed.withCause("the body could not be read", err)
	}
	return buf.Bytes(), h.Sum(nil), nil
}

func componentList(cs []component) string {
	s := "("
	for i, c := range cs {
		if i > 0 {
			s += " "
		}
		s += c.String()
	}
	return s + ")"
}

// RequireRole returns a middleware, placed after Verifier.Middleware, that
// lets through only requests whose signer has one of roles; others get 403
// forbidden (401 signature_missing if no verified signature is in the
// context).
func RequireRole(roles ...certs.Role) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			v, ok := FromContext(r.Context())
			if !ok {
				WriteError(w, r, ErrSignatureMissing)
				return
			}
			for _, role := range roles {
				if v.Identity.Role == role {
					next.ServeHTTP(w, r)
					return
				}
			}
			WriteError(w, r, ErrForbidden.WithDetail("the signer's role may not call this route"))
		})
	}
}

// VerifyResponse checks a signed response (a receipt or a partner's
// acknowledgement) to req, the request as it was sent (with its
// Content-Digest header): the signature fields as for a request, the
// covered components exactly ("@status" "content-digest" "content-type"
// "@method";req "@target-uri";req "content-digest";req), the signer known
// and valid now, allowed by allow (required; see AllowKeyIDs, AllowRole,
// AllowPartner), created within ±300 s (WithWindow, WithClock), the
// response Content-Digest equal to the SM3 of body, and the signature over
// the base whose ;req lines are rebuilt from req. Errors are *Error values
// (ErrForbidden when allow refuses the signer).
func VerifyResponse(resp *http.Response, body []byte, req *http.Request, trust *certs.TrustStore, allow func(certs.Identity) bool, opts ...Option) (*Signed, certs.Identity, error) {
	o := collect(opts)
	if trust == nil || allow == nil || resp == nil || req == nil {
		return nil, certs.Identity{}, ErrInternal.withCause("", errors.New("httpsig: VerifyResponse needs a response, its request, a trust store and an allow function"))
	}
	rc, err := parseSignatureFields(resp.Header)
	if err != nil {
		return nil, certs.Identity{}, err
	}
	if !sameComponents(rc.params.components, componentsResponse) {
		return nil, certs.Identity{}, ErrSignatureMalformed.WithDetail("covered components must be " + componentList(componentsResponse))
	}
	reqc, err := SentRequestComponents(req)
	if err != nil {
		return nil, certs.Identity{}, ErrInternal.withCause("", err)
	}
	if reqc.ContentDigest == "" {
		return nil, certs.Identity{}, ErrInternal.withCause("", fmt.Errorf("%w: the request's Content-Digest", ErrMissingField))
	}
	cd, ok := fieldValue(resp.Header, HeaderContentDigest)
	if !ok {
		return nil, certs.Identity{}, ErrSignatureMalformed.WithDetail("Content-Digest is required")
	}
	digest, err := parseContentDigest(cd)
	if err != nil {
		return nil, certs.Identity{}, ErrSignatureMalformed.withCause(err.Error(), err)
	}
	ct, ok := fieldValue(resp.Header, "Content-Type")
	if !ok || ct == "" {
		return nil, certs.Identity{}, ErrSignatureMalformed.WithDetail("Content-Type is required")
	}
	now := o.now()
	id, err := trust.Lookup(rc.params.keyID, now)
	if err != nil {
		if errors.Is(err, certs.ErrKeyUnknown) {
			return nil, certs.Identity{}, ErrKeyUnknown.withCause("no certificate with this keyid", err)
		}
		return nil, certs.Identity{}, ErrCertificateInvalid.withCause(err.Error(), err)
	}
	if !allow(id) {
		return nil, id, ErrForbidden.WithDetail("this signer may not sign this response")
	}
	created := time.Unix(rc.params.created, 0)
	if d := now.Sub(created); d > o.window || d < -o.window {
		return nil, id, ErrSignatureExpired.WithDetail("created is outside the allowed window")
	}
	if o.nonces != nil {
		if c, ok := o.nonces.(NonceChecker); ok {
			if seen, err := c.Seen(context.Background(), rc.params.keyID, rc.params.nonce); err != nil {
				return nil, id, ErrInternal.withCause("", err)
			} else if seen {
				return nil, id, ErrReplayed.WithDetail("this nonce was already used")
			}
		}
	}
	sum := certs.SM3(body)
	if !bytes.Equal(sum[:], digest) {
		return nil, id, ErrDigestMismatch.WithDetail("Content-Digest is not the SM3 of the body")
	}
	values := []string{strconv.Itoa(resp.StatusCode), cd, ct, reqc.Method, reqc.TargetURI, reqc.ContentDigest}
	base := buildBase(&rc.params, values)
	if err := certs.VerifySignature(id.Certificate, []byte(base), rc.sig); err != nil {
		return nil, id, ErrSignatureInvalid.withCause("", err)
	}
	if o.nonces != nil {
		fresh, err := o.nonces.Remember(context.Background(), rc.params.keyID, rc.params.nonce, created.Add(o.window))
		if err != nil {
			return nil, id, ErrInternal.withCause("", err)
		}
		if !fresh {
			return nil, id, ErrReplayed.WithDetail("this nonce was already used")
		}
	}
	return &Signed{
		Digest:        hex.EncodeToString(sum[:]),
		SignatureBase: base,
		Signature:     base64.StdEncoding.EncodeToString(rc.sig),
		KeyID:         rc.params.keyID,
	}, id, nil
}

// AllowKeyIDs allows exactly the signers with these key ids (a receipt:
// the gateway's key).
func AllowKeyIDs(keyIDs ...string) func(certs.Identity) bool {
	set := make(map[string]bool, len(keyIDs))
	for _, k := range keyIDs {
		set[k] = true
	}
	return func(id certs.Identity) bool { return set[id.KeyID] }
}

// AllowRole allows any signer with this role.
func AllowRole(role certs.Role) func(certs.Identity) bool {
	return func(id certs.Identity) bool { return id.Role == role }
}

// AllowPartner allows the keys of one partner (an acknowledgement of a
// delivery to that partner), by partner name such as "liwan".
func AllowPartner(partner string) func(certs.Identity) bool {
	return func(id certs.Identity) bool { return id.Role == certs.RolePartner && id.Partner == partner }
}
