package gateway

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/go-kit/kit/metrics"

	"github.com/tongban/tongban/certs"
)

// LoggingMiddleware logs every call with log/slog: who, what, outcome and
// duration; never a name, an ID number or a body.
func LoggingMiddleware(logger *slog.Logger) Middleware {
	return func(next Service) Service { return &loggingService{next: next, log: logger} }
}

type loggingService struct {
	next Service
	log  *slog.Logger
}

func (s *loggingService) done(ctx context.Context, method string, caller certs.Identity, begin time.Time, err error, attrs ...any) {
	attrs = append(attrs, "method", method, "caller", caller.KeyID, "role", string(caller.Role), "took", time.Since(begin))
	if err != nil {
		attrs = append(attrs, "code", errorCode(err))
		s.log.InfoContext(ctx, "refused", attrs...)
		return
	}
	s.log.InfoContext(ctx, "ok", attrs...)
}

func (s *loggingService) Submit(ctx context.Context, req Request) (rc *Receipt, err error) {
	defer func(begin time.Time) {
		attrs := []any{"digest", req.Signed.Digest}
		if rc != nil {
			attrs = append(attrs, "exchange", rc.ExchangeID, "log_index", rc.LogIndex, "replayed", rc.Replayed)
		}
		s.done(ctx, "submit", req.Caller, begin, err, attrs...)
	}(time.Now())
	return s.next.Submit(ctx, req)
}

func (s *loggingService) UpdateStatus(ctx context.Context, req StatusRequest) (rc *Receipt, err error) {
	defer func(begin time.Time) {
		attrs := []any{"digest", req.Signed.Digest}
		if rc != nil {
			attrs = append(attrs, "exchange", rc.ExchangeID, "log_index", rc.LogIndex, "replayed", rc.Replayed)
		}
		s.done(ctx, "update_status", req.Caller, begin, err, attrs...)
	}(time.Now())
	return s.next.UpdateStatus(ctx, req)
}

func (s *loggingService) Exchange(ctx context.Context, caller certs.Identity, id string) (v *ExchangeView, err error) {
	defer func(begin time.Time) { s.done(ctx, "exchange", caller, begin, err, "exchange", id) }(time.Now())
	return s.next.Exchange(ctx, caller, id)
}

func (s *loggingService) FindCase(ctx context.Context, caller certs.Identity, caseNo string) (v *ExchangeView, err error) {
	// A case number is not personal data, but it is the applicant's handle:
	// log only that a lookup happened.
	defer func(begin time.Time) { s.done(ctx, "find_case", caller, begin, err) }(time.Now())
	return s.next.FindCase(ctx, caller, caseNo)
}

// MetricsMiddleware counts calls by method and outcome code and observes
// their latency.
func MetricsMiddleware(requests metrics.Counter, latency metrics.Histogram) Middleware {
	return func(next Service) Service { return &metricsService{next: next, requests: requests, latency: latency} }
}

type metricsService struct {
	next     Service
	requests metrics.Counter
	latency  metrics.Histogram
}

func (s *metricsService) observe(method string, begin time.Time, err error) {
	code := "ok"
	if err != nil {
		code = errorCode(err)
	}
	s.requests.With("method", method, "code", code).Add(1)
	s.latency.With("method", method).Observe(time.Since(begin).Seconds())
}

func (s *metricsService) Submit(ctx context.Context, req Request) (rc *Receipt, err error) {
	defer func(begin time.Time) { s.observe("submit", begin, err) }(time.Now())
	return s.next.Submit(ctx, req)
}

func (s *metricsService) UpdateStatus(ctx context.Context, req StatusRequest) (rc *Receipt, err error) {
	defer func(begin time.Time) { s.observe("update_status", begin, err) }(time.Now())
	return s.next.UpdateStatus(ctx, req)
}

func (s *metricsService) Exchange(ctx context.Context, caller certs.Identity, id string) (v *ExchangeView, err error) {
	defer func(begin time.Time) { s.observe("exchange", begin, err) }(time.Now())
	return s.next.Exchange(ctx, caller, id)
}

func (s *metricsService) FindCase(ctx context.Context, caller certs.Identity, caseNo string) (v *ExchangeView, err error) {
	defer func(begin time.Time) { s.observe("find_case", begin, err) }(time.Now())
	return s.next.FindCase(ctx, caller, caseNo)
}

func errorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return asError(err).Code
}
