package load

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/policies"
)

// FloorOptions configures [MeasureFloor].
type FloorOptions struct {
	// Duration is how long the parallel measurement runs (default 2 s).
	Duration time.Duration
	// Workers is the number of goroutines (default GOMAXPROCS: all cores).
	Workers int
	// CaseSize is the size of a case body in bytes (default 20 KiB); the
	// translated record is taken to be as large.
	CaseSize int
	// Signer signs and verifies; default a fresh dev PKI's Nanhai key.
	Signer *certs.Signer
	// Engine decides; default the pilot bundle.
	Engine *policies.Engine
}

// Floor is the unavoidable cryptography and policy of one exchange,
// measured on this machine: what no implementation of tongban can avoid.
type Floor struct {
	// PerSecond is how many exchanges' worth of that work all workers
	// together do in a second.
	PerSecond float64
	Workers   int
	Exchanges int64
	Elapsed   time.Duration
	// The cost of each operation on one core, measured before.
	Verify, Sign, Decide, SM3Case time.Duration
}

// Per-exchange operations (the list): the gateway verifies the
// request, the partner's acknowledgement; the partner verifies the
// delivery — three SM2 verifies. The gateway signs the delivery and the
// receipt, the partner its acknowledgement — three SM2 signs. One policy
// decision. SM3 of every body: the case, the translated record, the
// acknowledgement and the receipt.
const (
	floorVerifies = 3
	floorSigns    = 3
)

// signatureBase is the size of a realistic RFC 9421 signature base.
const signatureBase = 420

// smallBody is the size of an acknowledgement or a receipt.
const smallBody = 220

// String is a one-line summary.
func (f *Floor) String() string {
	return fmt.Sprintf("floor %.0f exchanges/s on %d workers (%d in %.2fs); per op on one core: SM2 verify %s, SM2 sign %s, decision %s, SM3 of a case %s",
		f.PerSecond, f.Workers, f.Exchanges, f.Elapsed.Seconds(), us(f.Verify), us(f.Sign), us(f.Decide), us(f.SM3Case))
}

func us(d time.Duration) string { return fmt.Sprintf("%.1fµs", float64(d)/1e3) }

// floorWork is one exchange's unavoidable work.
type floorWork struct {
	signer   *certs.Signer
	engine   *policies.Engine
	in       policies.Input
	base     []byte
	sig      []byte
	caseBody []byte
	record   []byte
	ack      []byte
	receipt  []byte
}

func (w *floorWork) verify() error { return w.signer.Verify(w.base, w.sig) }

func (w *floorWork) sign() error {
	_, err := w.signer.Sign(w.base)
	return err
}

func (w *floorWork) decide(ctx context.Context) error {
	d, err := w.engine.Evaluate(ctx, w.in)
	if err == nil && !d.Allow {
		err = fmt.Errorf("load: the floor's decision input is denied: %v", d.ReasonCodes())
	}
	return err
}

var sink atomic.Uint32

func (w *floorWork) hash() {
	a, b, c, d := certs.SM3(w.caseBody), certs.SM3(w.record), certs.SM3(w.ack), certs.SM3(w.receipt)
	sink.Add(uint32(a[0] ^ b[0] ^ c[0] ^ d[0]))
}

func (w *floorWork) exchange(ctx context.Context) error {
	for range floorVerifies {
		if err := w.verify(); err != nil {
			return err
		}
	}
	if err := w.decide(ctx); err != nil {
		return err
	}
	for range floorSigns {
		if err := w.sign(); err != nil {
			return err
		}
	}
	w.hash()
	return nil
}

// floorInput is the decision of an allowed company set-up from Nanhai, as
// the load generator sends.
func floorInput() policies.Input {
	n := time.Now().In(cst)
	return policies.Input{From: "440605", To: "440103", BasicCode: "000105001000", ApplicantKind: "ENTERPRISE",
		Channel: "COUNTER", Materials: []string{"M001", "M002", "M003", "M004"},
		Time: time.Date(n.Year(), n.Month(), n.Day(), 9, 45, 15, 0, cst).AddDate(0, 0, -1)}
}

// MeasureFloor measures the floor: first each operation on one core, then
// whole exchanges' worth of work on every worker at once for o.Duration.
func MeasureFloor(ctx context.Context, o FloorOptions) (*Floor, error) {
	if o.Duration <= 0 {
		o.Duration = 2 * time.Second
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.CaseSize <= 0 {
		o.CaseSize = 20 << 10
	}
	if o.Signer == nil {
		dir, err := os.MkdirTemp("", "tongban-floor-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		if err := certs.InitDevPKI(dir); err != nil {
			return nil, err
		}
		pki, err := certs.LoadDevPKI(dir)
		if err != nil {
			return nil, err
		}
		o.Signer = pki.Nanhai
	}
	if o.Engine == nil {
		e, err := policies.Compile(ctx, policies.Pilot())
		if err != nil {
			return nil, err
		}
		o.Engine = e
	}
	newWork := func() (*floorWork, error) {
		w := &floorWork{signer: o.Signer, engine: o.Engine, in: floorInput(),
			base: []byte(strings.Repeat("b", signatureBase)), caseBody: random(o.CaseSize), record: random(o.CaseSize),
			ack: random(smallBody), receipt: random(smallBody)}
		var err error
		w.sig, err = w.signer.Sign(w.base)
		return w, err
	}
	w, err := newWork()
	if err != nil {
		return nil, err
	}
	f := &Floor{Workers: o.Workers}
	const calib = 200
	timeOp := func(op func() error) (time.Duration, error) {
		begin := time.Now()
		for range calib {
			if err := op(); err != nil {
				return 0, err
			}
		}
		return time.Since(begin) / calib, nil
	}
	if f.Verify, err = timeOp(w.verify); err != nil {
		return nil, err
	}
	if f.Sign, err = timeOp(w.sign); err != nil {
		return nil, err
	}
	if f.Decide, err = timeOp(func() error { return w.decide(ctx) }); err != nil {
		return nil, err
	}
	if f.SM3Case, err = timeOp(func() error { certs.SM3(w.caseBody); return nil }); err != nil {
		return nil, err
	}

	var total atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, o.Workers)
	begin := time.Now()
	deadline := begin.Add(o.Duration)
	for range o.Workers {
		w, err := newWork()
		if err != nil {
			return nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				if n%8 == 0 && (time.Now().After(deadline) || ctx.Err() != nil) {
					return
				}
				if err := w.exchange(ctx); err != nil {
					errs <- err
					return
				}
				total.Add(1)
			}
		}()
	}
	wg.Wait()
	f.Elapsed = time.Since(begin)
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.Exchanges = total.Load()
	f.PerSecond = float64(f.Exchanges) / f.Elapsed.Seconds()
	return f, nil
}

func random(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}
