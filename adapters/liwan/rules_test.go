package liwan

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/tongban/tongban/adapters"
)

type ruleCase struct {
	Name   string                     `json:"name"`
	Doc    string                     `json:"doc"`
	Set    map[string]json.RawMessage `json:"set"`
	Remove []string                   `json:"remove"`
	Repeat map[string][2]any          `json:"repeat"`
	Want   [][2]string                `json:"want"`
}

// TestRules runs testdata/rules.json: each row changes a valid document
// (JSON Pointer → raw JSON value, or removal) and lists the (pointer, code)
// pairs the decoder must report, in order.
func TestRules(t *testing.T) {
	b, err := os.ReadFile("testdata/rules.json")
	if err != nil {
		t.Fatal(err)
	}
	var rows []ruleCase
	if err := json.Unmarshal(b, &rows); err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		t.Run(row.Name, func(t *testing.T) {
			t.Parallel()
			d := baseDoc(t, row.Doc)
			for ptr, raw := range row.Set {
				setPointer(t, d, ptr, decodeAny(t, raw), false)
			}
			for _, ptr := range row.Remove {
				setPointer(t, d, ptr, nil, true)
			}
			for ptr, r := range row.Repeat {
				setPointer(t, d, ptr, strings.Repeat(r[0].(string), int(r[1].(float64))), false)
			}
			body := render(t, d)
			var (
				v   any
				err error
			)
			switch row.Doc {
			case "case":
				v, err = Codec.DecodeCase(body)
			case "delivered":
				v, err = Codec.DecodeDeliveredCase(body)
			case "status":
				v, err = Codec.DecodeStatus(body)
			case "ack":
				v, err = Codec.DecodeAck(body)
			}
			got := [][2]string{}
			if err != nil {
				var ve *adapters.ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("error %v is not a ValidationError", err)
				}
				for _, fe := range ve.Errors {
					got = append(got, [2]string{fe.Field, fe.Code})
					if fe.Message == "" {
						t.Errorf("%s: no message", fe.Field)
					}
				}
			} else if reflect.ValueOf(v).IsNil() {
				t.Fatal("nil record without an error")
			}
			if row.Want == nil {
				row.Want = [][2]string{}
			}
			if !reflect.DeepEqual(got, row.Want) {
				t.Errorf("errors %v\nwant   %v\nbody %.400s", got, row.Want, body)
			}
		})
	}
}
