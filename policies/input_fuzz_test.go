package policies

import (
	"encoding/json"
	"testing"
)

// FuzzInputJSON reads arbitrary input documents: no panic, and what is read
// is written back to a document that reads as the same input.
func FuzzInputJSON(f *testing.F) {
	f.Add([]byte(`{"from":"440605","to":"440103","item":{"basic_code":"000105001000"},"applicant":{"kind":"ENTERPRISE"},"channel":"COUNTER","materials":["M001"],"time":"2026-11-27T09:45:00+08:00"}`))
	f.Add([]byte(`{"time":"2026-11-27T01:45:00.5Z"}`))
	f.Add([]byte(`{"time":null}`))
	f.Add([]byte(`{"time":"9999-12-31T23:00:00Z"}`))
	f.Add([]byte(`{"time":"0000-01-01T00:00:00+09:00"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var in Input
		if err := json.Unmarshal(data, &in); err != nil {
			return
		}
		b, err := json.Marshal(in)
		if y := in.Time.In(chinaTime).Year(); y < 0 || y > 9999 {
			if err == nil {
				t.Fatalf("wrote year %d: %s", y, b)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		var back Input
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if !back.Time.Equal(in.Time) || back.BasicCode != in.BasicCode || len(back.Materials) != len(in.Materials) {
			t.Fatalf("%s read back as %+v, was %+v", b, back, in)
		}
		_ = in.Value()
	})
}
