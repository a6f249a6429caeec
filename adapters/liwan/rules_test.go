package liwan

import (
	"testing"

	"github.com/tongban/tongban/internal/ruletest"
)

// TestRules runs testdata/rules.json: each row changes a valid document
// (JSON Pointer → raw JSON value, or removal) and lists the (pointer, code)
// pairs the decoder must report, in order.
func TestRules(t *testing.T) {
	for _, row := range ruletest.Rows(t, "testdata/rules.json") {
		t.Run(row.Name, func(t *testing.T) {
			t.Parallel()
			d := baseDoc(t, row.Doc)
			ruletest.ApplyLiwan(t, d, row)
			ruletest.CheckRow(t, Codec, row, ruletest.RenderJSON(t, d))
		})
	}
}
