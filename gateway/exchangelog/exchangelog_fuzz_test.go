package exchangelog

import (
	"bytes"
	"testing"
)

func FuzzParseEntry(f *testing.F) {
	f.Add([]byte(`{"v":1,"kind":"redriven","time":"2026-11-27T09:45:00+08:00","exchange":"x","of":3,"by":"abababababababababababababababababababababababababababababababab"}`))
	f.Add([]byte(`{"v":1,"kind":"dead","time":"2026-11-27T09:45:00+08:00","exchange":"x","to":"440103","of":3,"attempts":12,"last_error":""}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEntry(b)
		if err != nil {
			return
		}
		// What parses marshals, and parses again to the same bytes.
		m, err := Marshal(e)
		if err != nil {
			t.Fatalf("parsed entry does not marshal: %v", err)
		}
		e2, err := ParseEntry(m)
		if err != nil {
			t.Fatalf("marshalled entry does not parse: %v", err)
		}
		m2, _ := Marshal(e2)
		if !bytes.Equal(m, m2) {
			t.Fatalf("not stable:\n%s\n%s", m, m2)
		}
	})
}

func FuzzParseCheckpointBody(f *testing.F) {
	f.Add([]byte("tongban/guangfo\n1042\nGrpBOZdK6Jve+bjsLrl0Y2O1M0+bcCcYVTLu9IbtGeo=\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCheckpointBody(b)
		if err != nil {
			return
		}
		if !bytes.Equal(c.Body(), b) {
			t.Fatalf("body %q re-encodes as %q", b, c.Body())
		}
	})
}

func FuzzVerifyBundle(f *testing.F) {
	fx := newFixture(f)
	start := fx.now
	fx.build(2, 1)
	f.Add(fx.export(start, fx.now))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = VerifyBundle(bytes.NewReader(b), nil) // must not panic
	})
}
