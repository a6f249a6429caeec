package httpsig

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strconv"
)

// Error is a refusal with its HTTP status and its problem code (signing.md,
// gateway-api.md). Errors compare by Code under errors.Is, so
// errors.Is(err, ErrSignatureInvalid) holds whatever the Detail. Detail is
// safe to send to the caller; the internal cause, if any, is reachable with
// errors.Unwrap for logging.
type Error struct {
	Status int
	Code   string
	Title  string
	Detail string
	cause  error
}

// The refusals of signing.md's table, in the order the checks run, and the
// few others the verifier can produce.
var (
	ErrSignatureMissing   = &Error{Status: 401, Code: "signature_missing", Title: "Signature missing"}
	ErrSignatureMalformed = &Error{Status: 401, Code: "signature_malformed", Title: "Signature malformed"}
	ErrKeyUnknown         = &Error{Status: 401, Code: "key_unknown", Title: "Signing key unknown"}
	ErrCertificateInvalid = &Error{Status: 401, Code: "certificate_invalid", Title: "Signer certificate invalid"}
	ErrSignatureExpired   = &Error{Status: 401, Code: "signature_expired", Title: "Signature expired"}
	ErrReplayed           = &Error{Status: 401, Code: "replayed", Title: "Request replayed"}
	ErrDigestMismatch     = &Error{Status: 400, Code: "digest_mismatch", Title: "Content digest does not match the body"}
	ErrSignatureInvalid   = &Error{Status: 401, Code: "signature_invalid", Title: "Signature does not verify"}
	ErrForbidden          = &Error{Status: 403, Code: "forbidden", Title: "Forbidden"}
	ErrTooLarge           = &Error{Status: 413, Code: "too_large", Title: "Request body too large"}
	ErrMalformed          = &Error{Status: 400, Code: "malformed", Title: "Malformed request"}
	ErrRateLimited        = &Error{Status: 429, Code: "rate_limited", Title: "Too many requests"}
	ErrInternal           = &Error{Status: 500, Code: "internal", Title: "Internal error"}
)

func (e *Error) Error() string {
	if e.Detail == "" {
		return "httpsig: " + e.Code
	}
	return "httpsig: " + e.Code + ": " + e.Detail
}

// Is reports whether target is an *Error with the same Code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Unwrap returns the internal cause, if any.
func (e *Error) Unwrap() error { return e.cause }

// WithDetail returns a copy of e with a detail message.
func (e *Error) WithDetail(detail string) *Error {
	c := *e
	c.Detail = detail
	return &c
}

// withCause returns a copy of e with a detail and an internal cause.
func (e *Error) withCause(detail string, cause error) *Error {
	c := *e
	c.Detail = detail
	c.cause = cause
	return &c
}

// WriteProblem writes an RFC 9457 application/problem+json response:
// {"type":"urn:tongban:problem:<code>","title","status","code","detail",
// "instance"} followed by the members of extra in key order (for instance
// "errors" or "decision"). detail is left out when empty, instance is the
// request path.
func WriteProblem(w http.ResponseWriter, r *http.Request, status int, code, title, detail string, extra map[string]any) {
	var b bytes.Buffer
	b.WriteByte('{')
	member := func(k string, v any) {
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		vb, err := json.Marshal(v)
		if err != nil {
			vb = []byte("null")
		}
		b.Write(vb)
	}
	member("type", "urn:tongban:problem:"+code)
	member("title", title)
	member("status", status)
	member("code", code)
	if detail != "" {
		member("detail", detail)
	}
	if r != nil && r.URL != nil {
		member("instance", r.URL.Path)
	}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		switch k {
		case "type", "title", "status", "code", "detail", "instance":
			continue // the standard members are not overridden
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		member(k, extra[k])
	}
	b.WriteByte('}')
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	h.Del("Content-Digest")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// WriteError writes err as a problem: an *Error with its status, code and
// detail (a 429 gets Retry-After: 1), anything else as 500 internal with no
// detail. It is the Verifier's default OnError.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = ErrInternal
	}
	detail := e.Detail
	if e.Code == ErrInternal.Code {
		detail = ""
	}
	if e.Status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	WriteProblem(w, r, e.Status, e.Code, e.Title, detail, nil)
}
