package liwan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/tongban/tongban/adapters"
)

// maxDepth caps nesting of objects and arrays.
const maxDepth = 16

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", adapters.ErrMalformed, fmt.Sprintf(format, args...))
}

// parse reads one JSON object into maps, slices, strings, json.Numbers,
// bools and nils, refusing invalid UTF-8, duplicated keys (compared after
// unescaping), nesting deeper than maxDepth, a top level that is not an
// object, and anything after it.
//
// encoding/json scans a string byte by byte, which made the base64 of the
// materials most of the cost of decoding a case. So long strings of plain
// characters (liftStrings) are first replaced by empty strings and put
// back as the decoder returns them; if that does not work out (any error,
// a token that does not match), the body is parsed again as it is, so
// that the result and every error are exactly encoding/json's.
func parse(body []byte) (map[string]any, error) {
	if !utf8.Valid(body) {
		return nil, malformed("body is not valid UTF-8")
	}
	if cut, runs := liftStrings(body); len(runs) > 0 {
		if obj, err := parseJSON(cut, runs); err == nil {
			return obj, nil
		}
	}
	return parseJSON(body, nil)
}

// minRun is the shortest string liftStrings lifts out.
const minRun = 256

// plainByte marks the bytes of a liftable string: the base64 alphabet
// (no quote, no backslash, nothing encoding/json changes in a string).
var plainByte = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") {
		t[c] = true
	}
	return t
}()

// liftedString is a string's content taken out of a document: its
// closing quote is at offset end-1 of the document without it.
type liftedString struct {
	end  int64
	text string
}

// liftStrings empties every quoted run of at least minRun plain bytes and
// says where each was. A body without such runs is returned as it is.
func liftStrings(body []byte) ([]byte, []liftedString) {
	var (
		out  []byte
		runs []liftedString
		done int // body[:done] is in out
	)
	for i := 0; i < len(body); {
		j := bytes.IndexByte(body[i:], '"')
		if j < 0 {
			break
		}
		start := i + j + 1
		k := start
		for k < len(body) && plainByte[body[k]] {
			k++
		}
		if k-start >= minRun && k < len(body) && body[k] == '"' {
			if out == nil {
				// Everything but this run, at most: the first run is
				// usually most of the body.
				out = make([]byte, 0, len(body)-(k-start))
			}
			out = append(out, body[done:start]...)
			runs = append(runs, liftedString{end: int64(len(out)) + 1, text: string(body[start:k])})
			done = k
			k++ // past the closing quote
		}
		i = k
	}
	if runs == nil {
		return body, nil
	}
	return append(out, body[done:]...), runs
}

// errLiftedMismatch: a lifted string was not found where it was taken.
var errLiftedMismatch = errors.New("liwan: lifted string not where it was")

// tokens reads d's tokens, putting lifted strings back: the empty string
// token that ends where a lifted one did is that string.
type tokens struct {
	d    *json.Decoder
	runs []liftedString
}

func (t *tokens) Token() (json.Token, error) {
	tok, err := t.d.Token()
	if err != nil || len(t.runs) == 0 {
		return tok, err
	}
	switch off := t.d.InputOffset(); {
	case off < t.runs[0].end:
		return tok, nil
	case off == t.runs[0].end && tok == "":
		tok, t.runs = t.runs[0].text, t.runs[1:]
		return tok, nil
	}
	return nil, errLiftedMismatch
}

// More reports whether there is another element in the current array or
// object.
func (t *tokens) More() bool { return t.d.More() }

// parseJSON is parse of a body from which strings were lifted (none: the
// body as it is).
func parseJSON(body []byte, runs []liftedString) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	d := &tokens{d: dec, runs: runs}
	v, err := value(d, 0)
	if err != nil {
		return nil, err
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, malformed("data after the top-level value")
	}
	if len(d.runs) > 0 {
		return nil, errLiftedMismatch
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, malformed("top-level value is not an object")
	}
	return obj, nil
}

func value(d *tokens, depth int) (any, error) {
	tok, err := d.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, malformed("unexpected end of JSON")
		}
		return nil, malformed("json: %v", err)
	}
	switch t := tok.(type) {
	case json.Delim:
		if depth >= maxDepth {
			return nil, malformed("nested deeper than %d", maxDepth)
		}
		switch t {
		case '{':
			m := map[string]any{}
			for d.More() {
				kt, err := d.Token()
				if err != nil {
					return nil, malformed("json: %v", err)
				}
				k, ok := kt.(string)
				if !ok {
					return nil, malformed("object key is not a string")
				}
				if _, dup := m[k]; dup {
					return nil, malformed("duplicated key %q", k)
				}
				v, err := value(d, depth+1)
				if err != nil {
					return nil, err
				}
				m[k] = v
			}
			if _, err := d.Token(); err != nil {
				return nil, malformed("json: %v", err)
			}
			return m, nil
		case '[':
			a := []any{}
			for d.More() {
				v, err := value(d, depth+1)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			if _, err := d.Token(); err != nil {
				return nil, malformed("json: %v", err)
			}
			return a, nil
		}
		return nil, malformed("unexpected %v", t)
	default:
		return t, nil
	}
}

// reader takes typed values out of a parsed object, recording a "type"
// problem on a value of the wrong JSON type. A null counts as absent.
type reader struct{ p *adapters.Problems }

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return "null"
}

func (r reader) wrongType(ref adapters.FieldRef, want string, v any) {
	r.p.Add(ref, adapters.CodeType, fmt.Sprintf("must be %s, not %s", want, typeName(v)))
}

func (r reader) str(m map[string]any, key string, ref adapters.FieldRef) string {
	v, ok := m[key]
	if !ok || v == nil {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		r.wrongType(ref, "a string", v)
	}
	return s
}

// object returns m[key] as an object; nil when absent (required: a
// "required" problem) or of another type.
func (r reader) object(m map[string]any, key string, ref adapters.FieldRef, required bool) map[string]any {
	v, ok := m[key]
	if !ok || v == nil {
		if required {
			r.p.Add(ref, adapters.CodeRequired, "required")
		}
		return nil
	}
	o, ok := v.(map[string]any)
	if !ok {
		r.wrongType(ref, "an object", v)
	}
	return o
}

// integer returns m[key] as an integer of at most bits bits; present is
// false when absent. A number that is not an integer in range is a
// "format" problem.
func (r reader) integer(m map[string]any, key string, ref adapters.FieldRef, bits int) (n int64, present bool) {
	v, ok := m[key]
	if !ok || v == nil {
		return 0, false
	}
	num, ok := v.(json.Number)
	if !ok {
		r.wrongType(ref, "a number", v)
		return 0, true
	}
	n, err := strconv.ParseInt(string(num), 10, bits)
	if err != nil {
		r.p.Add(ref, adapters.CodeFormat, "must be an integer in range")
		return 0, true
	}
	return n, true
}

// time reads an RFC 3339 time with an offset, keeping the instant; it is
// returned in China's time.
func (r reader) time(m map[string]any, key string, ref adapters.FieldRef) time.Time {
	s := r.str(m, key, ref)
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		r.p.Add(ref, adapters.CodeFormat, "time must be RFC 3339 with an offset")
		return time.Time{}
	}
	return t.In(adapters.CST)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(adapters.CST).Format(time.RFC3339Nano)
}
