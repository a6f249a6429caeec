package httpsig

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
)

// This file is a parser for the RFC 8941 Dictionary fields the profile
// reads (Signature-Input, Signature, Content-Digest), and the serializer of
// the one inner list it writes. It parses the whole grammar so that other
// labels are skipped correctly, and records the exact bytes of each member
// value so that the received `tb` member can be compared with its
// re-serialization.

// sfKind is the type of a bare item.
type sfKind int

const (
	sfInteger sfKind = iota + 1
	sfDecimal
	sfString
	sfToken
	sfBytes
	sfBoolean
)

// sfBare is a bare item; only the field of its kind is set.
type sfBare struct {
	kind sfKind
	i    int64   // integer
	d    float64 // decimal
	s    string  // string or token
	b    []byte  // byte sequence
	t    bool    // boolean
}

type sfParam struct {
	key string
	val sfBare
}

type sfItem struct {
	bare   sfBare
	params []sfParam
}

// sfMember is a dictionary member: an item, or an inner list with its
// parameters. raw is the member's value exactly as received (after "=").
type sfMember struct {
	key     string
	inner   bool
	item    sfItem   // when !inner
	items   []sfItem // when inner
	params  []sfParam
	raw     string
	counted int // how many times the key appeared
}

var errSF = errors.New("not a valid structured field")

type sfParser struct {
	s   string
	pos int
}

func (p *sfParser) eof() bool  { return p.pos >= len(p.s) }
func (p *sfParser) peek() byte { return p.s[p.pos] }

func (p *sfParser) skipSP() {
	for !p.eof() && p.peek() == ' ' {
		p.pos++
	}
}

func (p *sfParser) skipOWS() {
	for !p.eof() && (p.peek() == ' ' || p.peek() == '\t') {
		p.pos++
	}
}

// parseDictionary parses an RFC 8941 §4.2.2 dictionary. Members keep the
// order of first appearance; a repeated key keeps its last value (and
// counts the repeats, which the caller may refuse).
func parseDictionary(field string) ([]*sfMember, error) {
	p := &sfParser{s: field}
	p.skipSP()
	var out []*sfMember
	index := map[string]*sfMember{}
	for !p.eof() {
		key, err := p.parseKey()
		if err != nil {
			return nil, err
		}
		m := &sfMember{key: key}
		start := p.pos
		if !p.eof() && p.peek() == '=' {
			p.pos++
			start = p.pos
			if !p.eof() && p.peek() == '(' {
				m.inner = true
				if m.items, m.params, err = p.parseInnerList(); err != nil {
					return nil, err
				}
			} else if m.item, err = p.parseItem(); err != nil {
				return nil, err
			}
		} else {
			m.item.bare = sfBare{kind: sfBoolean, t: true}
			if m.item.params, err = p.parseParameters(); err != nil {
				return nil, err
			}
		}
		m.raw = p.s[start:p.pos]
		if prev, ok := index[key]; ok {
			m.counted = prev.counted + 1
			*prev = *m
		} else {
			m.counted = 1
			index[key] = m
			out = append(out, m)
		}
		p.skipOWS()
		if p.eof() {
			return out, nil
		}
		if p.peek() != ',' {
			return nil, errSF
		}
		p.pos++
		p.skipOWS()
		if p.eof() {
			return nil, errSF // trailing comma
		}
	}
	return out, nil
}

func (p *sfParser) parseInnerList() ([]sfItem, []sfParam, error) {
	p.pos++ // "("
	var items []sfItem
	for !p.eof() {
		p.skipSP()
		if p.eof() {
			break
		}
		if p.peek() == ')' {
			p.pos++
			params, err := p.parseParameters()
			return items, params, err
		}
		it, err := p.parseItem()
		if err != nil {
			return nil, nil, err
		}
		items = append(items, it)
		if p.eof() || (p.peek() != ' ' && p.peek() != ')') {
			return nil, nil, errSF
		}
	}
	return nil, nil, errSF
}

func (p *sfParser) parseItem() (sfItem, error) {
	bare, err := p.parseBareItem()
	if err != nil {
		return sfItem{}, err
	}
	params, err := p.parseParameters()
	return sfItem{bare: bare, params: params}, err
}

func (p *sfParser) parseParameters() ([]sfParam, error) {
	var params []sfParam
	for !p.eof() && p.peek() == ';' {
		p.pos++
		p.skipSP()
		key, err := p.parseKey()
		if err != nil {
			return nil, err
		}
		val := sfBare{kind: sfBoolean, t: true}
		if !p.eof() && p.peek() == '=' {
			p.pos++
			if val, err = p.parseBareItem(); err != nil {
				return nil, err
			}
		}
		replaced := false
		for i := range params {
			if params[i].key == key {
				params[i].val = val
				replaced = true
			}
		}
		if !replaced {
			params = append(params, sfParam{key: key, val: val})
		}
	}
	return params, nil
}

func isLcalpha(c byte) bool { return c >= 'a' && c <= 'z' }
func isDigit(c byte) bool   { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool   { return isLcalpha(c) || (c >= 'A' && c <= 'Z') }

func (p *sfParser) parseKey() (string, error) {
	if p.eof() || !(isLcalpha(p.peek()) || p.peek() == '*') {
		return "", errSF
	}
	start := p.pos
	for !p.eof() {
		c := p.peek()
		if !isLcalpha(c) && !isDigit(c) && c != '_' && c != '-' && c != '.' && c != '*' {
			break
		}
		p.pos++
	}
	return p.s[start:p.pos], nil
}

func (p *sfParser) parseBareItem() (sfBare, error) {
	if p.eof() {
		return sfBare{}, errSF
	}
	switch c := p.peek(); {
	case c == '-' || isDigit(c):
		return p.parseNumber()
	case c == '"':
		return p.parseString()
	case c == '*' || isAlpha(c):
		return p.parseToken(), nil
	case c == ':':
		return p.parseBytes()
	case c == '?':
		return p.parseBoolean()
	}
	return sfBare{}, errSF
}

func (p *sfParser) parseNumber() (sfBare, error) {
	start := p.pos
	if p.peek() == '-' {
		p.pos++
	}
	if p.eof() || !isDigit(p.peek()) {
		return sfBare{}, errSF
	}
	digits, dot := 0, -1
	for !p.eof() {
		c := p.peek()
		if isDigit(c) {
			digits++
		} else if c == '.' && dot < 0 {
			if digits > 12 {
				return sfBare{}, errSF
			}
			dot = digits
		} else {
			break
		}
		p.pos++
		if digits > 15 {
			return sfBare{}, errSF
		}
	}
	text := p.s[start:p.pos]
	if dot < 0 {
		i, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return sfBare{}, errSF
		}
		return sfBare{kind: sfInteger, i: i}, nil
	}
	if frac := digits - dot; frac == 0 || frac > 3 {
		return sfBare{}, errSF
	}
	d, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return sfBare{}, errSF
	}
	return sfBare{kind: sfDecimal, d: d}, nil
}

func (p *sfParser) parseString() (sfBare, error) {
	p.pos++ // opening quote
	var b strings.Builder
	for !p.eof() {
		c := p.peek()
		p.pos++
		switch {
		case c == '\\':
			if p.eof() {
				return sfBare{}, errSF
			}
			n := p.peek()
			p.pos++
			if n != '"' && n != '\\' {
				return sfBare{}, errSF
			}
			b.WriteByte(n)
		case c == '"':
			return sfBare{kind: sfString, s: b.String()}, nil
		case c < 0x20 || c > 0x7e:
			return sfBare{}, errSF
		default:
			b.WriteByte(c)
		}
	}
	return sfBare{}, errSF
}

func isTchar(c byte) bool {
	if isAlpha(c) || isDigit(c) {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func (p *sfParser) parseToken() sfBare {
	start := p.pos
	p.pos++
	for !p.eof() && (isTchar(p.peek()) || p.peek() == ':' || p.peek() == '/') {
		p.pos++
	}
	return sfBare{kind: sfToken, s: p.s[start:p.pos]}
}

func (p *sfParser) parseBytes() (sfBare, error) {
	p.pos++ // ":"
	end := strings.IndexByte(p.s[p.pos:], ':')
	if end < 0 {
		return sfBare{}, errSF
	}
	text := p.s[p.pos : p.pos+end]
	p.pos += end + 1
	b, err := base64.StdEncoding.Strict().DecodeString(text)
	if err != nil {
		return sfBare{}, errSF
	}
	return sfBare{kind: sfBytes, b: b}, nil
}

func (p *sfParser) parseBoolean() (sfBare, error) {
	p.pos++ // "?"
	if p.eof() {
		return sfBare{}, errSF
	}
	c := p.peek()
	p.pos++
	switch c {
	case '1':
		return sfBare{kind: sfBoolean, t: true}, nil
	case '0':
		return sfBare{kind: sfBoolean, t: false}, nil
	}
	return sfBare{}, errSF
}

// serializeString is RFC 8941 §4.1.6 for the strings this profile writes
// (printable ASCII, checked by the callers).
func serializeString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
}

func validSFString(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
