package nanhai

import (
	"github.com/tongban/tongban/adapters"
	"os"
	"path/filepath"
	"reflect"
	"testing"
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

// FuzzNanhaiCase: no input panics; whatever decodes (sent or delivered
// form) re-encodes and decodes to the same case.
func FuzzNanhaiCase(f *testing.F) {
	seedFixtures(f, "case.xml")
	f.Add(baseDoc(f, "case").Render(f))
	f.Add(baseDoc(f, "delivered").Render(f))
	f.Add([]byte(`<?xml version="1.0" encoding="GBK"?><CASE><APPLYER_NAME>&#x20BB7;</APPLYER_NAME></CASE>`))
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

// FuzzNanhaiStatus: as FuzzNanhaiCase, for <STATUS>.
func FuzzNanhaiStatus(f *testing.F) {
	seedFixtures(f, "status.xml")
	f.Add(baseDoc(f, "status").Render(f))
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

// FuzzNanhaiAck: as FuzzNanhaiCase, for <ACK>.
func FuzzNanhaiAck(f *testing.F) {
	f.Add(baseDoc(f, "ack").Render(f))
	f.Add([]byte(`<ACK><RESULT>1</RESULT><MESSAGE>x</MESSAGE></ACK>`))
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
