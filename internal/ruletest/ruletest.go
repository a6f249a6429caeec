// Package ruletest builds the documents of the field-rule tables
// adapters/{nanhai,liwan}/testdata/rules.json: each row changes a valid
// document of testdata/base.json and lists the (field, code) pairs a
// decoder must refuse it with. It serves the codecs' own rule tests and
// the gateway's, which sends the same rows over HTTP.
package ruletest

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/tongban/tongban/adapters"
)

// Row is a row of a rules table. Set maps a Nanhai element path or a Liwan
// JSON Pointer to a raw JSON value (for Nanhai a string, or null to remove
// the element); Remove lists Liwan pointers to delete; Repeat maps a path
// to [text, count], the text repeated count times; DropMaterials (Nanhai)
// removes every material.
type Row struct {
	Name          string                     `json:"name"`
	Doc           string                     `json:"doc"`
	Set           map[string]json.RawMessage `json:"set"`
	Remove        []string                   `json:"remove"`
	Repeat        map[string][2]any          `json:"repeat"`
	DropMaterials bool                       `json:"drop_materials"`
	Want          [][2]string                `json:"want"`
}

// Rows reads a rules table.
func Rows(tb testing.TB, file string) []Row {
	tb.Helper()
	var rows []Row
	readJSON(tb, file, &rows)
	return rows
}

func readJSON(tb testing.TB, file string, v any) {
	tb.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		tb.Fatalf("%s: %v", file, err)
	}
}

func repeated(r [2]any) string {
	return strings.Repeat(r[0].(string), int(r[1].(float64)))
}

// CheckRow decodes body as row.Doc ("case", "delivered", "status" or
// "ack") with codec and checks that it is refused with exactly row.Want's
// (field, code) pairs, in order, each with a message, or accepted as a
// record when row.Want is empty.
func CheckRow(tb testing.TB, codec adapters.Codec, row Row, body []byte) {
	tb.Helper()
	var (
		v   any
		err error
	)
	switch row.Doc {
	case "case":
		v, err = codec.DecodeCase(body)
	case "delivered":
		v, err = codec.DecodeDeliveredCase(body)
	case "status":
		v, err = codec.DecodeStatus(body)
	case "ack":
		v, err = codec.DecodeAck(body)
	default:
		tb.Fatalf("unknown document kind %q", row.Doc)
	}
	got := [][2]string{}
	if err != nil {
		var ve *adapters.ValidationError
		if !errors.As(err, &ve) {
			tb.Fatalf("error %v is not a ValidationError", err)
		}
		for _, fe := range ve.Errors {
			got = append(got, [2]string{fe.Field, fe.Code})
			if fe.Message == "" {
				tb.Errorf("%s: no message", fe.Field)
			}
		}
	} else if reflect.ValueOf(v).IsNil() {
		tb.Fatal("nil record without an error")
	}
	want := row.Want
	if want == nil {
		want = [][2]string{}
	}
	if !reflect.DeepEqual(got, want) {
		tb.Errorf("errors %v\nwant   %v\nbody %.400s", got, want, body)
	}
}

// NanhaiDoc is a Nanhai document as ordered (element path, text) pairs,
// so tests can change, add and remove elements and render it in GBK. A
// path's segments are separated by "/"; a segment may carry an index,
// MATERIALS/MATERIAL[1]/CODE, to tell repeated elements apart.
type NanhaiDoc struct {
	Root  string
	Pairs [][2]string
}

// NanhaiBase returns the Nanhai document of kind ("case", "delivered",
// "status" or "ack") a rule test starts from, built from file (a
// testdata/base.json of (path, text) pairs by document).
func NanhaiBase(tb testing.TB, file, kind string) *NanhaiDoc {
	tb.Helper()
	var b struct {
		Case   [][2]string `json:"case"`
		Status [][2]string `json:"status"`
	}
	readJSON(tb, file, &b)
	switch kind {
	case "case":
		return &NanhaiDoc{Root: "CASE", Pairs: b.Case}
	case "delivered":
		d := &NanhaiDoc{Root: "CASE"}
		for _, p := range b.Case {
			if p[0] == "PROJECT_NO" {
				continue
			}
			if strings.HasPrefix(p[0], "MATERIALS/") && !d.Has("HANDLE_MODE") {
				d.Pairs = append(d.Pairs, [2]string{"SOURCE_DIVISION", "440103"},
					[2]string{"SOURCE_PROJECT_NO", "LW2026112700123"}, [2]string{"HANDLE_MODE", "2"})
			}
			d.Pairs = append(d.Pairs, p)
		}
		return d
	case "status":
		return &NanhaiDoc{Root: "STATUS", Pairs: b.Status}
	case "ack":
		return &NanhaiDoc{Root: "ACK", Pairs: [][2]string{{"PROJECT_NO", "440605202611270201"}, {"RESULT", "0"}, {"MESSAGE", "成功"}}}
	}
	tb.Fatalf("unknown document kind %q", kind)
	return nil
}

// NanhaiBody renders a row of the Nanhai rules table whose base
// documents are in file.
func NanhaiBody(tb testing.TB, file string, row Row) []byte {
	tb.Helper()
	d := NanhaiBase(tb, file, row.Doc)
	d.Apply(tb, row)
	return d.Render(tb)
}

// Apply makes a row's changes: materials dropped, then Set, then Repeat.
func (d *NanhaiDoc) Apply(tb testing.TB, row Row) {
	tb.Helper()
	if len(row.Remove) > 0 {
		tb.Fatalf("row %s: remove is for Liwan pointers; a Nanhai row removes with a null set", row.Name)
	}
	if row.DropMaterials {
		d.DropPrefix("MATERIALS/")
	}
	for path, raw := range row.Set {
		var v *string
		if err := json.Unmarshal(raw, &v); err != nil {
			tb.Fatalf("set %s: %v", path, err)
		}
		if v == nil {
			d.Remove(path)
		} else {
			d.Set(path, *v)
		}
	}
	for path, r := range row.Repeat {
		d.Set(path, repeated(r))
	}
}

// Has reports whether the document has an element at path.
func (d *NanhaiDoc) Has(path string) bool {
	for _, p := range d.Pairs {
		if p[0] == path {
			return true
		}
	}
	return false
}

// Set replaces the text of path, or adds the element after the last
// element of the same parent (a top-level one before MATERIALS, which
// comes last).
func (d *NanhaiDoc) Set(path, text string) {
	for i, p := range d.Pairs {
		if p[0] == path {
			d.Pairs[i][1] = text
			return
		}
	}
	parent := path[:strings.LastIndex(path, "/")+1]
	at := len(d.Pairs)
	if parent == "" {
		for i, p := range d.Pairs {
			if strings.HasPrefix(p[0], "MATERIALS/") {
				at = i
				break
			}
		}
	} else {
		for i, p := range d.Pairs {
			if strings.HasPrefix(p[0], parent) {
				at = i + 1
			}
		}
	}
	d.Pairs = append(d.Pairs[:at], append([][2]string{{path, text}}, d.Pairs[at:]...)...)
}

// Remove deletes the element at path.
func (d *NanhaiDoc) Remove(path string) {
	out := d.Pairs[:0]
	for _, p := range d.Pairs {
		if p[0] != path {
			out = append(out, p)
		}
	}
	d.Pairs = out
}

// DropPrefix deletes every element whose path starts with prefix.
func (d *NanhaiDoc) DropPrefix(prefix string) {
	out := d.Pairs[:0]
	for _, p := range d.Pairs {
		if !strings.HasPrefix(p[0], prefix) {
			out = append(out, p)
		}
	}
	d.Pairs = out
}

var indexed = regexp.MustCompile(`^(.*)\[(\d+)\]$`)

// XML renders the document as UTF-8 XML without a declaration.
func (d *NanhaiDoc) XML() string {
	var b strings.Builder
	b.WriteString("<" + d.Root + ">\n")
	var open []string // open element path segments under the root
	for _, p := range d.Pairs {
		segs := strings.Split(p[0], "/")
		parents := segs[:len(segs)-1]
		common := 0
		for common < len(open) && common < len(parents) && open[common] == parents[common] {
			common++
		}
		for i := len(open) - 1; i >= common; i-- {
			b.WriteString("</" + elemName(open[i]) + ">\n")
		}
		open = open[:common]
		for _, s := range parents[common:] {
			b.WriteString("<" + elemName(s) + ">\n")
			open = append(open, s)
		}
		name := segs[len(segs)-1]
		b.WriteString("<" + name + ">" + escape(p[1]) + "</" + name + ">\n")
	}
	for i := len(open) - 1; i >= 0; i-- {
		b.WriteString("</" + elemName(open[i]) + ">\n")
	}
	b.WriteString("</" + d.Root + ">\n")
	return b.String()
}

func elemName(seg string) string {
	if m := indexed.FindStringSubmatch(seg); m != nil {
		return m[1]
	}
	return seg
}

var escaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\r", "&#13;")

func escape(s string) string { return escaper.Replace(s) }

// Render returns the document in GBK with the usual declaration.
func (d *NanhaiDoc) Render(tb testing.TB) []byte {
	tb.Helper()
	return GBK(tb, `<?xml version="1.0" encoding="GBK"?>`+"\n"+d.XML())
}

// GBK encodes UTF-8 XML text in GBK; characters GBK lacks become decimal
// character references (the other form a reader must accept).
func GBK(tb testing.TB, s string) []byte {
	tb.Helper()
	out, err := encoding.HTMLEscapeUnsupported(simplifiedchinese.GBK.NewEncoder()).String(s)
	if err != nil {
		tb.Fatal(err)
	}
	return []byte(out)
}

// LiwanBase returns the Liwan JSON document of kind ("case", "delivered",
// "status" or "ack"), as maps, slices and json.Numbers, a rule test starts
// from, built from file (a testdata/base.json of documents by kind).
func LiwanBase(tb testing.TB, file, kind string) any {
	tb.Helper()
	var d struct {
		Case   json.RawMessage `json:"case"`
		Status json.RawMessage `json:"status"`
	}
	readJSON(tb, file, &d)
	switch kind {
	case "case":
		return DecodeJSON(tb, d.Case)
	case "delivered":
		v := DecodeJSON(tb, d.Case).(map[string]any)
		delete(v, "caseId")
		v["handlingMode"] = "REMOTE_RECEIPT"
		v["origin"] = map[string]any{"division": "440103", "caseNo": "LW2026112700123"}
		v["ownerDivision"] = "440605"
		return v
	case "status":
		return DecodeJSON(tb, d.Status)
	case "ack":
		return map[string]any{"accepted": true, "caseId": "LW2026112700456"}
	}
	tb.Fatalf("unknown document kind %q", kind)
	return nil
}

// LiwanBody renders a row of the Liwan rules table whose base documents
// are in file.
func LiwanBody(tb testing.TB, file string, row Row) []byte {
	tb.Helper()
	d := LiwanBase(tb, file, row.Doc)
	ApplyLiwan(tb, d, row)
	return RenderJSON(tb, d)
}

// ApplyLiwan makes a row's changes to a Liwan document: Set, then
// Remove, then Repeat.
func ApplyLiwan(tb testing.TB, doc any, row Row) {
	tb.Helper()
	if row.DropMaterials {
		tb.Fatalf("row %s: drop_materials is for Nanhai documents", row.Name)
	}
	for ptr, raw := range row.Set {
		SetPointer(tb, doc, ptr, DecodeJSON(tb, raw), false)
	}
	for _, ptr := range row.Remove {
		SetPointer(tb, doc, ptr, nil, true)
	}
	for ptr, r := range row.Repeat {
		SetPointer(tb, doc, ptr, repeated(r), false)
	}
}

// DecodeJSON decodes a JSON value with numbers kept as json.Number.
func DecodeJSON(tb testing.TB, b []byte) any {
	tb.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		tb.Fatalf("%v in %s", err, b)
	}
	return v
}

// SetPointer sets (or, when remove, deletes) the value at a JSON Pointer
// whose parent exists; an array element cannot be removed.
func SetPointer(tb testing.TB, doc any, ptr string, v any, remove bool) {
	tb.Helper()
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
				tb.Fatalf("bad pointer %s", ptr)
			}
			if last {
				if remove {
					tb.Fatalf("cannot remove array element %s", ptr)
				}
				c[n] = v
				return
			}
			cur = c[n]
		default:
			tb.Fatalf("bad pointer %s", ptr)
		}
	}
}

// RenderJSON marshals a document.
func RenderJSON(tb testing.TB, doc any) []byte {
	tb.Helper()
	b, err := json.Marshal(doc)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
