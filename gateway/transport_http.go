package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/go-kit/kit/metrics"
	kithttp "github.com/go-kit/kit/transport/http"

	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/httpsig"
)

// HTTPOptions wires the HTTP transport.
type HTTPOptions struct {
	// Verifier checks every request's signature before anything is parsed.
	Verifier *httpsig.Verifier
	// Signer is the gateway key; it signs receipts.
	Signer *certs.Signer
	// PublicURL is the base URL partners sign against (for receipts' ;req).
	PublicURL string
	Logger    *slog.Logger
	// Extra signed routes (admin, audit), registered on the signed mux by
	// pattern ("POST /admin/v1/…").
	Routes map[string]http.Handler
	// Deny records an authenticated POST refused outside the service (an
	// unknown route) as a denied log entry, and returns the error to answer.
	Deny func(context.Context, Request, error) error
	// Operations routes: unsigned.
	Ready   func(context.Context) error
	Metrics http.Handler
	// Unauthenticated counts requests refused before their signature
	// verified, by problem code (signing.md: counted and logged by the
	// process, never written to the exchange log); optional.
	Unauthenticated metrics.Counter
	// Console is the web console, served under /console/ with its own
	// session instead of signed requests (nil: no console).
	Console http.Handler
}

type ctxKey int

const (
	requestKey ctxKey = iota
	writerKey
)

// The routes that write with a log entry (a case, a status, or the denial
// of a refused one): their requests' nonces are recorded in that write's
// transaction (writesWithEntry, httpsig.Verifier.Defer, foldNonce).
const (
	routeSubmit         = "POST /v1/exchanges"
	routeStatus         = "POST /v1/status"
	routeExchangeStatus = "POST /v1/exchanges/{id}/status"
)

// writeRoutes matches the requests of those routes as the handler's mux
// does.
var writeRoutes = func() *http.ServeMux {
	m := http.NewServeMux()
	for _, p := range []string{routeSubmit, routeStatus, routeExchangeStatus} {
		m.Handle(p, http.NotFoundHandler())
	}
	return m
}()

// writesWithEntry selects the requests whose nonce the service records in
// the transaction of what they write: one commit a request instead of two.
func writesWithEntry(r *http.Request) bool {
	_, pattern := writeRoutes.Handler(r)
	return pattern != ""
}

// NewHTTPHandler serves the partner routes of gateway-api.md, the extra
// signed routes and the operations routes.
func NewHTTPHandler(eps Endpoints, o HTTPOptions) http.Handler {
	enc := ErrorEncoder(o.Logger)
	opts := []kithttp.ServerOption{
		kithttp.ServerErrorEncoder(enc),
		kithttp.ServerBefore(func(ctx context.Context, r *http.Request) context.Context {
			return context.WithValue(ctx, requestKey, r)
		}),
	}
	receipt := encodeReceipt(o.Signer)
	signed := http.NewServeMux()
	signed.Handle(routeSubmit, kithttp.NewServer(eps.Submit, decodeSubmit, receipt, opts...))
	signed.Handle(routeStatus, kithttp.NewServer(eps.UpdateStatus, decodeStatus, receipt, opts...))
	signed.Handle(routeExchangeStatus, kithttp.NewServer(eps.UpdateStatus, decodeStatus, receipt, opts...))
	signed.Handle("GET /v1/exchanges/{id}", kithttp.NewServer(eps.Exchange, decodeLookup("id"), encodeView, opts...))
	signed.Handle("GET /v1/cases/{caseNo}", kithttp.NewServer(eps.FindCase, decodeLookup("caseNo"), encodeView, opts...))
	for pattern, h := range o.Routes {
		signed.Handle(pattern, h)
	}
	signed.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		ctx := context.WithValue(r.Context(), requestKey, r)
		var err error = newError(CodeNotFound, "no such route")
		if vr, verr := verified(ctx); verr == nil && r.Method == http.MethodPost && o.Deny != nil {
			// An authenticated POST refused is a denied entry (exchange-log.md).
			err = o.Deny(ctx, Request{Caller: vr.Identity, Signed: vr.Request, ContentType: r.Header.Get("Content-Type"), Body: vr.Body}, err)
		}
		enc(ctx, err, w)
	})

	v := o.Verifier
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	v.OnError = func(w http.ResponseWriter, r *http.Request, err error) {
		ctx := context.WithValue(r.Context(), requestKey, r)
		code := CodeInternal
		var se *httpsig.Error
		if errors.As(err, &se) {
			code = se.Code
		}
		if o.Unauthenticated != nil {
			o.Unauthenticated.With("code", code).Add(1)
		}
		// Method and code only: the path may hold a case number.
		logger.InfoContext(ctx, "refused before authentication", "method", r.Method, "code", code, "remote", r.RemoteAddr)
		enc(ctx, err, w)
	}
	root := http.NewServeMux()
	root.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	root.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if o.Ready != nil {
			if err := o.Ready(r.Context()); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte("not ready: " + err.Error() + "\n"))
				return
			}
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	if o.Metrics != nil {
		root.Handle("GET /metrics", o.Metrics)
	}
	if o.Console != nil {
		root.Handle("/console/", o.Console)
	}
	root.Handle("/", v.Middleware(signed))
	return root
}

func verified(ctx context.Context) (*httpsig.Verified, error) {
	vr, ok := httpsig.FromContext(ctx)
	if !ok {
		return nil, errors.New("request reached a signed route unverified")
	}
	return vr, nil
}

func requestOf(ctx context.Context, r *http.Request) (Request, error) {
	vr, err := verified(ctx)
	if err != nil {
		return Request{}, err
	}
	return Request{Caller: vr.Identity, Signed: vr.Request, ContentType: r.Header.Get("Content-Type"), Body: vr.Body}, nil
}

func decodeSubmit(ctx context.Context, r *http.Request) (any, error) {
	return requestOf(ctx, r)
}

func decodeStatus(ctx context.Context, r *http.Request) (any, error) {
	req, err := requestOf(ctx, r)
	if err != nil {
		return nil, err
	}
	return StatusRequest{Request: req, ExchangeID: r.PathValue("id")}, nil
}

func decodeLookup(name string) kithttp.DecodeRequestFunc {
	return func(ctx context.Context, r *http.Request) (any, error) {
		vr, err := verified(ctx)
		if err != nil {
			return nil, err
		}
		return lookupRequest{Caller: vr.Identity, Key: r.PathValue(name)}, nil
	}
}

func encodeReceipt(signer *certs.Signer) kithttp.EncodeResponseFunc {
	return func(ctx context.Context, w http.ResponseWriter, response any) error {
		resp := response.(receiptResponse)
		if resp.Err != nil {
			ErrorEncoder(nil)(ctx, resp.Err, w)
			return nil
		}
		body, err := json.Marshal(resp.Receipt)
		if err != nil {
			return err
		}
		status := http.StatusAccepted
		if resp.Receipt.Replayed {
			status = http.StatusOK
		}
		w.Header().Set("Content-Type", "application/json")
		if err := signReceipt(ctx, w.Header(), status, body, signer); err != nil {
			return err
		}
		w.WriteHeader(status)
		_, err = w.Write(body)
		return err
	}
}

// signReceipt signs the response and binds it to the request it answers.
func signReceipt(ctx context.Context, h http.Header, status int, body []byte, signer *certs.Signer) error {
	vr, err := verified(ctx)
	if err != nil {
		return err
	}
	_, err = httpsig.SignResponse(h, status, body, vr.Components, signer)
	return err
}

func encodeView(ctx context.Context, w http.ResponseWriter, response any) error {
	resp := response.(viewResponse)
	if resp.Err != nil {
		ErrorEncoder(nil)(ctx, resp.Err, w)
		return nil
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(resp.View)
}

// ErrorEncoder writes every error as RFC 9457 problem+json with the
// contract's code; internal causes are logged, never sent.
func ErrorEncoder(logger *slog.Logger) kithttp.ErrorEncoder {
	if logger == nil {
		logger = slog.Default()
	}
	return func(ctx context.Context, err error, w http.ResponseWriter) {
		instance := ""
		if r, ok := ctx.Value(requestKey).(*http.Request); ok {
			instance = r.URL.Path
		}
		status, doc := ProblemDocument(err, instance)
		switch doc["code"] {
		case CodeInternal:
			logger.ErrorContext(ctx, "internal error", "err", err, "path", instance)
		case CodeRateLimited:
			w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(err)))
		}
		body, _ := json.Marshal(doc)
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}
}
