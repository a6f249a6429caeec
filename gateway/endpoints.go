package gateway

import (
	"context"

	"github.com/go-kit/kit/endpoint"

	"github.com/tongban/tongban/certs"
)

// Endpoints collects one endpoint per Service method.
type Endpoints struct {
	Submit       endpoint.Endpoint
	UpdateStatus endpoint.Endpoint
	Exchange     endpoint.Endpoint
	FindCase     endpoint.Endpoint
}

// MakeEndpoints wraps s in endpoints, each decorated by mw (outermost first).
func MakeEndpoints(s Service, mw ...endpoint.Middleware) Endpoints {
	chain := func(e endpoint.Endpoint) endpoint.Endpoint {
		for i := len(mw) - 1; i >= 0; i-- {
			e = mw[i](e)
		}
		return e
	}
	return Endpoints{
		Submit:       chain(makeSubmitEndpoint(s)),
		UpdateStatus: chain(makeUpdateStatusEndpoint(s)),
		Exchange:     chain(makeExchangeEndpoint(s)),
		FindCase:     chain(makeFindCaseEndpoint(s)),
	}
}

// receiptResponse answers Submit and UpdateStatus.
type receiptResponse struct {
	Receipt *Receipt
	Err     error
}

// Failed implements endpoint.Failer.
func (r receiptResponse) Failed() error { return r.Err }

// lookupRequest asks for an exchange by id or by case number.
type lookupRequest struct {
	Caller certs.Identity
	Key    string
}

// viewResponse answers Exchange and FindCase.
type viewResponse struct {
	View *ExchangeView
	Err  error
}

// Failed implements endpoint.Failer.
func (r viewResponse) Failed() error { return r.Err }

func makeSubmitEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		rc, err := s.Submit(ctx, request.(Request))
		return receiptResponse{Receipt: rc, Err: err}, nil
	}
}

func makeUpdateStatusEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		rc, err := s.UpdateStatus(ctx, request.(StatusRequest))
		return receiptResponse{Receipt: rc, Err: err}, nil
	}
}

func makeExchangeEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(lookupRequest)
		v, err := s.Exchange(ctx, req.Caller, req.Key)
		return viewResponse{View: v, Err: err}, nil
	}
}

func makeFindCaseEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(lookupRequest)
		v, err := s.FindCase(ctx, req.Caller, req.Key)
		return viewResponse{View: v, Err: err}, nil
	}
}
