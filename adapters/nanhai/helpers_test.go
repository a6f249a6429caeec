package nanhai

import (
	"encoding/hex"
	"strconv"
	"testing"

	"github.com/emmansun/gmsm/sm3"
	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/tongban/tongban/internal/ruletest"
)

// doc is a Nanhai document as ordered (element path, text) pairs.
type doc = ruletest.NanhaiDoc

// baseDoc returns the document a rule test starts from.
func baseDoc(t testing.TB, kind string) *doc {
	t.Helper()
	return ruletest.NanhaiBase(t, "testdata/base.json", kind)
}

func itoa(n int) string { return strconv.Itoa(n) }

func sm3hex(b []byte) string {
	s := sm3.Sum(b)
	return hex.EncodeToString(s[:])
}

// hasNonGBK reports whether s needs a character reference in GBK.
func hasNonGBK(s string) bool {
	_, err := simplifiedchinese.GBK.NewEncoder().String(s)
	return err != nil
}
