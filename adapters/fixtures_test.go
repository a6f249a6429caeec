package adapters_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/adapters/liwan"
	"github.com/tongban/tongban/adapters/nanhai"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// fixturesDir is shared/fixtures, a sibling of the repository.
var fixturesDir = filepath.Join("..", "..", "shared", "fixtures")

type expectation struct {
	From     string   `json:"from"`
	Kind     string   `json:"kind"`
	CaseNo   string   `json:"case_no"`
	Result   string   `json:"result"`
	Fields   []string `json:"fields"`
	Decision struct {
		Mode           adapters.HandlingMode `json:"mode"`
		TargetImplCode string                `json:"target_impl_code"`
		PromisedDays   int                   `json:"promised_days"`
	} `json:"decision"`
	DeliveredLiwan  json.RawMessage `json:"delivered_liwan"`
	DeliveredNanhai json.RawMessage `json:"delivered_nanhai"`
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
	dirs, err := os.ReadDir(fixturesDir)
	if errors.Is(err, os.ErrNotExist) {
		t.Skip("shared/fixtures not present")
	}
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		n++
		t.Run(d.Name(), func(t *testing.T) {
			dir := filepath.Join(fixturesDir, d.Name())
			var exp expectation
			mustJSON(t, readFile(t, filepath.Join(dir, "expect.json")), &exp)
			src, dst := codecs(exp.From)
			ext := map[string]string{"nanhai": ".xml", "liwan": ".json"}[exp.From]
			input := readFile(t, filepath.Join(dir, exp.Kind+ext))
			var (
				out    []byte
				decErr error
			)
			switch exp.Kind {
			case "case":
				c, err := src.DecodeCase(input)
				decErr = err
				if err == nil && exp.Result == "ok" {
					d := c.ForDelivery(src.Division(), exp.Decision.Mode, exp.Decision.TargetImplCode, exp.Decision.PromisedDays)
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
				s, err := src.DecodeStatus(input)
				decErr = err
				if err == nil && exp.Result == "ok" {
					s.CaseNo = exp.CaseNo
					if out, err = dst.EncodeStatus(s); err != nil {
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
			if exp.DeliveredLiwan != nil {
				if dst.Name() != "liwan" {
					t.Fatal("delivered_liwan for a record not delivered to Liwan")
				}
				var got, want any
				mustJSON(t, out, &got)
				mustJSON(t, exp.DeliveredLiwan, &want)
				if !jsonEqual(got, want) {
					t.Errorf("delivered to Liwan:\n%s\nwant\n%s", out, exp.DeliveredLiwan)
				}
			}
			if exp.DeliveredNanhai != nil {
				if dst.Name() != "nanhai" {
					t.Fatal("delivered_nanhai for a record not delivered to Nanhai")
				}
				var want map[string]any
				mustJSON(t, exp.DeliveredNanhai, &want)
				got := nanhaiElements(t, out)
				if !reflect.DeepEqual(got, want) {
					t.Errorf("delivered to Nanhai:\n%v\nwant\n%v", got, want)
				}
			}
		})
	}
	if n == 0 {
		t.Fatal("no fixtures found")
	}
}

func checkResult(t *testing.T, exp expectation, err error) {
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

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
}

// jsonEqual compares decoded JSON values; strings that are both RFC 3339
// times compare as instants.
func jsonEqual(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !jsonEqual(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case string:
		y, ok := b.(string)
		if !ok {
			return false
		}
		tx, ex := time.Parse(time.RFC3339, x)
		ty, ey := time.Parse(time.RFC3339, y)
		if ex == nil && ey == nil {
			return tx.Equal(ty)
		}
		return x == y
	}
	return reflect.DeepEqual(a, b)
}

// xmlElem is a generic element, read without the codec under test.
type xmlElem struct {
	XMLName  xml.Name
	Text     string    `xml:",chardata"`
	Children []xmlElem `xml:",any"`
}

// nanhaiElements reads a GBK <CASE> into element → text, MATERIALS as a
// list of element → text, as delivered_nanhai is written.
func nanhaiElements(t *testing.T, doc []byte) map[string]any {
	t.Helper()
	if !bytes.HasPrefix(doc, []byte(`<?xml version="1.0" encoding="GBK"?>`)) {
		t.Errorf("no GBK declaration: %.60q", doc)
	}
	utf, err := simplifiedchinese.GBK.NewDecoder().Bytes(doc)
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(utf))
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	var root xmlElem
	if err := d.Decode(&root); err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	for _, c := range root.Children {
		if c.XMLName.Local == "MATERIALS" {
			list := []any{}
			for _, m := range c.Children {
				mm := map[string]any{}
				for _, f := range m.Children {
					mm[f.XMLName.Local] = f.Text
				}
				list = append(list, mm)
			}
			out["MATERIALS"] = list
			continue
		}
		out[c.XMLName.Local] = c.Text
	}
	return out
}
