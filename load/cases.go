package load

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/sim"
)

// Kind is what the gateway should make of a generated case.
type Kind int

// Kinds of generated case.
const (
	// Allowed is a valid case of a cross-district item: 202, delivered.
	Allowed Kind = iota
	// Denied is a valid case of an item that does not cross (户口迁移): 403
	// policy_denied.
	Denied
	// Invalid is a case that fails validation (a wrong ID check digit and a
	// material whose SM3 does not match): 422 validation_failed.
	Invalid
	numKinds
)

func (k Kind) String() string {
	switch k {
	case Allowed:
		return "allowed"
	case Denied:
		return "denied"
	case Invalid:
		return "invalid"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// ErrMix: a mix specification does not parse.
var ErrMix = errors.New("load: invalid mix")

// Mix is the proportion of each kind of case, as weights.
type Mix [numKinds]int

// DefaultMix is 90% allowed, 5% denied, 5% invalid.
var DefaultMix = Mix{Allowed: 90, Denied: 5, Invalid: 5}

// ParseMix reads "allowed=90,denied=5,invalid=5" (missing kinds weigh 0).
func ParseMix(s string) (Mix, error) {
	var m Mix
	total := 0
	for _, part := range strings.Split(s, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(val)
		if !ok || err != nil || n < 0 {
			return m, fmt.Errorf("%w: %q (want allowed=N,denied=N,invalid=N)", ErrMix, part)
		}
		switch name {
		case "allowed":
			m[Allowed] = n
		case "denied":
			m[Denied] = n
		case "invalid":
			m[Invalid] = n
		default:
			return m, fmt.Errorf("%w: unknown kind %q", ErrMix, name)
		}
		total += n
	}
	if total == 0 {
		return m, fmt.Errorf("%w: all weights are zero", ErrMix)
	}
	return m, nil
}

func (m Mix) String() string {
	return fmt.Sprintf("allowed=%d,denied=%d,invalid=%d", m[Allowed], m[Denied], m[Invalid])
}

// pick chooses a kind by weight.
func (m Mix) pick(r *rand.Rand) Kind {
	total := 0
	for _, w := range m {
		total += w
	}
	n := r.IntN(total)
	for k, w := range m {
		if n < w {
			return Kind(k)
		}
		n -= w
	}
	return Allowed
}

// cst is China Standard Time, in which both districts number cases by day.
var cst = time.FixedZone("CST", 8*60*60)

// sender is one district sending cases: its simulated system (for sample
// cases and its key) and its own case numbering, which walks back one day
// each time a day's numbers run out, so that every generated case number
// is new.
type sender struct {
	p       *sim.Partner
	signer  *certs.Signer
	digits  int
	max     int
	base    time.Time // 09:30:15 CST on the first day used
	day     int       // days before base
	seq     int       // last sequence used on day
	matSize int
	tpls    map[Kind]*template // of the current day
}

// template is a case body with its case number cut out, so that a case of
// any sequence number of the day is rendered by one copy.
type template struct {
	kind           Kind
	prefix, suffix []byte
	numPrefix      string // case number without its sequence digits
	digits         int
	contentType    string
}

func (t *template) caseNo(seq int) string {
	return t.numPrefix + fmt.Sprintf("%0*d", t.digits, seq)
}

// render writes the case of sequence seq.
func (t *template) render(seq int) []byte {
	no := t.caseNo(seq)
	b := make([]byte, 0, len(t.prefix)+len(no)+len(t.suffix))
	b = append(b, t.prefix...)
	b = append(b, no...)
	return append(b, t.suffix...)
}

func newSender(p *sim.Partner, signer *certs.Signer, base time.Time, matSize int) *sender {
	digits := 4
	if p.Division() == adapters.DivisionLiwan {
		digits = 5
	}
	max := 1
	for range digits {
		max *= 10
	}
	return &sender{p: p, signer: signer, digits: digits, max: max - 1, base: base, matSize: matSize}
}

// next returns the template and sequence number of a new case of kind.
func (s *sender) next(kind Kind) (*template, int, error) {
	if s.seq >= s.max || s.tpls == nil {
		if s.tpls != nil {
			s.day++
		}
		s.seq = 0
		s.tpls = map[Kind]*template{}
	}
	s.seq++
	t := s.tpls[kind]
	if t == nil {
		var err error
		if t, err = s.template(kind); err != nil {
			return nil, 0, err
		}
		s.tpls[kind] = t
	}
	return t, s.seq, nil
}

// template builds the template of kind for the current day: a sample case
// numbered with the day's last sequence number (which never occurs
// elsewhere in the body), changed as the kind requires.
func (s *sender) template(kind Kind) (*template, error) {
	at := s.base.AddDate(0, 0, -s.day)
	body, err := s.p.SampleCase(s.max, sim.SampleOptions{At: at, MaterialSize: s.matSize})
	if err != nil {
		return nil, err
	}
	codec := s.p.Codec()
	c, err := codec.DecodeCase(body)
	if err != nil {
		return nil, fmt.Errorf("load: sample case does not decode: %w", err)
	}
	switch kind {
	case Denied:
		c.Item = adapters.Item{BasicCode: "000102003000", ImplCode: c.Item.ImplCode[:18] + "000102003000", Name: "户口迁移"}
		c.Applicant = c.Contact
		c.Applicant.Kind, c.Applicant.Mobile = adapters.Person, ""
	case Invalid:
		id := []byte(c.Applicant.IDNumber)
		if last := id[len(id)-1]; last >= '0' && last <= '9' {
			id[len(id)-1] = '0' + (last-'0'+1)%10
		} else {
			id[len(id)-1] = '0'
		}
		c.Applicant.IDNumber = string(id)
		if len(c.Materials) > 0 {
			c.Materials[0].SM3 = certs.SM3Hex([]byte("something else"))
		}
	}
	if kind != Allowed {
		if body, err = codec.EncodeCase(c); err != nil {
			return nil, err
		}
	}
	no := []byte(c.CaseNo)
	if bytes.Count(body, no) != 1 {
		return nil, fmt.Errorf("load: case number %s occurs %d times in the sample", c.CaseNo, bytes.Count(body, no))
	}
	i := bytes.Index(body, no)
	return &template{
		kind: kind, prefix: body[:i:i], suffix: body[i+len(no):],
		numPrefix: c.CaseNo[:len(c.CaseNo)-s.digits], digits: s.digits, contentType: codec.ContentType(),
	}, nil
}

// materialSizeFor finds the material size that makes a case of p about
// caseSize bytes (materials are base64 in both formats, so the size grows
// linearly with it).
func materialSizeFor(p *sim.Partner, caseSize int, at time.Time) (int, error) {
	size := func(m int) (int, error) {
		b, err := p.SampleCase(1, sim.SampleOptions{At: at, MaterialSize: m})
		return len(b), err
	}
	s0, err := size(1000)
	if err != nil {
		return 0, err
	}
	s1, err := size(5000)
	if err != nil {
		return 0, err
	}
	perByte := float64(s1-s0) / 4000
	m := 1000 + int(float64(caseSize-s0)/perByte)
	if m < 0 {
		m = 0
	}
	return m, nil
}
