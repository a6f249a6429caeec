package adapters_test

import (
	"errors"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/adapters/liwan"
	"github.com/tongban/tongban/adapters/nanhai"
	"github.com/tongban/tongban/internal/fixturetest"
)

// The samples: the gateway's committed copy (so the test never skips) and
// the shared originals beside the repository when present (those override
// the copy of the same name).
var fixtureRoots = []string{
	filepath.Join("..", "gateway", "testdata", "fixtures"),
	filepath.Join("..", "..", "shared", "fixtures"),
}

func codecs(from string) (src, dst adapters.Codec) {
	if from == "nanhai" {
		return nanhai.Codec, liwan.Codec
	}
	return liwan.Codec, nanhai.Codec
}

// TestFixtures decodes every sample of shared/fixtures with the sender's
// codec and, for accepted cases, checks the record delivered to the owning
// district against delivered_liwan / delivered_nanhai.
func TestFixtures(t *testing.T) {
	for name, s := range fixturetest.Load(t, fixtureRoots...) {
		t.Run(name, func(t *testing.T) {
			exp := s.Exp
			src, dst := codecs(exp.From)
			var (
				out    []byte
				decErr error
			)
			switch exp.Kind {
			case "case":
				c, err := src.DecodeCase(s.Input)
				decErr = err
				if err == nil && exp.Result == "ok" {
					d := c.ForDelivery(src.Division(), adapters.HandlingMode(exp.Decision.Mode), exp.Decision.TargetImplCode, exp.Decision.PromisedDays)
					if out, err = dst.EncodeCase(&d); err != nil {
						t.Fatalf("encode: %v", err)
					}
					back, err := dst.DecodeDeliveredCase(out)
					if err != nil {
						t.Fatalf("the delivered record does not decode: %v\n%s", err, out)
					}
					if !reflect.DeepEqual(*back, d) {
						t.Errorf("delivered record decodes to\n%+v\nwant\n%+v", *back, d)
					}
				}
			case "status":
				st, err := src.DecodeStatus(s.Input)
				decErr = err
				if err == nil && exp.Result == "ok" {
					st.CaseNo = exp.CaseNo
					if out, err = dst.EncodeStatus(st); err != nil {
						t.Fatalf("encode: %v", err)
					}
				}
			default:
				t.Fatalf("unknown kind %q", exp.Kind)
			}
			checkResult(t, exp, decErr)
			if out == nil {
				return
			}
			fixturetest.CheckDelivered(t, exp, out)
		})
	}
}

func checkResult(t *testing.T, exp fixturetest.Expectation, err error) {
	t.Helper()
	switch exp.Result {
	case "ok", "denied":
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
	case "invalid":
		var ve *adapters.ValidationError
		if !errors.As(err, &ve) {
			t.Fatalf("decode: %v, want a ValidationError", err)
		}
		var fields []string
		for _, fe := range ve.Errors {
			fields = append(fields, fe.Field)
		}
		if !slices.Equal(fields, exp.Fields) {
			t.Errorf("fields %q, want %q (%+v)", fields, exp.Fields, ve.Errors)
		}
	case "malformed":
		if !errors.Is(err, adapters.ErrMalformed) {
			t.Fatalf("decode: %v, want ErrMalformed", err)
		}
	default:
		t.Fatalf("unknown result %q", exp.Result)
	}
}
