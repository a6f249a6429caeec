package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/httpsig"
	"github.com/tongban/tongban/policies"
)

// Problem codes of gateway-api.md and signing.md.
const (
	CodeMalformed         = "malformed"
	CodeValidationFailed  = "validation_failed"
	CodeUnsupportedMedia  = "unsupported_media_type"
	CodePolicyDenied      = "policy_denied"
	CodeForbidden         = "forbidden"
	CodeNotFound          = "not_found"
	CodeDuplicateConflict = "duplicate_conflict"
	CodeInvalidTransition = "invalid_transition"
	CodeTooLarge          = "too_large"
	CodeRateLimited       = "rate_limited"
	CodeInternal          = "internal"
)

// problemKinds maps a problem code to its HTTP status and title.
var problemKinds = map[string]struct {
	status int
	title  string
}{
	CodeMalformed:         {http.StatusBadRequest, "Malformed request"},
	CodeValidationFailed:  {http.StatusUnprocessableEntity, "Validation failed"},
	CodeUnsupportedMedia:  {http.StatusUnsupportedMediaType, "Unsupported media type"},
	CodePolicyDenied:      {http.StatusForbidden, "Denied by policy"},
	CodeForbidden:         {http.StatusForbidden, "Forbidden"},
	CodeNotFound:          {http.StatusNotFound, "Not found"},
	CodeDuplicateConflict: {http.StatusConflict, "Case already accepted with different content"},
	CodeInvalidTransition: {http.StatusConflict, "Invalid status transition"},
	CodeTooLarge:          {http.StatusRequestEntityTooLarge, "Request too large"},
	CodeRateLimited:       {http.StatusTooManyRequests, "Rate limited"},
	CodeInternal:          {http.StatusInternalServerError, "Internal error"},
}

// Error is a domain error that carries its problem code and a safe public
// detail. The internal cause (Err) is logged, never sent.
type Error struct {
	Code     string
	Detail   string
	Fields   []adapters.FieldError // validation_failed
	Decision *policies.Decision    // policy_denied
	// PolicyInput is what the policy saw (policy_denied), for the log.
	PolicyInput *policies.Input
	// RetryAfter is when a rate_limited caller may try again.
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	s := e.Code
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Status is the HTTP status of the problem.
func (e *Error) Status() int {
	if k, ok := problemKinds[e.Code]; ok {
		return k.status
	}
	return http.StatusInternalServerError
}

// Title is the problem's short title.
func (e *Error) Title() string {
	if k, ok := problemKinds[e.Code]; ok {
		return k.title
	}
	return "Internal error"
}

func newError(code, format string, args ...any) *Error {
	return &Error{Code: code, Detail: fmt.Sprintf(format, args...)}
}

func internal(err error) *Error { return &Error{Code: CodeInternal, Err: err} }

// asError turns any error into a domain error: decoding errors of the
// adapters become malformed / validation_failed, anything unknown internal.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var ve *adapters.ValidationError
	if errors.As(err, &ve) {
		return &Error{Code: CodeValidationFailed, Detail: fmt.Sprintf("%d field(s) break the rules of districts.md", len(ve.Errors)), Fields: ve.Errors}
	}
	if errors.Is(err, adapters.ErrMalformed) {
		return &Error{Code: CodeMalformed, Detail: err.Error()}
	}
	return internal(err)
}

// ProblemDocument is the RFC 9457 problem+json document of err: type,
// title, status, code, detail, instance, and errors (validation_failed) or
// decision (policy_denied). Internal causes are never included.
func ProblemDocument(err error, instance string) (int, map[string]any) {
	var status int
	var code, title, detail string
	doc := map[string]any{}
	var se *httpsig.Error
	if errors.As(err, &se) {
		status, code, title, detail = se.Status, se.Code, se.Title, se.Detail
	} else {
		e := asError(err)
		status, code, title, detail = e.Status(), e.Code, e.Title(), e.Detail
		switch e.Code {
		case CodeInternal:
			detail = ""
		case CodeValidationFailed:
			doc["errors"] = e.Fields
		case CodePolicyDenied:
			if e.Decision != nil {
				doc["decision"] = e.Decision
			}
		}
	}
	doc["type"] = "urn:tongban:problem:" + code
	doc["title"] = title
	doc["status"] = status
	doc["code"] = code
	if detail != "" {
		doc["detail"] = detail
	}
	if instance != "" {
		doc["instance"] = instance
	}
	return status, doc
}

// retryAfterSeconds is the Retry-After of a rate_limited error.
func retryAfterSeconds(err error) int {
	var e *Error
	if errors.As(err, &e) && e.RetryAfter > 0 {
		return int((e.RetryAfter + time.Second - 1) / time.Second)
	}
	return 1
}
