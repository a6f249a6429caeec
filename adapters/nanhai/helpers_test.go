package nanhai

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/emmansun/gmsm/sm3"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// doc is a Nanhai document as ordered (element path, text) pairs, so tests
// can change, add and remove elements and render it in GBK.
type doc struct {
	root  string
	pairs [][2]string
}

type baseDocs struct {
	Case   [][2]string `json:"case"`
	Status [][2]string `json:"status"`
}

func loadBase(t testing.TB) baseDocs {
	t.Helper()
	b, err := os.ReadFile("testdata/base.json")
	if err != nil {
		t.Fatal(err)
	}
	var d baseDocs
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// baseDoc returns the document a rule test starts from.
func baseDoc(t testing.TB, kind string) *doc {
	b := loadBase(t)
	switch kind {
	case "case":
		return &doc{root: "CASE", pairs: b.Case}
	case "delivered":
		d := &doc{root: "CASE"}
		for _, p := range b.Case {
			if p[0] == "PROJECT_NO" {
				continue
			}
			if strings.HasPrefix(p[0], "MATERIALS/") && !d.has("HANDLE_MODE") {
				d.pairs = append(d.pairs, [2]string{"SOURCE_DIVISION", "440103"},
					[2]string{"SOURCE_PROJECT_NO", "LW2026112700123"}, [2]string{"HANDLE_MODE", "2"})
			}
			d.pairs = append(d.pairs, p)
		}
		return d
	case "status":
		return &doc{root: "STATUS", pairs: b.Status}
	case "ack":
		return &doc{root: "ACK", pairs: [][2]string{{"PROJECT_NO", "440605202611270201"}, {"RESULT", "0"}, {"MESSAGE", "成功"}}}
	}
	t.Fatalf("unknown document kind %q", kind)
	return nil
}

func (d *doc) has(path string) bool {
	for _, p := range d.pairs {
		if p[0] == path {
			return true
		}
	}
	return false
}

// set replaces the text of path, or appends the element after the last
// element of the same parent.
func (d *doc) set(path, text string) {
	for i, p := range d.pairs {
		if p[0] == path {
			d.pairs[i][1] = text
			return
		}
	}
	parent := path[:strings.LastIndex(path, "/")+1]
	at := len(d.pairs)
	if parent == "" {
		// before MATERIALS, which comes last
		for i, p := range d.pairs {
			if strings.HasPrefix(p[0], "MATERIALS/") {
				at = i
				break
			}
		}
	} else {
		for i, p := range d.pairs {
			if strings.HasPrefix(p[0], parent) {
				at = i + 1
			}
		}
	}
	d.pairs = append(d.pairs[:at], append([][2]string{{path, text}}, d.pairs[at:]...)...)
}

func (d *doc) remove(path string) {
	out := d.pairs[:0]
	for _, p := range d.pairs {
		if p[0] != path {
			out = append(out, p)
		}
	}
	d.pairs = out
}

func (d *doc) dropPrefix(prefix string) {
	out := d.pairs[:0]
	for _, p := range d.pairs {
		if !strings.HasPrefix(p[0], prefix) {
			out = append(out, p)
		}
	}
	d.pairs = out
}

var indexed = regexp.MustCompile(`^(.*)\[(\d+)\]$`)

// xml renders the document as UTF-8 XML without a declaration.
func (d *doc) xml() string {
	var b strings.Builder
	b.WriteString("<" + d.root + ">\n")
	var open []string // open element path segments under the root
	for _, p := range d.pairs {
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
	b.WriteString("</" + d.root + ">\n")
	return b.String()
}

func elemName(seg string) string {
	if m := indexed.FindStringSubmatch(seg); m != nil {
		return m[1]
	}
	return seg
}

func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\r", "&#13;").Replace(s)
}

// gbk encodes UTF-8 XML text in GBK; characters GBK lacks become decimal
// character references (the other form a reader must accept).
func gbk(t testing.TB, s string) []byte {
	t.Helper()
	out, err := encoding.HTMLEscapeUnsupported(simplifiedchinese.GBK.NewEncoder()).String(s)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(out)
}

// render returns the document in GBK with the usual declaration.
func (d *doc) render(t testing.TB) []byte {
	return gbk(t, `<?xml version="1.0" encoding="GBK"?>`+"\n"+d.xml())
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
