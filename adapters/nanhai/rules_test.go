package nanhai

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
	Name          string                     `json:"name"`
	Doc           string                     `json:"doc"`
	Set           map[string]*string         `json:"set"`
	Repeat        map[string]json.RawMessage `json:"repeat"`
	DropMaterials bool                       `json:"drop_materials"`
	Want          [][2]string                `json:"want"`
}

// TestRules runs testdata/rules.json: each row changes a valid document and
// lists the (field, code) pairs the decoder must report, in order.
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
			if row.DropMaterials {
				d.dropPrefix("MATERIALS/")
			}
			for path, v := range row.Set {
				if v == nil {
					d.remove(path)
				} else {
					d.set(path, *v)
				}
			}
			for path, raw := range row.Repeat {
				var r []any
				if err := json.Unmarshal(raw, &r); err != nil {
					t.Fatal(err)
				}
				d.set(path, strings.Repeat(r[0].(string), int(r[1].(float64))))
			}
			body := d.render(t)
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
				t.Errorf("errors %v\nwant   %v", got, row.Want)
			}
		})
	}
}
