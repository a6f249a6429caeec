package nanhai

import (
	"testing"

	"github.com/tongban/tongban/internal/ruletest"
)

// TestRules runs testdata/rules.json: each row changes a valid document and
// lists the (field, code) pairs the decoder must report, in order.
func TestRules(t *testing.T) {
	for _, row := range ruletest.Rows(t, "testdata/rules.json") {
		t.Run(row.Name, func(t *testing.T) {
			t.Parallel()
			d := baseDoc(t, row.Doc)
			d.Apply(t, row)
			ruletest.CheckRow(t, Codec, row, d.Render(t))
		})
	}
}
