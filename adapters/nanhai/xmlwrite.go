package nanhai

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"unicode/utf8"

	"github.com/tongban/tongban/adapters"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/simplifiedchinese"
)

const declaration = `<?xml version="1.0" encoding="GBK"?>` + "\n"

// writer builds a GBK XML document, two spaces of indentation per level.
type writer struct {
	buf   bytes.Buffer
	enc   *encoding.Encoder
	depth int
	err   error
}

func newWriter(root string, sizeHint int) *writer {
	w := &writer{enc: simplifiedchinese.GBK.NewEncoder()}
	w.buf.Grow(sizeHint + 1024)
	w.buf.WriteString(declaration)
	w.open(root)
	return w
}

func (w *writer) indent() {
	for i := 0; i < w.depth; i++ {
		w.buf.WriteString("  ")
	}
}

func (w *writer) open(name string) {
	w.indent()
	w.buf.WriteString("<" + name + ">\n")
	w.depth++
}

func (w *writer) close(name string) {
	w.depth--
	w.indent()
	w.buf.WriteString("</" + name + ">\n")
}

// elem writes <name>value</name>.
func (w *writer) elem(name, value string) {
	w.indent()
	w.buf.WriteString("<" + name + ">")
	w.text(name, value)
	w.buf.WriteString("</" + name + ">\n")
}

// base64 writes <name>content in standard base64</name>, encoded straight
// into the document: the base64 alphabet is ASCII with nothing to escape,
// so it is what elem of the encoded string would write, without the
// string and the byte-by-byte escaping of ~27 KiB per material.
func (w *writer) base64(name string, content []byte) {
	w.indent()
	w.buf.WriteString("<" + name + ">")
	w.buf.Write(base64.StdEncoding.AppendEncode(w.buf.AvailableBuffer(), content))
	w.buf.WriteString("</" + name + ">\n")
}

// opt writes <name>value</name> unless value is empty.
func (w *writer) opt(name, value string) {
	if value != "" {
		w.elem(name, value)
	}
}

// text writes value escaped for XML character data in GBK: markup
// characters and carriage returns as references, characters GBK cannot
// encode as &#xHEX; references.
func (w *writer) text(name, value string) {
	var one [8]byte
	for i := 0; i < len(value); {
		c := value[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '&':
				w.buf.WriteString("&amp;")
			case c == '<':
				w.buf.WriteString("&lt;")
			case c == '>':
				w.buf.WriteString("&gt;")
			case c == '\r':
				w.buf.WriteString("&#xD;")
			case c < 0x20 && c != '\t' && c != '\n':
				w.fail(name, rune(c))
			default:
				w.buf.WriteByte(c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(value[i:])
		if (r == utf8.RuneError && size == 1) || r == 0xFFFE || r == 0xFFFF {
			w.fail(name, r)
			i += size
			continue
		}
		nDst, _, err := w.enc.Transform(one[:], []byte(value[i:i+size]), true)
		w.enc.Reset()
		if err != nil || nDst == 0 {
			fmt.Fprintf(&w.buf, "&#x%X;", r)
		} else {
			w.buf.Write(one[:nDst])
		}
		i += size
	}
}

func (w *writer) fail(name string, r rune) {
	if w.err == nil {
		w.err = fmt.Errorf("%w: <%s> holds %U, which XML cannot carry", adapters.ErrUnencodable, name, r)
	}
}

func (w *writer) bytes(root string) ([]byte, error) {
	w.close(root)
	if w.err != nil {
		return nil, w.err
	}
	return w.buf.Bytes(), nil
}
