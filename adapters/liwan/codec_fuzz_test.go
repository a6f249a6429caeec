package liwan

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/internal/ruletest"
)

// seedFixtures adds the shared fixtures' documents named name, if present.
func seedFixtures(f *testing.F, name string) {
	matches, _ := filepath.Glob(filepath.Join("..", "..", "..", "shared", "fixtures", "*", name))
	for _, m := range matches {
		if b, err := os.ReadFile(m); err == nil {
			f.Add(b)
		}
	}
}

// FuzzLiwanCase: no input panics; whatever decodes (sent or delivered
// form) re-encodes and decodes to the same case.
func FuzzLiwanCase(f *testing.F) {
	seedFixtures(f, "case.json")
	f.Add(ruletest.RenderJSON(f, baseDoc(f, "case")))
	f.Add(ruletest.RenderJSON(f, baseDoc(f, "delivered")))
	f.Add([]byte(`{"caseId":"LW2026112700123","promisedWorkingDays":1e400,"materials":[{"sizeBytes":-0}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, decode := range []func([]byte) (*adapters.Case, error){Codec.DecodeCase, Codec.DecodeDeliveredCase} {
			c, err := decode(b)
			if err != nil {
				continue
			}
			out, err := Codec.EncodeCase(c)
			if err != nil {
				t.Fatalf("a decoded case does not encode: %v", err)
			}
			back, err := decode(out)
			if err != nil {
				t.Fatalf("re-encoded case does not decode: %v\n%s", err, out)
			}
			if !reflect.DeepEqual(back, c) {
				t.Fatalf("round trip changed the case:\n%+v\n%+v", back, c)
			}
		}
	})
}

// FuzzLiwanStatus: as FuzzLiwanCase, for status updates.
func FuzzLiwanStatus(f *testing.F) {
	seedFixtures(f, "status.json")
	f.Add(ruletest.RenderJSON(f, baseDoc(f, "status")))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Codec.DecodeStatus(b)
		if err != nil {
			return
		}
		out, err := Codec.EncodeStatus(s)
		if err != nil {
			t.Fatalf("a decoded status does not encode: %v", err)
		}
		back, err := Codec.DecodeStatus(out)
		if err != nil {
			t.Fatalf("re-encoded status does not decode: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(back, s) {
			t.Fatalf("round trip changed the status:\n%+v\n%+v", back, s)
		}
	})
}

// FuzzLiwanAck: as FuzzLiwanCase, for acknowledgements.
func FuzzLiwanAck(f *testing.F) {
	f.Add([]byte(`{"accepted": true, "caseId": "LW2026112700123"}`))
	f.Add([]byte(`{"accepted": false, "reason": "材料不全"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := Codec.DecodeAck(b)
		if err != nil {
			return
		}
		out, err := Codec.EncodeAck(a)
		if err != nil {
			t.Fatalf("a decoded ack does not encode: %v", err)
		}
		back, err := Codec.DecodeAck(out)
		if err != nil || *back != *a {
			t.Fatalf("round trip: %+v %v, want %+v", back, err, a)
		}
	})
}
