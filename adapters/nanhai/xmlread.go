package nanhai

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/tongban/tongban/adapters"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// maxDepth caps element nesting (CASE/MATERIALS/MATERIAL/leaf is 4).
const maxDepth = 16

// node is an element of a parsed document: its text (character data
// directly inside it) and its child elements.
type node struct {
	name     string
	text     strings.Builder
	children []*node
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", adapters.ErrMalformed, fmt.Sprintf(format, args...))
}

// gbkFamily reports whether a declared encoding is one read as GBK.
func gbkFamily(name string) bool {
	return strings.EqualFold(name, "GBK") || strings.EqualFold(name, "GB2312") || strings.EqualFold(name, "GB18030")
}

// decodeGBK converts GBK bytes to UTF-8, refusing bytes that are not GBK (a
// 4-byte GB18030 sequence among them). 0x80 is the euro sign, as in Code
// Page 936 and the WHATWG GBK decoder.
func decodeGBK(body []byte) ([]byte, error) {
	out := make([]byte, 0, len(body)+len(body)/2)
	dec := simplifiedchinese.GBK.NewDecoder()
	var pair [utf8.UTFMax]byte
	for i := 0; i < len(body); {
		// Copy ASCII runs (most of a document: markup and base64) as is.
		j := i
		for j < len(body) && body[j] < utf8.RuneSelf {
			j++
		}
		out = append(out, body[i:j]...)
		if i = j; i == len(body) {
			break
		}
		n := 2
		if body[i] == 0x80 {
			n = 1
		}
		if i+n > len(body) {
			return nil, malformed("truncated GBK sequence at byte %d", i)
		}
		nDst, _, err := dec.Transform(pair[:], body[i:i+n], true)
		dec.Reset()
		r, _ := utf8.DecodeRune(pair[:nDst])
		// GBK maps no byte sequence to U+FFFD; the decoder writes it for
		// bytes it cannot read (a 4-byte GB18030 sequence among them).
		if err != nil || r == utf8.RuneError {
			return nil, malformed("bytes that are not valid GBK at byte %d", i)
		}
		out = append(out, pair[:nDst]...)
		i += n
	}
	return out, nil
}

var encodingAttr = regexp.MustCompile(`encoding\s*=\s*(?:"([^"]*)"|'([^']*)')`)

// parse reads a GBK XML document whose root element must be root. It
// refuses DOCTYPE and other directives (and so entity declarations), a
// declared encoding outside the GBK family, nesting deeper than maxDepth,
// and anything encoding/xml in strict mode refuses.
//
// encoding/xml reads character data byte by byte, which made the base64
// of the materials most of the cost of decoding a case. So long runs of
// plain text (liftRuns) are first lifted out of the document and put back
// into the element they were in after encoding/xml has read the rest; if
// that does not work out (a run that was inside markup, or any error), the
// document is parsed again as it is, so that the result and every error
// are exactly encoding/xml's.
func parse(body []byte, root string) (*node, error) {
	text, err := decodeGBK(body)
	if err != nil {
		return nil, err
	}
	if cut, runs := liftRuns(text); len(runs) > 0 {
		if n, err := parseXML(cut, root, runs); err == nil {
			return n, nil
		}
	}
	return parseXML(text, root, nil)
}

// minRun is the shortest run of text liftRuns lifts out.
const minRun = 256

// plainByte marks the bytes of a liftable run: the base64 alphabet, space,
// tab and newline. None of them is markup, starts an entity or a "]]>", or
// is changed by encoding/xml in character data (it rewrites "\r\n").
var plainByte = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= \t\n") {
		t[c] = true
	}
	return t
}()

// lifted is a run of text taken out of a document: it stood at offset at
// of the document without it.
type lifted struct {
	at   int64
	text []byte
}

// liftRuns removes from text every run of at least minRun plain bytes that
// follows a '>' and ends at a '<', and says where each was. Text without
// such runs is returned as it is.
func liftRuns(text []byte) ([]byte, []lifted) {
	var (
		out  []byte
		runs []lifted
		done int // text[:done] is in out
	)
	for i := 0; i < len(text); {
		j := bytes.IndexByte(text[i:], '>')
		if j < 0 {
			break
		}
		start := i + j + 1
		k := start
		for k < len(text) && plainByte[text[k]] {
			k++
		}
		if k-start >= minRun && k < len(text) && text[k] == '<' {
			if out == nil {
				// Everything but this run, at most: the first run is
				// usually most of the document.
				out = make([]byte, 0, len(text)-(k-start))
			}
			out = append(out, text[done:start]...)
			runs = append(runs, lifted{at: int64(len(out)), text: text[start:k]})
			done = k
		}
		i = max(k, start)
	}
	if runs == nil {
		return text, nil
	}
	return append(out, text[done:]...), runs
}

// errLiftedInMarkup: a lifted run was not character data.
var errLiftedInMarkup = errors.New("nanhai: lifted text was inside markup")

// parseXML is parse of UTF-8 text from which runs were lifted (none: the
// document as it is). A run is character data of the element open where
// it stood: after the token that ended at its offset, before the token
// that reads past it.
func parseXML(text []byte, root string, runs []lifted) (*node, error) {
	d := xml.NewDecoder(bytes.NewReader(text))
	d.Strict = true
	d.CharsetReader = func(charset string, input io.Reader) (io.Reader, error) {
		if gbkFamily(charset) {
			return input, nil // already converted to UTF-8 above
		}
		return nil, fmt.Errorf("encoding %q is not GBK", charset)
	}
	var (
		stack []*node
		top   *node
		seen  bool
		prev  int64 // offset of the end of the previous token
	)
	for {
		tok, err := d.Token()
		if len(runs) > 0 {
			at, off := runs[0].at, d.InputOffset()
			switch {
			case off <= at:
			case prev == at && len(stack) > 0:
				stack[len(stack)-1].text.Write(runs[0].text)
				runs = runs[1:]
			default:
				return nil, errLiftedInMarkup
			}
			prev = off
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, malformed("xml: %v", err)
		}
		switch t := tok.(type) {
		case xml.ProcInst:
			if t.Target == "xml" {
				if m := encodingAttr.FindSubmatch(t.Inst); m != nil {
					enc := string(m[1]) + string(m[2])
					if !gbkFamily(enc) {
						return nil, malformed("declared encoding %q is not GBK", enc)
					}
				}
			}
		case xml.Directive:
			return nil, malformed("DOCTYPE and other declarations are not allowed")
		case xml.StartElement:
			if len(stack) == 0 {
				if seen {
					return nil, malformed("more than one root element")
				}
				seen = true
				if t.Name.Space != "" || t.Name.Local != root {
					return nil, malformed("root element is <%s>, want <%s>", t.Name.Local, root)
				}
			}
			if len(stack) >= maxDepth {
				return nil, malformed("elements nested deeper than %d", maxDepth)
			}
			n := &node{name: t.Name.Local}
			if t.Name.Space != "" {
				n.name = "" // a namespaced element is not one of ours
			}
			if len(stack) == 0 {
				top = n
			} else {
				p := stack[len(stack)-1]
				p.children = append(p.children, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) == 0 {
				if len(bytes.TrimSpace(t)) != 0 {
					return nil, malformed("text outside the root element")
				}
				continue
			}
			stack[len(stack)-1].text.Write(t)
		}
	}
	if len(runs) > 0 {
		return nil, errLiftedInMarkup
	}
	if top == nil {
		return nil, malformed("no <%s> element", root)
	}
	return top, nil
}

// leaves maps the names of n's children to their text. Known names
// (those in want) must appear at most once and have no child elements;
// other children are ignored.
type leaves map[string]string

func (n *node) leaves(want ...string) (leaves, error) {
	l := make(leaves, len(want))
	for _, c := range n.children {
		if !slices.Contains(want, c.name) {
			continue
		}
		if _, dup := l[c.name]; dup {
			return nil, malformed("<%s> appears more than once in <%s>", c.name, n.name)
		}
		if len(c.children) > 0 {
			return nil, malformed("<%s> holds elements, want text", c.name)
		}
		l[c.name] = c.text.String()
	}
	return l, nil
}

// child returns n's only child named name (nil if none).
func (n *node) child(name string) (*node, error) {
	var found *node
	for _, c := range n.children {
		if c.name == name {
			if found != nil {
				return nil, malformed("<%s> appears more than once in <%s>", name, n.name)
			}
			found = c
		}
	}
	return found, nil
}
