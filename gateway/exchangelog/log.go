package exchangelog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tongban/tongban/certs"
	"github.com/transparency-dev/merkle/proof"
)

// ErrInconsistent is returned (wrapped) when the stored leaves do not
// reproduce a signed checkpoint, or a new tree is not consistent with the
// previous checkpoint: the log must not be served.
var ErrInconsistent = errors.New("exchangelog: log inconsistent with its signed checkpoint")

// ErrNoSigner is returned when a checkpoint must be signed but no log key is
// configured.
var ErrNoSigner = errors.New("exchangelog: no log signing key")

// DefaultInterval is how often new leaves are integrated and, when the tree
// grew, a checkpoint is signed.
const DefaultInterval = time.Second

// Options configure a [Log]; build them with [NewOptions] and the With
// methods.
type Options struct {
	origin        string
	signer        KeySigner
	logCerts      []*certs.Certificate
	interval      time.Duration
	leader        func() bool
	clock         func() time.Time
	verifyEntries bool
	logger        *slog.Logger
}

// NewOptions returns the defaults: origin [DefaultOrigin], interval
// [DefaultInterval], always the leader, the system clock, no signer.
func NewOptions() *Options {
	return &Options{
		origin:   DefaultOrigin,
		interval: DefaultInterval,
		leader:   func() bool { return true },
		clock:    time.Now,
		logger:   slog.Default(),
	}
}

// WithOrigin sets the log's origin (first line of every checkpoint).
func (o *Options) WithOrigin(origin string) *Options { o.origin = origin; return o }

// WithSigner sets the log key that signs checkpoints. Its certificate is
// added to the log certificates.
func (o *Options) WithSigner(s KeySigner) *Options { o.signer = s; return o }

// WithLogCertificates adds certificates of earlier log keys, so that
// checkpoints signed before a rotation keep verifying (and are exported with
// the certificate that signed them).
func (o *Options) WithLogCertificates(cs ...*certs.Certificate) *Options {
	o.logCerts = append(o.logCerts, cs...)
	return o
}

// WithInterval sets how often Run integrates leaves and signs.
func (o *Options) WithInterval(d time.Duration) *Options { o.interval = d; return o }

// WithLeader sets the hook asked before signing: with several replicas only
// the one for which it returns true signs checkpoints; the others pick them
// up from the store.
func (o *Options) WithLeader(maySign func() bool) *Options { o.leader = maySign; return o }

// WithClock sets the clock that dates checkpoints.
func (o *Options) WithClock(now func() time.Time) *Options { o.clock = now; return o }

// WithEntryCheck makes Open also recompute every leaf hash from the stored
// entry bytes (slower: reads the whole log).
func (o *Options) WithEntryCheck(on bool) *Options { o.verifyEntries = on; return o }

// WithLogger sets where Run reports failures.
func (o *Options) WithLogger(l *slog.Logger) *Options { o.logger = l; return o }

// Log is the signed exchange log over a Store.
type Log struct {
	store  Store
	origin string
	opts   Options
	tree   *tree

	syncMu sync.Mutex // one Sync at a time

	mu       sync.RWMutex
	signer   KeySigner
	logCerts []*certs.Certificate
	latest   *StoredCheckpoint
	latestCP Checkpoint
	lastErr  error
}

// Open builds the tree from the stored leaves and checks that it reproduces
// the latest signed checkpoint; if not, it returns ErrInconsistent and the
// gateway must refuse to become ready.
func Open(ctx context.Context, s Store, opts *Options) (*Log, error) {
	if opts == nil {
		opts = NewOptions()
	}
	l := &Log{store: s, origin: opts.origin, opts: *opts, tree: newTree(s)}
	l.logCerts = append(l.logCerts, opts.logCerts...)
	if opts.signer != nil {
		l.setSigner(opts.signer)
	}
	if _, err := l.tree.integrate(ctx); err != nil {
		return nil, err
	}
	if opts.verifyEntries {
		if err := l.checkEntries(ctx); err != nil {
			return nil, err
		}
	}
	cp, err := s.LatestCheckpoint(ctx)
	if err != nil {
		return nil, err
	}
	if cp != nil {
		if cp.Size > l.tree.size() { // another replica appended and signed since
			if _, err := l.tree.integrate(ctx); err != nil {
				return nil, err
			}
		}
		c, err := l.checkStored(ctx, cp)
		if err != nil {
			return nil, err
		}
		l.latest, l.latestCP = cp, c
	}
	return l, nil
}

func (l *Log) setSigner(s KeySigner) {
	l.signer = s
	for _, c := range l.logCerts {
		if c.Equal(s.Certificate()) {
			return
		}
	}
	l.logCerts = append(l.logCerts, s.Certificate())
}

// RotateSigner makes s the log key for the checkpoints signed from now on;
// the earlier keys' certificates stay known, so earlier checkpoints keep
// verifying.
func (l *Log) RotateSigner(s KeySigner) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.setSigner(s)
}

// LogCertificates returns the certificates of every log key known (earlier
// and current).
func (l *Log) LogCertificates() []*certs.Certificate {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return append([]*certs.Certificate(nil), l.logCerts...)
}

// Origin returns the log's origin.
func (l *Log) Origin() string { return l.origin }

// Size returns the number of leaves integrated into the tree.
func (l *Log) Size() uint64 { return l.tree.size() }

func (l *Log) checkEntries(ctx context.Context) error {
	size := l.tree.size()
	for start := uint64(0); start < size; start += integrateBatch {
		end := min(size, start+integrateBatch)
		es, err := l.store.Entries(ctx, start, end)
		if err != nil {
			return err
		}
		if uint64(len(es)) != end-start {
			return fmt.Errorf("%w: store returned %d entries for [%d, %d)", ErrInconsistent, len(es), start, end)
		}
		for i, e := range es {
			if e.Index != start+uint64(i) || LeafHash(e.Bytes) != e.LeafHash {
				return fmt.Errorf("%w: entry %d does not hash to its stored leaf", ErrInconsistent, start+uint64(i))
			}
		}
	}
	return nil
}

// checkStored verifies a stored checkpoint's signature with the known log
// keys and that the tree reproduces its root.
func (l *Log) checkStored(ctx context.Context, cp *StoredCheckpoint) (Checkpoint, error) {
	c, _, err := OpenCheckpoint(cp.Note, l.origin, l.LogCertificates())
	if err != nil {
		return c, fmt.Errorf("%w: checkpoint of size %d: %w", ErrInconsistent, cp.Size, err)
	}
	if c.Size != cp.Size {
		return c, fmt.Errorf("%w: checkpoint stored as size %d says %d", ErrInconsistent, cp.Size, c.Size)
	}
	if c.Size > l.tree.size() {
		return c, fmt.Errorf("%w: checkpoint of size %d, store holds %d leaves", ErrInconsistent, c.Size, l.tree.size())
	}
	root, err := l.tree.root(ctx, c.Size)
	if err != nil {
		return c, err
	}
	if root != c.Root {
		return c, fmt.Errorf("%w: leaves up to %d do not reproduce the signed root", ErrInconsistent, c.Size)
	}
	return c, nil
}

// Sync integrates the leaves appended since the last call and, if the tree
// grew past the latest checkpoint and this replica may sign, signs a new
// checkpoint after checking it consistent with the previous one. A
// checkpoint signed by another replica is picked up (and checked) instead.
func (l *Log) Sync(ctx context.Context) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	err := l.sync(ctx)
	l.mu.Lock()
	l.lastErr = err
	l.mu.Unlock()
	return err
}

func (l *Log) sync(ctx context.Context) error {
	size, err := l.tree.integrate(ctx)
	if err != nil {
		return err
	}
	stored, err := l.store.LatestCheckpoint(ctx)
	if err != nil {
		return err
	}
	l.mu.RLock()
	prev, prevCP, signer := l.latest, l.latestCP, l.signer
	l.mu.RUnlock()
	if stored != nil && (prev == nil || stored.Size > prev.Size) {
		if stored.Size > size { // another replica saw more leaves
			if size, err = l.tree.integrate(ctx); err != nil {
				return err
			}
		}
		c, err := l.checkStored(ctx, stored)
		if err != nil {
			return err
		}
		prev, prevCP = stored, c
		l.mu.Lock()
		l.latest, l.latestCP = stored, c
		l.mu.Unlock()
	}
	if size == 0 || (prev != nil && size <= prev.Size) || !l.opts.leader() {
		return nil
	}
	if signer == nil {
		return ErrNoSigner
	}
	root, err := l.tree.root(ctx, size)
	if err != nil {
		return err
	}
	next := Checkpoint{Origin: l.origin, Size: size, Root: root}
	if prev != nil {
		p, err := l.tree.consistency(ctx, prevCP.Size, size)
		if err != nil {
			return err
		}
		if err := proof.VerifyConsistency(Hasher, prevCP.Size, size, p, prevCP.Root[:], root[:]); err != nil {
			return fmt.Errorf("%w: tree of %d is not consistent with checkpoint %d: %v", ErrInconsistent, size, prevCP.Size, err)
		}
	}
	msg, err := SignCheckpoint(next, signer)
	if err != nil {
		return fmt.Errorf("exchangelog: signing checkpoint: %w", err)
	}
	if c, _, err := OpenCheckpoint(msg, l.origin, []*certs.Certificate{signer.Certificate()}); err != nil || c != next {
		return fmt.Errorf("exchangelog: freshly signed checkpoint does not verify: %v", err)
	}
	cp := &StoredCheckpoint{Size: size, Time: l.opts.clock(), Note: msg}
	if err := l.store.AddCheckpoint(ctx, *cp); err != nil {
		return err
	}
	l.mu.Lock()
	l.latest, l.latestCP = cp, next
	l.mu.Unlock()
	return nil
}

// Run calls Sync every interval until ctx ends, logging failures (see Err).
func (l *Log) Run(ctx context.Context) error {
	tick := time.NewTicker(l.opts.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if err := l.Sync(ctx); err != nil && ctx.Err() == nil {
				l.opts.logger.Error("exchange log sync failed", "err", err)
			}
		}
	}
}

// Err returns the error of the last Sync (nil when it succeeded): a readiness
// check reports the log as inconsistent while errors.Is(err, ErrInconsistent).
func (l *Log) Err() error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.lastErr
}

// Checkpoint returns the latest signed checkpoint note (nil when none).
func (l *Log) Checkpoint() []byte {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.latest == nil {
		return nil
	}
	return bytes.Clone(l.latest.Note)
}

// LatestCheckpoint returns the latest checkpoint's body and when it was
// signed (ok false when none).
func (l *Log) LatestCheckpoint() (c Checkpoint, signed time.Time, ok bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.latest == nil {
		return Checkpoint{}, time.Time{}, false
	}
	return l.latestCP, l.latest.Time, true
}

// InclusionProof is an RFC 9162 inclusion proof, as served over HTTP.
type InclusionProof struct {
	Index  uint64   `json:"index"`
	Size   uint64   `json:"size"`
	Hashes [][]byte `json:"hashes"`
}

// ConsistencyProof is an RFC 9162 consistency proof, as served over HTTP.
type ConsistencyProof struct {
	From   uint64   `json:"from"`
	To     uint64   `json:"to"`
	Hashes [][]byte `json:"hashes"`
}

// Verify checks that the proof leads from leafHash to root.
func (p *InclusionProof) Verify(leafHash, root [HashSize]byte) error {
	return proof.VerifyInclusion(Hasher, p.Index, p.Size, leafHash[:], p.Hashes, root[:])
}

// Verify checks that the tree with root1 is a prefix of the tree with root2.
func (p *ConsistencyProof) Verify(root1, root2 [HashSize]byte) error {
	return proof.VerifyConsistency(Hasher, p.From, p.To, p.Hashes, root1[:], root2[:])
}

// InclusionProof proves leaf index in the tree of the given size (≤ Size()).
// Out of range: ErrNotFound.
func (l *Log) InclusionProof(ctx context.Context, index, size uint64) (*InclusionProof, error) {
	h, err := l.tree.inclusion(ctx, index, size)
	if err != nil {
		return nil, err
	}
	return &InclusionProof{Index: index, Size: size, Hashes: nonNil(h)}, nil
}

// ConsistencyProof proves the tree of size from a prefix of the tree of size
// to (≤ Size()). Out of range: ErrNotFound.
func (l *Log) ConsistencyProof(ctx context.Context, from, to uint64) (*ConsistencyProof, error) {
	h, err := l.tree.consistency(ctx, from, to)
	if err != nil {
		return nil, err
	}
	return &ConsistencyProof{From: from, To: to, Hashes: nonNil(h)}, nil
}

// Root returns the root hash of the tree of the given size (≤ Size()).
func (l *Log) Root(ctx context.Context, size uint64) ([HashSize]byte, error) {
	if size > l.tree.size() {
		return [HashSize]byte{}, fmt.Errorf("%w: tree of %d, log size %d", ErrNotFound, size, l.tree.size())
	}
	return l.tree.root(ctx, size)
}

func nonNil(h [][]byte) [][]byte {
	if h == nil {
		return [][]byte{}
	}
	return h
}
