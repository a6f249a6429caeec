package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// ErrNotDurable: the database would acknowledge a commit before it is on
// disk (PostgreSQL with fsync or synchronous_commit off). The store refuses
// it, because a 202 promises the case survives a crash.
var ErrNotDurable = errors.New("store: database does not make commits durable")

// Driver names accepted by [Open].
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// Option adjusts a store as it is opened.
type Option func(*options)

type options struct {
	now             func() time.Time
	nonceCleanup    time.Duration
	maxConns        int
	connMaxIdleTime time.Duration
	groupCommit     int
	commitInterval  time.Duration
	sealer          Sealer
}

func defaultOptions() options {
	return options{
		now:             time.Now,
		nonceCleanup:    time.Minute,
		maxConns:        10,
		connMaxIdleTime: 5 * time.Minute,
		groupCommit:     64,
		commitInterval:  DefaultCommitInterval,
	}
}

// WithClock sets the clock the store reads for the times it assigns itself
// (creation and update times, nonce expiry, redrive). Default time.Now.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// WithNonceCleanup sets how often expired nonces are deleted (default one
// minute; 0 disables the cleanup, expired nonces are then only replaced).
func WithNonceCleanup(every time.Duration) Option {
	return func(o *options) { o.nonceCleanup = every }
}

// WithMaxConns bounds the connection pool: PostgreSQL connections, or
// SQLite reader connections (SQLite always writes through one connection).
// Default 10.
func WithMaxConns(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxConns = n
		}
	}
}

// WithGroupCommit sets how many concurrent write transactions SQLite may
// commit together under one fsync (default 64; 1 or less: each transaction
// commits alone). PostgreSQL ignores it.
func WithGroupCommit(max int) Option {
	return func(o *options) { o.groupCommit = max }
}

// DefaultCommitInterval is the default of [WithCommitInterval].
const DefaultCommitInterval = 5 * time.Millisecond

// WithCommitInterval paces SQLite's group commit when writers are
// concurrent: a commit starts at most every d after the previous one
// started, gathering the writes that arrive meanwhile (default
// [DefaultCommitInterval]; 0: as soon as the previous commit has
// finished). A write then waits up to d longer before it is durable, and
// the store spends far less CPU per write at moderate load. A lone writer
// (the previous commit carried one job and nothing was waiting) is not
// paced. Negative values count as 0. PostgreSQL ignores it.
func WithCommitInterval(d time.Duration) Option {
	return func(o *options) { o.commitInterval = max(d, 0) }
}

// WithPayloadSealer encrypts the payload columns at rest (the request as
// received, the translated record, the outbox payload: everything that holds
// names, ID numbers and phones). Rows written before remain readable; rows
// written with a sealer cannot be read without it.
func WithPayloadSealer(sl Sealer) Option {
	return func(o *options) { o.sealer = sl }
}

// Open opens the store with the named driver: [DriverSQLite] (dsn is a file
// path) or [DriverPostgres] (also "pgx"; dsn is a libpq URL or key=value
// string).
func Open(ctx context.Context, driver, dsn string, opts ...Option) (Store, error) {
	switch driver {
	case DriverSQLite, "sqlite3":
		return OpenSQLite(ctx, dsn, opts...)
	case DriverPostgres, "postgresql", "pgx":
		return OpenPostgres(ctx, dsn, opts...)
	}
	return nil, fmt.Errorf("store: unknown driver %q (want %q or %q)", driver, DriverSQLite, DriverPostgres)
}

// OpenSQLite opens (creating it if needed) the SQLite database at path and
// brings its schema up to date.
//
// The database runs in WAL mode with synchronous=FULL, so a committed
// transaction is fsynced before the call returns. Every write goes through
// one connection whose transactions begin IMMEDIATE: writers queue in Go
// rather than polling SQLite's busy handler, and a transaction never fails
// half-way for want of the write lock. Concurrent write transactions are
// group-committed (see [WithGroupCommit]): one fsync for all that waited,
// each caller answered only after it. Reads use a separate pool and see the
// last committed state. Several handles (or processes) may open the same
// file; they then wait on each other through busy_timeout.
func OpenSQLite(ctx context.Context, path string, opts ...Option) (Store, error) {
	o := defaultOptions()
	for _, f := range opts {
		f(&o)
	}
	if path == "" || strings.ContainsRune(path, '?') || strings.HasPrefix(path, "file:") || path == ":memory:" {
		return nil, fmt.Errorf("store: sqlite path %q: want a plain file path", path)
	}
	const pragmas = "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)"
	// The writer's own settings (docs/performance.md, "Fourth round"):
	// temp_store(MEMORY) keeps the statement journals of the group commit's
	// savepoints in memory instead of temporary files (they were half of
	// the write system calls); a 16 MiB page cache (default 2 MiB) keeps
	// the outbox rows and bodies the delivery worker claims shortly after
	// they were written; and a checkpoint every 4,000 WAL pages (default
	// 1,000, ~16 MiB of WAL with 4 KiB pages) copies the pages every
	// commit rewrites (table and index tails) to the database file a
	// quarter as often.
	const writerPragmas = "&_pragma=temp_store(MEMORY)&_pragma=cache_size(-16384)&_pragma=wal_autocheckpoint(4000)"
	w, err := sql.Open("sqlite", path+"?"+pragmas+writerPragmas+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	r, err := sql.Open("sqlite", path+"?"+pragmas+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	r.SetMaxOpenConns(o.maxConns)
	r.SetMaxIdleConns(o.maxConns)
	r.SetConnMaxIdleTime(o.connMaxIdleTime)
	s := newSQLStore(sqliteDialect, w, r, o)
	if o.groupCommit > 1 {
		s.jobs = make(chan *txJob, o.groupCommit)
		s.first = make(chan *txJob, o.groupCommit)
		s.committed = make(chan struct{})
		s.maxBatch = o.groupCommit
		s.commitInterval = o.commitInterval
	}
	if err := s.init(ctx); err != nil {
		s.Close()
		return nil, err
	}
	var mode string
	var sync int
	if err := w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || !strings.EqualFold(mode, "wal") {
		s.Close()
		return nil, fmt.Errorf("store: sqlite %s: journal mode %q, want wal (%v)", path, mode, err)
	}
	if err := w.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil || sync < 2 {
		s.Close()
		return nil, fmt.Errorf("%w: sqlite %s: synchronous=%d (%v)", ErrNotDurable, path, sync, err)
	}
	return s, nil
}

// OpenPostgres connects to PostgreSQL, brings the schema up to date (under an
// advisory lock, so replicas starting together migrate once) and checks that
// commits are durable: fsync and synchronous_commit must not be off
// ([ErrNotDurable]). Several replicas may share the database: log indexes
// are assigned without gaps across them, the outbox is claimed with FOR
// UPDATE SKIP LOCKED, and nonces and idempotency records are shared.
//
// The schema is the connection's search_path (a DSN may set it, e.g.
// "…?search_path=tongban").
func OpenPostgres(ctx context.Context, dsn string, opts ...Option) (Store, error) {
	o := defaultOptions()
	for _, f := range opts {
		f(&o)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("store: postgres dsn: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(o.maxConns)
	db.SetMaxIdleConns(o.maxConns)
	db.SetConnMaxIdleTime(o.connMaxIdleTime)
	db.SetConnMaxLifetime(time.Hour)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	for _, setting := range []string{"fsync", "synchronous_commit"} {
		var v string
		if err := db.QueryRowContext(ctx, "SELECT current_setting($1)", setting).Scan(&v); err != nil {
			db.Close()
			return nil, fmt.Errorf("store: postgres: %s: %w", setting, err)
		}
		if strings.EqualFold(v, "off") {
			db.Close()
			return nil, fmt.Errorf("%w: %s is off", ErrNotDurable, setting)
		}
	}
	s := newSQLStore(pgDialect, db, db, o)
	if err := s.init(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func newSQLStore(d dialect, w, r *sql.DB, o options) *sqlStore {
	return &sqlStore{d: d, w: w, r: r, now: o.now, sealer: o.sealer, cleanupEvery: o.nonceCleanup, closeState: closeState{stop: make(chan struct{})}}
}

// init migrates and starts the nonce cleanup.
func (s *sqlStore) init(ctx context.Context) error {
	if err := migrate(ctx, s.w, s.d, s.now().UnixNano()); err != nil {
		return err
	}
	if err := s.prepareAll(ctx); err != nil {
		return err
	}
	if s.jobs != nil {
		s.wg.Add(1)
		go s.committer()
	}
	if s.cleanupEvery > 0 {
		s.wg.Add(1)
		go s.cleanNonces()
	}
	return nil
}

func (s *sqlStore) cleanNonces() {
	defer s.wg.Done()
	t := time.NewTicker(s.cleanupEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, _ = s.purgeNonces(ctx) // best effort: expired rows are also replaced on insert
			cancel()
		}
	}
}

// Close stops the background cleanup and closes the connections.
func (s *sqlStore) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stop)
		s.wg.Wait()
		s.closeStmts()
		err = s.w.Close()
		if s.r != s.w {
			err = errors.Join(err, s.r.Close())
		}
	})
	return err
}

// closer state lives on sqlStore; declared here beside Close.
type closeState struct {
	closeOnce sync.Once
	stop      chan struct{}
	wg        sync.WaitGroup
}
