package gateway

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/gateway/exchangelog"
	"github.com/tongban/tongban/httpsig"
)

// maxEntriesPerPage bounds GET /audit/v1/entries.
const maxEntriesPerPage = 10000

func (s *Server) auditRoutes(m map[string]http.Handler) {
	auditor := func(h handlerFunc) http.Handler { return s.route(h, certs.RoleAuditor) }
	m["GET /audit/v1/checkpoint"] = auditor(s.checkpoint)
	m["GET /audit/v1/entries"] = auditor(s.entries)
	m["GET /audit/v1/proofs/inclusion"] = auditor(s.inclusionProof)
	m["GET /audit/v1/proofs/consistency"] = auditor(s.consistencyProof)
	m["GET /audit/v1/exchanges/{id}/evidence"] = auditor(s.evidence)
	m["GET /audit/v1/export"] = auditor(s.export)
}

func (s *Server) checkpoint(ctx context.Context, _ *httpsig.Verified, _ *http.Request) (int, any, error) {
	if err := s.Log.Sync(ctx); err != nil {
		return 0, nil, internal(err)
	}
	cp := s.Log.Checkpoint()
	if cp == nil {
		return 0, nil, newError(CodeNotFound, "no checkpoint has been signed yet")
	}
	setContentType(ctx, "text/plain; charset=utf-8")
	return http.StatusOK, cp, nil
}

func (s *Server) entries(ctx context.Context, _ *httpsig.Verified, r *http.Request) (int, any, error) {
	start, err1 := uintParam(r, "start")
	end, err2 := uintParam(r, "end")
	if err := errors.Join(err1, err2); err != nil {
		return 0, nil, err
	}
	size, err := s.Store.LogSize(ctx)
	if err != nil {
		return 0, nil, internal(err)
	}
	if start > end || end > size || end-start > maxEntriesPerPage {
		return 0, nil, newError(CodeMalformed, "need start ≤ end ≤ %d and at most %d entries", size, maxEntriesPerPage)
	}
	es, err := s.Store.Entries(ctx, start, end)
	if err != nil {
		return 0, nil, internal(err)
	}
	var buf bytes.Buffer
	for _, e := range es {
		buf.Write(e.Bytes)
		buf.WriteByte('\n')
	}
	setContentType(ctx, "application/jsonl")
	return http.StatusOK, buf.Bytes(), nil
}

func (s *Server) inclusionProof(ctx context.Context, _ *httpsig.Verified, r *http.Request) (int, any, error) {
	index, err1 := uintParam(r, "index")
	size, err2 := uintParam(r, "size")
	if err := errors.Join(err1, err2); err != nil {
		return 0, nil, err
	}
	p, err := s.Log.InclusionProof(ctx, index, size)
	if err != nil {
		return 0, nil, proofError(err)
	}
	return http.StatusOK, p, nil
}

func (s *Server) consistencyProof(ctx context.Context, _ *httpsig.Verified, r *http.Request) (int, any, error) {
	from, err1 := uintParam(r, "from")
	to, err2 := uintParam(r, "to")
	if err := errors.Join(err1, err2); err != nil {
		return 0, nil, err
	}
	p, err := s.Log.ConsistencyProof(ctx, from, to)
	if err != nil {
		return 0, nil, proofError(err)
	}
	return http.StatusOK, p, nil
}

func (s *Server) evidence(ctx context.Context, _ *httpsig.Verified, r *http.Request) (int, any, error) {
	if err := s.Log.Sync(ctx); err != nil {
		return 0, nil, internal(err)
	}
	var buf bytes.Buffer
	if err := s.Log.Evidence(ctx, &buf, r.PathValue("id"), exchangelog.CertsFromTrustStore(s.Trust)); err != nil {
		return 0, nil, proofError(err)
	}
	setContentType(ctx, "application/x-tar")
	return http.StatusOK, buf.Bytes(), nil
}

func (s *Server) export(ctx context.Context, _ *httpsig.Verified, r *http.Request) (int, any, error) {
	from, err1 := timeParam(r, "from", time.Unix(0, 0))
	to, err2 := timeParam(r, "to", time.Now())
	if err := errors.Join(err1, err2); err != nil {
		return 0, nil, err
	}
	if err := s.Log.Sync(ctx); err != nil {
		return 0, nil, internal(err)
	}
	var buf bytes.Buffer
	if err := s.Log.Export(ctx, &buf, from, to, exchangelog.CertsFromTrustStore(s.Trust)); err != nil {
		return 0, nil, proofError(err)
	}
	setContentType(ctx, "application/x-tar")
	return http.StatusOK, buf.Bytes(), nil
}

func proofError(err error) error {
	if errors.Is(err, exchangelog.ErrNotFound) {
		return newError(CodeNotFound, "%v", err)
	}
	return internal(err)
}

func uintParam(r *http.Request, name string) (uint64, error) {
	v, err := strconv.ParseUint(r.URL.Query().Get(name), 10, 64)
	if err != nil {
		return 0, newError(CodeMalformed, "query parameter %s must be a non-negative integer", name)
	}
	return v, nil
}

// timeParam reads RFC 3339 or Unix seconds.
func timeParam(r *http.Request, name string, def time.Time) (time.Time, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, newError(CodeMalformed, "query parameter %s must be RFC 3339 or Unix seconds", name)
	}
	return t, nil
}

// setContentType sets the response's content type from inside a route
// handler (the route writes raw bytes as they are).
func setContentType(ctx context.Context, ct string) {
	if w, ok := ctx.Value(writerKey).(http.ResponseWriter); ok {
		w.Header().Set("Content-Type", ct)
	}
}
