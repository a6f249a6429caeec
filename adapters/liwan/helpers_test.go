package liwan

import (
	"encoding/hex"
	"testing"

	"github.com/emmansun/gmsm/sm3"

	"github.com/tongban/tongban/internal/ruletest"
)

// baseDoc returns the JSON document (as maps, slices and json.Numbers) a
// rule test starts from.
func baseDoc(t testing.TB, kind string) any {
	t.Helper()
	return ruletest.LiwanBase(t, "testdata/base.json", kind)
}

func sm3hex(b []byte) string {
	s := sm3.Sum(b)
	return hex.EncodeToString(s[:])
}
