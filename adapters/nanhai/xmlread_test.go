package nanhai

import (
	"fmt"
	"strings"
	"testing"
)

// dump renders a parsed tree (or its error) for comparison.
func dump(n *node, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	var b strings.Builder
	var walk func(n *node, depth int)
	walk = func(n *node, depth int) {
		fmt.Fprintf(&b, "%s<%s>%q\n", strings.Repeat(" ", depth), n.name, n.text.String())
		for _, c := range n.children {
			walk(c, depth+1)
		}
	}
	walk(n, 0)
	return b.String()
}

// parsedAsIs is parse without lifting runs: encoding/xml on the whole
// document.
func parsedAsIs(doc []byte, root string) string {
	text, err := decodeGBK(doc)
	if err != nil {
		return dump(nil, err)
	}
	return dump(parseXML(text, root, nil))
}

// TestLiftedRunsParseAsIs: parse (runs of text lifted out of the document
// and put back) gives exactly the tree or the error encoding/xml gives on
// the document as it is, wherever the runs stand: in elements, beside
// other text, after a self-closing element, in attributes, comments, CDATA
// and processing instructions, outside the root, too deep.
func TestLiftedRunsParseAsIs(t *testing.T) {
	run := strings.Repeat("QUJD", 80)         // 320 bytes of base64
	lines := strings.Repeat(run[:76]+"\n", 5) // base64 with line breaks
	for _, tc := range []struct {
		name, doc string
		lifts     int // runs liftRuns finds
		ok        bool
	}{
		{"material", `<CASE><M><CONTENT>` + run + `</CONTENT></M></CASE>`, 1, true},
		{"lines", "<CASE><CONTENT>\n" + lines + "</CONTENT></CASE>", 1, true},
		{"two", `<CASE><A>` + run + `</A><B>` + run + run + `</B></CASE>`, 2, true},
		{"after text", `<CASE><A>x y>` + run + `</A></CASE>`, 1, true},
		{"around a child", `<CASE><A>` + run + `<B/>` + run + `</A></CASE>`, 2, true},
		{"after self-closing", `<CASE><A/>` + run + `<B>1</B></CASE>`, 1, true},
		{"after a comment", `<CASE><!-- c -->` + run + `</CASE>`, 1, true},
		{"short", `<CASE><A>` + run[:255] + `</A></CASE>`, 0, true},
		{"in a comment", `<CASE><!-- >` + run + `< --></CASE>`, 1, true},
		{"in CDATA", `<CASE><![CDATA[>` + run + `<]]></CASE>`, 1, true},
		{"in a PI", `<CASE><?pi >` + run + `<?></CASE>`, 1, true},
		{"in an attribute", `<CASE a=">` + run + `<"></CASE>`, 1, false},
		{"outside the root", `<?xml version="1.0" encoding="GBK"?>` + run + `<CASE/>`, 1, false},
		{"after the root", `<CASE/>` + run + `<X/>`, 1, false},
		{"unclosed", `<CASE><A>` + run + `</CASE>`, 1, false},
		{"too deep", strings.Repeat("<CASE>", maxDepth+1) + run + strings.Repeat("</CASE>", maxDepth+1), 1, false},
		{"entity before", `<CASE><A>&amp;>` + run + `</A></CASE>`, 1, true},
		{"bad entity before", `<CASE><A>&bad;>` + run + `</A></CASE>`, 1, false},
		{"]]> before", `<CASE><A>]]>` + run + `</A></CASE>`, 1, false},
		{"doctype", `<!DOCTYPE CASE [<!ENTITY x ">` + run + `<">]><CASE/>`, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := []byte(tc.doc)
			cut, runs := liftRuns(doc)
			if len(runs) != tc.lifts {
				t.Fatalf("liftRuns found %d runs, want %d", len(runs), tc.lifts)
			}
			// Runs in character data are put back without parsing again.
			if _, err := parseXML(cut, "CASE", runs); tc.ok && tc.lifts > 0 && !strings.HasPrefix(tc.name, "in ") && err != nil {
				t.Fatalf("lifted runs not put back: %v", err)
			}
			got, want := dump(parse(doc, "CASE")), parsedAsIs(doc, "CASE")
			if got != want {
				t.Fatalf("parse:\n%s\nencoding/xml as is:\n%s", got, want)
			}
			if ok := !strings.HasPrefix(got, "error: "); ok != tc.ok {
				t.Fatalf("parsed = %v, want %v: %s", ok, tc.ok, got)
			}
		})
	}
}

// FuzzLiftedRuns: parse agrees with encoding/xml on the document as it is.
func FuzzLiftedRuns(f *testing.F) {
	run := strings.Repeat("QUJD", 70)
	for _, s := range []string{
		`<CASE><A>` + run + `</A></CASE>`,
		`<CASE><A/>` + run + `<B>` + run + `</B></CASE>`,
		`<CASE><!-- >` + run + `< --></CASE>`,
		`<CASE a=">` + run + `<"/>`,
	} {
		f.Add([]byte(s))
	}
	seedFixtures(f, "case.xml")
	f.Fuzz(func(t *testing.T, doc []byte) {
		if got, want := dump(parse(doc, "CASE")), parsedAsIs(doc, "CASE"); got != want {
			t.Fatalf("parse:\n%s\nencoding/xml as is:\n%s", got, want)
		}
	})
}
