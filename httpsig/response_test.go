package httpsig

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tongban/tongban/certs"
)

// receiptServer is a gateway-like server: it verifies the request and
// answers 202 with a receipt signed by the gateway key, bound to the
// request.
func receiptServer(t *testing.T) *httptest.Server {
	t.Helper()
	v := &Verifier{Trust: pki.TrustStore(), Nonces: NewMemoryNonces(100)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/exchanges", func(w http.ResponseWriter, r *http.Request) {
		vf, _ := FromContext(r.Context())
		body := []byte(`{"exchangeId":"01JD","state":"queued"}`)
		w.Header().Set("Content-Type", "application/json")
		if _, err := SignResponse(w.Header(), http.StatusAccepted, body, vf.Components, pki.Gateway); err != nil {
			t.Error(err)
		}
		w.WriteHeader(http.StatusAccepted)
		w.Write(body)
	})
	srv := httptest.NewUnstartedServer(nil)
	v.PublicURL = "http://" + srv.Listener.Addr().String()
	srv.Config.Handler = v.Middleware(mux)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func TestSignedResponseRoundTrip(t *testing.T) {
	t.Parallel()
	srv := receiptServer(t)
	body := []byte("<case/>")
	req, _ := http.NewRequest("POST", srv.URL+"/v1/exchanges", nil)
	req.Header.Set("Content-Type", "application/xml; charset=GBK")
	reqSigned, err := SignRequest(req, body, pki.Nanhai)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	respBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("status %d: %s", resp.StatusCode, respBody)
	}
	trust := pki.TrustStore()
	gw := AllowKeyIDs(pki.Gateway.KeyID())
	signed, id, err := VerifyResponse(resp, respBody, req, trust, gw)
	if err != nil {
		t.Fatalf("VerifyResponse: %v", err)
	}
	if id.Role != certs.RoleGateway || signed.KeyID != pki.Gateway.KeyID() || signed.Digest != certs.SM3Hex(respBody) {
		t.Errorf("identity %+v signed %+v", id, signed)
	}
	lines, err := ParseBase(signed.SignatureBase)
	if err != nil {
		t.Fatal(err)
	}
	reqLines, _ := ParseBase(reqSigned.SignatureBase)
	for k, want := range map[string]string{
		"@status":            "202",
		"content-type":       "application/json",
		"content-digest":     ContentDigest(respBody),
		"@method;req":        reqLines["@method"],
		"@target-uri;req":    reqLines["@target-uri"],
		"content-digest;req": reqLines["content-digest"],
	} {
		if lines[k] != want {
			t.Errorf("response base %s = %q, want %q", k, lines[k], want)
		}
	}
	if !strings.HasPrefix(lines["@signature-params"], `("@status" "content-digest" "content-type" "@method";req "@target-uri";req "content-digest";req);created=`) {
		t.Errorf("@signature-params %s", lines["@signature-params"])
	}
	if err := VerifySigned(signed, pki.Gateway.Certificate()); err != nil {
		t.Errorf("VerifySigned(receipt): %v", err)
	}

	// Refusals.
	otherReq, _ := http.NewRequest("POST", srv.URL+"/v1/exchanges", nil)
	otherReq.Header.Set("Content-Type", "application/xml; charset=GBK")
	if _, err := SignRequest(otherReq, []byte("<other/>"), pki.Nanhai); err != nil {
		t.Fatal(err)
	}
	withStatus := func(code int) *http.Response { r := *resp; r.StatusCode = code; return &r }
	withHeader := func(k, v string) *http.Response {
		r := *resp
		r.Header = resp.Header.Clone()
		r.Header.Set(k, v)
		return &r
	}
	later := WithClock(func() time.Time { return time.Now().Add(10 * time.Minute) })
	for _, tc := range []struct {
		name  string
		resp  *http.Response
		body  []byte
		req   *http.Request
		allow func(certs.Identity) bool
		opts  []Option
		want  *Error
	}{
		{"body tampered", resp, append(bytes.Clone(respBody), ' '), req, gw, nil, ErrDigestMismatch},
		{"status changed", withStatus(200), respBody, req, gw, nil, ErrSignatureInvalid},
		{"bound to another request", resp, respBody, otherReq, gw, nil, ErrSignatureInvalid},
		{"content-type changed", withHeader("Content-Type", "text/plain"), respBody, req, gw, nil, ErrSignatureInvalid},
		{"signer not allowed", resp, respBody, req, AllowPartner("liwan"), nil, ErrForbidden},
		{"too late", resp, respBody, req, gw, []Option{later}, ErrSignatureExpired},
		{"no signature", withHeader("Signature", ""), respBody, req, gw, nil, ErrSignatureMalformed},
		{"request components", withHeader("Signature-Input", strings.Replace(resp.Header.Get("Signature-Input"), `"@status" `, "", 1)), respBody, req, gw, nil, ErrSignatureMalformed},
	} {
		_, _, err := VerifyResponse(tc.resp, tc.body, tc.req, trust, tc.allow, tc.opts...)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, _, err := VerifyResponse(resp, respBody, req, trust, nil); err == nil {
		t.Error("VerifyResponse without an allow function succeeded")
	}

	// With a response nonce store, the same acknowledgement counts once.
	ns := NewMemoryNonces(10)
	if _, _, err := VerifyResponse(resp, respBody, req, trust, gw, WithResponseNonces(ns)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := VerifyResponse(resp, respBody, req, trust, gw, WithResponseNonces(ns)); !errors.Is(err, ErrReplayed) {
		t.Errorf("second acknowledgement: %v, want replayed", err)
	}
}

func TestSignResponseNeedsRequest(t *testing.T) {
	t.Parallel()
	h := http.Header{"Content-Type": {"application/json"}}
	if _, err := SignResponse(h, 200, nil, RequestComponents{Method: "GET", TargetURI: publicURL + "/"}, pki.Liwan); !errors.Is(err, ErrMissingField) {
		t.Errorf("no request digest: %v", err)
	}
	if _, err := SignResponse(http.Header{}, 200, nil, RequestComponents{"POST", publicURL + "/", ContentDigest(nil)}, pki.Liwan); !errors.Is(err, ErrMissingField) {
		t.Errorf("no Content-Type: %v", err)
	}
}

func TestSignRequestRefusals(t *testing.T) {
	t.Parallel()
	post, _ := http.NewRequest("POST", publicURL+"/v1/exchanges", nil)
	if _, err := SignRequest(post, nil, pki.Nanhai); !errors.Is(err, ErrMissingField) {
		t.Errorf("POST without Content-Type: %v", err)
	}
	post.Header.Set("Content-Type", "application/json")
	if _, err := SignRequest(post, nil, pki.Nanhai, WithIdempotencyKey()); !errors.Is(err, ErrMissingField) {
		t.Errorf("idempotency key option without the header: %v", err)
	}
	if _, err := SignRequest(post, nil, pki.Nanhai, WithNonce("short")); err == nil {
		t.Error("short nonce accepted")
	}
	head, _ := http.NewRequest("HEAD", publicURL+"/", nil)
	if _, err := SignRequest(head, nil, pki.Nanhai); !errors.Is(err, ErrUnsupportedMethod) {
		t.Errorf("HEAD: %v", err)
	}
	get, _ := http.NewRequest("GET", publicURL+"/", nil)
	if _, err := SignRequest(get, []byte("x"), pki.Nanhai); err == nil {
		t.Error("GET with a body signed")
	}
	// Every signature is fresh: two signings differ in nonce and signature.
	a, _ := SignRequest(post, []byte("{}"), pki.Nanhai)
	b, _ := SignRequest(post, []byte("{}"), pki.Nanhai)
	if a.SignatureBase == b.SignatureBase || a.Signature == b.Signature {
		t.Error("two signings share nonce or signature")
	}
	if strings.Count(post.Header.Get("Signature"), "tb=") != 1 {
		t.Error("re-signing left the old signature")
	}
}

func TestVerifySignedAndParseBase(t *testing.T) {
	t.Parallel()
	req, _ := http.NewRequest("POST", publicURL+"/v1/exchanges", nil)
	req.Header.Set("Content-Type", "application/json")
	s, err := SignRequest(req, []byte(`{"a":1}`), pki.Liwan)
	if err != nil {
		t.Fatal(err)
	}
	cert := pki.Liwan.Certificate()
	if err := VerifySigned(s, cert); err != nil {
		t.Fatal(err)
	}
	mod := func(f func(*Signed)) *Signed { c := *s; f(&c); return &c }
	for _, tc := range []struct {
		name string
		s    *Signed
		cert *certs.Certificate
		want *Error
	}{
		{"digest of another body", mod(func(c *Signed) { c.Digest = certs.SM3Hex([]byte("x")) }), cert, ErrDigestMismatch},
		{"base edited", mod(func(c *Signed) { c.SignatureBase = strings.Replace(c.SignatureBase, "POST", "PUT", 1) }), cert, ErrSignatureInvalid},
		{"other certificate", s, pki.Nanhai.Certificate(), ErrKeyUnknown},
		{"keyid edited", mod(func(c *Signed) { c.KeyID = pki.Nanhai.KeyID() }), pki.Nanhai.Certificate(), ErrSignatureMalformed},
		{"signature not base64", mod(func(c *Signed) { c.Signature = "!!" }), cert, ErrSignatureMalformed},
		{"signature truncated", mod(func(c *Signed) { c.Signature = c.Signature[:8] }), cert, ErrSignatureMalformed},
	} {
		if err := VerifySigned(tc.s, tc.cert); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}

	get, _ := http.NewRequest("GET", publicURL+"/v1/cases/N1", nil)
	g, _ := SignRequest(get, nil, pki.Liwan)
	if err := VerifySigned(g, cert); err != nil {
		t.Errorf("GET: %v", err)
	}
	g.Digest = certs.SM3Hex([]byte("x"))
	if err := VerifySigned(g, cert); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("GET with a non-empty digest: %v", err)
	}

	lines, err := ParseBase(s.SignatureBase)
	if err != nil || len(lines) != 5 || lines["@method"] != "POST" || lines["content-type"] != "application/json" {
		t.Errorf("ParseBase = %v, %v", lines, err)
	}
	for _, bad := range []string{"", "x", `"a" 1`, `"a": 1` + "\n" + `"a": 2`, `"": 1`, `"a`} {
		if _, err := ParseBase(bad); err == nil {
			t.Errorf("ParseBase(%q) succeeded", bad)
		}
	}
}

func TestMemoryNonces(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	m := NewMemoryNonces(3)
	m.now = func() time.Time { return now }
	for i, n := range []string{"a", "b", "c"} {
		if fresh, err := m.Remember(ctx, "k", n, now.Add(time.Duration(i+1)*time.Second)); !fresh || err != nil {
			t.Fatalf("%s: %v %v", n, fresh, err)
		}
	}
	if fresh, _ := m.Remember(ctx, "k", "a", now.Add(time.Hour)); fresh {
		t.Error("repeated nonce is fresh")
	}
	if _, err := m.Remember(ctx, "k", "d", now.Add(time.Hour)); !errors.Is(err, ErrNonceStoreFull) {
		t.Errorf("full store: %v", err)
	}
	if seen, _ := m.Seen(ctx, "k", "b"); !seen {
		t.Error("Seen(b) = false")
	}
	// Time passes: a and b expire, room is made, c is still remembered.
	now = now.Add(2500 * time.Millisecond)
	if fresh, err := m.Remember(ctx, "k", "d", now.Add(time.Hour)); !fresh || err != nil {
		t.Errorf("after expiry: %v %v", fresh, err)
	}
	if fresh, _ := m.Remember(ctx, "k", "c", now.Add(time.Hour)); fresh {
		t.Error("unexpired c forgotten")
	}
	if m.Len() > 3 {
		t.Errorf("holds %d > 3", m.Len())
	}

	// Atomic: many goroutines remembering one pair, exactly one is fresh.
	m2 := NewMemoryNonces(0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	freshCount := 0
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if fresh, _ := m2.Remember(ctx, "k", "n", time.Now().Add(time.Minute)); fresh {
				mu.Lock()
				freshCount++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if freshCount != 1 {
		t.Errorf("%d goroutines saw the nonce as fresh", freshCount)
	}
}

// TestMemoryNoncesForgetExpired: expired nonces are dropped as new ones are
// recorded, not only once the store is full, and unexpired ones are kept.
func TestMemoryNoncesForgetExpired(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	m := NewMemoryNonces(1000)
	m.now = func() time.Time { return now }
	for i := range 100 {
		until := now.Add(time.Second)
		if i%10 == 0 {
			until = now.Add(time.Hour)
		}
		if fresh, err := m.Remember(ctx, "k", fmt.Sprint(i), until); !fresh || err != nil {
			t.Fatalf("%d: %v %v", i, fresh, err)
		}
	}
	now = now.Add(2 * time.Second)
	if fresh, err := m.Remember(ctx, "k", "new", now.Add(time.Second)); !fresh || err != nil {
		t.Fatalf("new: %v %v", fresh, err)
	}
	if got := m.Len(); got != 11 {
		t.Errorf("holds %d nonces, want the 10 unexpired and the new one", got)
	}
	if fresh, _ := m.Remember(ctx, "k", "50", now.Add(time.Hour)); fresh {
		t.Error("unexpired nonce 50 forgotten")
	}
}

// storeOnlyNonces implements NonceStore without NonceChecker, as a shared
// database might.
type storeOnlyNonces struct{ m *MemoryNonces }

func (s storeOnlyNonces) Remember(ctx context.Context, k, n string, until time.Time) (bool, error) {
	return s.m.Remember(ctx, k, n, until)
}

type failingNonces struct{}

func (failingNonces) Remember(context.Context, string, string, time.Time) (bool, error) {
	return false, errors.New("database unreachable")
}

func TestNonceStoreVariants(t *testing.T) {
	t.Parallel()
	body := []byte("{}")
	req := clientRequest(t, pki.Liwan, "POST", "/v1/exchanges", "application/json", body)

	v := newVerifier()
	v.Nonces = storeOnlyNonces{NewMemoryNonces(10)}
	rec, p, _ := serve(t, v, receivedRequest(req, body))
	expect(t, "store only, first", rec, p, 204, "")
	rec, p, _ = serve(t, v, receivedRequest(req, body))
	expect(t, "store only, replay", rec, p, 401, "replayed")

	v = newVerifier()
	v.Nonces = failingNonces{}
	rec, p, _ = serve(t, v, receivedRequest(req, body))
	expect(t, "store down", rec, p, 500, "internal")
	if strings.Contains(rec.Body.String(), "unreachable") {
		t.Error("internal cause sent to the client")
	}

	v = newVerifier()
	full := NewMemoryNonces(1)
	full.Remember(context.Background(), "x", "y", time.Now().Add(time.Hour))
	v.Nonces = full
	rec, p, _ = serve(t, v, receivedRequest(req, body))
	expect(t, "store full", rec, p, 429, "rate_limited")
	if rec.Header().Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
}

func TestMiddlewareConfiguration(t *testing.T) {
	t.Parallel()
	for _, v := range []*Verifier{{PublicURL: publicURL}, {Trust: pki.TrustStore(), PublicURL: "https://x/with/path"}, {Trust: pki.TrustStore()}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Middleware accepted %+v", v)
				}
			}()
			v.Middleware(http.NotFoundHandler())
		}()
	}
	// The OnError hook sees every refusal (the gateway counts and logs them).
	var got error
	v := newVerifier()
	v.OnError = func(w http.ResponseWriter, r *http.Request, err error) { got = err; w.WriteHeader(499) }
	rec := httptest.NewRecorder()
	v.Middleware(http.NotFoundHandler()).ServeHTTP(rec, httptest.NewRequest("GET", "/v1/x", nil))
	if rec.Code != 499 || !errors.Is(got, ErrSignatureMissing) {
		t.Errorf("OnError got %v, wrote %d", got, rec.Code)
	}
}

// TestMemoryNoncesDefaultHoldsAWindowAtLoad: the default store holds the
// nonces of a 300 s window at well over 1,000 signatures per second (the
// old bound of 100,000 refused every acknowledgement after ~100 s at
// 1,000 deliveries/s), and pairs that differ only in where the key id
// ends and the nonce begins are different pairs.
func TestMemoryNoncesDefaultHoldsAWindowAtLoad(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	m := NewMemoryNonces(0)
	m.now = func() time.Time { return now }
	const n = 300 * 1200 // the window at 1,200/s
	for i := range n {
		if fresh, err := m.Remember(ctx, "9f2c0e1", fmt.Sprintf("nonce-%08d", i), now.Add(300*time.Second)); !fresh || err != nil {
			t.Fatalf("nonce %d of a window: fresh %v, %v", i, fresh, err)
		}
	}
	if fresh, _ := m.Remember(ctx, "9f2c0e1", "nonce-00000007", now.Add(300*time.Second)); fresh {
		t.Error("a nonce of the window was forgotten")
	}
	for _, p := range [][2]string{{"ab", "c"}, {"a", "bc"}, {"abc", ""}} {
		if fresh, err := m.Remember(ctx, p[0], p[1], now.Add(time.Second)); !fresh || err != nil {
			t.Errorf("(%q, %q): fresh %v, %v", p[0], p[1], fresh, err)
		}
	}
	if m.Len() != n+3 {
		t.Errorf("holds %d, want %d", m.Len(), n+3)
	}
}
