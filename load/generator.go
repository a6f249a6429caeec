package load

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/httpsig"
	"github.com/tongban/tongban/sim"
)

// resignAfter is the age after which a pre-signed request is signed again
// before it is sent: the gateway accepts created within ±300 s.
const resignAfter = 240 * time.Second

// Request is one signed submission of a new case, ready to send. The body
// is not kept: it is rendered from its template when sent, so that a
// million pre-signed requests take a few hundred megabytes, not twenty
// gigabytes.
type Request struct {
	Kind   Kind
	From   string // the sending division
	CaseNo string

	url     string
	tpl     *template
	seq     int
	signer  *certs.Signer
	digest  string
	input   string
	sig     string
	created time.Time
}

// Body renders the request's body, byte for byte the one signed.
func (r *Request) Body() []byte { return r.tpl.render(r.seq) }

// sign signs the request anew (fresh created and nonce).
func (r *Request) sign(now time.Time) error {
	req, err := http.NewRequest(http.MethodPost, r.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", r.tpl.contentType)
	if _, err := httpsig.SignRequest(req, r.Body(), r.signer, httpsig.WithClock(func() time.Time { return now })); err != nil {
		return fmt.Errorf("load: sign: %w", err)
	}
	r.digest = req.Header.Get(httpsig.HeaderContentDigest)
	r.input = req.Header.Get(httpsig.HeaderSignatureInput)
	r.sig = req.Header.Get(httpsig.HeaderSignature)
	r.created = now
	return nil
}

// header sets the request's signed fields on h.
func (r *Request) header(h http.Header) {
	h.Set("Content-Type", r.tpl.contentType)
	h.Set(httpsig.HeaderContentDigest, r.digest)
	h.Set(httpsig.HeaderSignatureInput, r.input)
	h.Set(httpsig.HeaderSignature, r.sig)
}

// GeneratorOptions configures a [Generator].
type GeneratorOptions struct {
	// Target is the gateway's base URL (its public URL: the signed
	// @target-uri is Target + /v1/exchanges).
	Target string
	// Nanhai and Liwan are the two simulated districts (sample cases) and
	// NanhaiKey, LiwanKey their signing keys.
	Nanhai, Liwan       *sim.Partner
	NanhaiKey, LiwanKey *certs.Signer
	// CaseSize is the approximate size of an allowed case in bytes (its
	// materials are sized to reach it); 0 keeps the small sample materials.
	CaseSize int
	Mix      Mix
	// Seed makes the sequence of kinds repeatable.
	Seed uint64
	// FirstDay is the day (before today, in UTC+8) of the first case
	// numbers; each district walks back a day when it runs out of numbers
	// (Nanhai has 9,999 a day, Liwan 99,999). Use a fresh value per run
	// against a gateway that keeps its store, or its cases will be replays.
	FirstDay int
}

// Generator makes signed cases. Its methods are safe for concurrent use.
type Generator struct {
	o       GeneratorOptions
	url     string
	nanhai  *sender
	liwan   *sender
	mu      sync.Mutex
	rng     *rand.Rand
	turn    int
	matSize int

	pre     []*Request
	next    atomic.Int64
	inline  atomic.Int64 // requests signed while the load ran
	resigns atomic.Int64
}

// NewGenerator prepares a generator (no case is made yet).
func NewGenerator(o GeneratorOptions) (*Generator, error) {
	if o.Nanhai == nil || o.Liwan == nil || o.NanhaiKey == nil || o.LiwanKey == nil || o.Target == "" {
		return nil, fmt.Errorf("load: generator needs both districts, their keys and a target")
	}
	if o.Mix == (Mix{}) {
		o.Mix = DefaultMix
	}
	if o.FirstDay < 1 {
		o.FirstDay = 1
	}
	n := time.Now().In(cst)
	base := time.Date(n.Year(), n.Month(), n.Day(), 9, 30, 15, 0, cst).AddDate(0, 0, -o.FirstDay)
	matSize := 0
	if o.CaseSize > 0 {
		var err error
		if matSize, err = materialSizeFor(o.Nanhai, o.CaseSize, base); err != nil {
			return nil, err
		}
	}
	g := &Generator{
		o: o, url: strings.TrimRight(o.Target, "/") + "/v1/exchanges", matSize: matSize,
		rng:    rand.New(rand.NewPCG(o.Seed, o.Seed^0x5eed)),
		nanhai: newSender(o.Nanhai, o.NanhaiKey, base, matSize),
		liwan:  newSender(o.Liwan, o.LiwanKey, base, matSize),
	}
	return g, nil
}

// MaterialSize is the size of each material file of the generated cases.
func (g *Generator) MaterialSize() int { return g.matSize }

// make makes the next request, unsigned: its kind by the mix; allowed
// cases alternate between Nanhai and Liwan, denied ones come from Nanhai
// (a household move, which does not cross) and invalid ones from Liwan.
func (g *Generator) make() (*Request, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	kind := g.o.Mix.pick(g.rng)
	s := g.nanhai
	switch kind {
	case Allowed:
		if g.turn++; g.turn%2 == 0 {
			s = g.liwan
		}
	case Invalid:
		s = g.liwan
	}
	t, seq, err := s.next(kind)
	if err != nil {
		return nil, err
	}
	return &Request{Kind: kind, From: s.p.Division(), CaseNo: t.caseNo(seq), url: g.url, tpl: t, seq: seq, signer: s.signer}, nil
}

// Presign makes and signs n requests ahead of the load, on all cores;
// [Generator.Next] hands them out first.
func (g *Generator) Presign(n int) error {
	reqs := make([]*Request, n)
	for i := range reqs {
		r, err := g.make()
		if err != nil {
			return err
		}
		reqs[i] = r
	}
	now := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, runtime.GOMAXPROCS(0))
	var idx atomic.Int64
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(idx.Add(1) - 1)
				if i >= n {
					return
				}
				if err := reqs[i].sign(now); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	g.pre = append(g.pre, reqs...)
	return nil
}

// Next returns the next request to send: a pre-signed one (signed again
// if it has grown too old), or one made and signed now.
func (g *Generator) Next() (*Request, error) {
	if i := int(g.next.Add(1) - 1); i < len(g.pre) {
		r := g.pre[i]
		g.pre[i] = nil // let it go once sent
		if time.Since(r.created) > resignAfter {
			g.resigns.Add(1)
			return r, r.sign(time.Now())
		}
		return r, nil
	}
	r, err := g.make()
	if err != nil {
		return nil, err
	}
	g.inline.Add(1)
	return r, r.sign(time.Now())
}

// SignedDuringRun is the number of requests signed while the load ran (made
// beyond the pre-signed ones, or re-signed because they had grown old).
func (g *Generator) SignedDuringRun() int64 { return g.inline.Load() + g.resigns.Load() }
