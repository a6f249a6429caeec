package httpsig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/internal/pkitest"
)

// pki is one development PKI for the whole package's tests.
var pki *certs.DevPKI

func TestMain(m *testing.M) {
	os.Exit(pkitest.Run(m, "httpsig-pki-", func(p *certs.DevPKI, _ string) { pki = p }))
}

const publicURL = "https://127.0.0.1:8443"

// testNow is the receiver's clock in table tests.
var testNow = time.Now().Truncate(time.Second)

func newVerifier() *Verifier {
	return &Verifier{
		Trust:     pki.TrustStore(),
		Nonces:    NewMemoryNonces(1000),
		PublicURL: publicURL,
		Now:       func() time.Time { return testNow },
	}
}

// clientRequest builds and signs a request as a client would send it to
// publicURL+path.
func clientRequest(t testing.TB, s *certs.Signer, method, path, contentType string, body []byte, opts ...Option) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, publicURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	opts = append([]Option{WithClock(func() time.Time { return testNow })}, opts...)
	if _, err := SignRequest(req, body, s, opts...); err != nil {
		t.Fatal(err)
	}
	return req
}

// received turns a client request into the request a server handler gets.
func receivedRequest(req *http.Request, body []byte) *http.Request {
	sr := httptest.NewRequest(req.Method, req.URL.RequestURI(), bytes.NewReader(body))
	sr.Header = req.Header.Clone()
	sr.Host = req.URL.Host
	sr.ContentLength = int64(len(body))
	return sr
}

type problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Code     string `json:"code"`
	Detail   string `json:"detail"`
	Instance string `json:"instance"`
}

// serve runs r through v's middleware and returns the recorder, the
// problem if any, and the Verified the handler saw.
func serve(t testing.TB, v *Verifier, r *http.Request) (*httptest.ResponseRecorder, problem, *Verified) {
	t.Helper()
	var got *Verified
	h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		vf, ok := FromContext(r.Context())
		if !ok {
			t.Error("handler reached without a Verified in the context")
		}
		got = vf
		w.WriteHeader(http.StatusNoContent)
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	var p problem
	if rec.Code != http.StatusNoContent {
		if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("refusal with Content-Type %q", ct)
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatalf("problem body %q: %v", rec.Body.String(), err)
		}
		if p.Type != "urn:tongban:problem:"+p.Code || p.Status != rec.Code || p.Title == "" || p.Instance != r.URL.Path {
			t.Errorf("problem %+v does not follow RFC 9457 as the contract shapes it", p)
		}
		if got != nil {
			t.Error("refused request reached the handler")
		}
	}
	return rec, p, got
}

func expect(t testing.TB, name string, rec *httptest.ResponseRecorder, p problem, status int, code string) {
	t.Helper()
	if rec.Code != status || p.Code != code {
		t.Errorf("%s: got %d %q (%s), want %d %q", name, rec.Code, p.Code, p.Detail, status, code)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(fmt.Sprint(err))
	}
	return v
}

func httptestNewRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }
