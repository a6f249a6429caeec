package liwan

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/emmansun/gmsm/sm3"
)

type baseDocs struct {
	Case   json.RawMessage `json:"case"`
	Status json.RawMessage `json:"status"`
}

func decodeAny(t testing.TB, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	return v
}

// baseDoc returns the JSON document (as maps, slices and json.Numbers) a
// rule test starts from.
func baseDoc(t testing.TB, kind string) any {
	t.Helper()
	b, err := os.ReadFile("testdata/base.json")
	if err != nil {
		t.Fatal(err)
	}
	var d baseDocs
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	switch kind {
	case "case":
		return decodeAny(t, d.Case)
	case "delivered":
		v := decodeAny(t, d.Case).(map[string]any)
		delete(v, "caseId")
		v["handlingMode"] = "REMOTE_RECEIPT"
		v["origin"] = map[string]any{"division": "440103", "caseNo": "LW2026112700123"}
		v["ownerDivision"] = "440605"
		return v
	case "status":
		return decodeAny(t, d.Status)
	case "ack":
		return map[string]any{"accepted": true, "caseId": "LW2026112700456"}
	}
	t.Fatalf("unknown document kind %q", kind)
	return nil
}

// setPointer sets (or, when remove, deletes) the value at a JSON Pointer
// whose parent exists.
func setPointer(t testing.TB, doc any, ptr string, v any, remove bool) {
	t.Helper()
	segs := strings.Split(ptr, "/")[1:]
	cur := doc
	for i, s := range segs {
		last := i == len(segs)-1
		switch c := cur.(type) {
		case map[string]any:
			if last {
				if remove {
					delete(c, s)
				} else {
					c[s] = v
				}
				return
			}
			cur = c[s]
		case []any:
			n, err := strconv.Atoi(s)
			if err != nil || n >= len(c) {
				t.Fatalf("bad pointer %s", ptr)
			}
			if last {
				if remove {
					t.Fatalf("cannot remove array element %s", ptr)
				}
				c[n] = v
				return
			}
			cur = c[n]
		default:
			t.Fatalf("bad pointer %s", ptr)
		}
	}
}

func render(t testing.TB, doc any) []byte {
	t.Helper()
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sm3hex(b []byte) string {
	s := sm3.Sum(b)
	return hex.EncodeToString(s[:])
}
