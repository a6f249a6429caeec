package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tongban/tongban/gateway/store"
)

// DefaultLeaderInterval is how often a follower tries to take the log's
// leadership and the leader checks that it still holds it.
const DefaultLeaderInterval = time.Second

// ErrLeaderConfig: the leader election cannot be set up (an unparsable DSN).
var ErrLeaderConfig = errors.New("gateway: leader election misconfigured")

// LeaderOptions configure a PostgreSQL [Leader].
type LeaderOptions struct {
	// DSN is the PostgreSQL database the replicas share (the store's DSN:
	// the same database and search_path).
	DSN string
	// Name is what is led; replicas contend for one lock per database,
	// schema and name. The gateway uses the log's origin.
	Name string
	// Interval is how often a follower tries to take the lock and the
	// leader pings the session that holds it (default
	// [DefaultLeaderInterval]).
	Interval time.Duration
	// CheckTimeout bounds one check of the lock's session, the one made
	// each time [Leader.IsLeader] is asked (default Interval/2).
	CheckTimeout time.Duration
	// OnChange, if set, is called (from the goroutine that noticed) each
	// time this replica becomes the leader or stops being it.
	OnChange func(leading bool)
	Logger   *slog.Logger
}

// Leader decides which replica integrates the exchange log into checkpoints
// and signs them. With SQLite the one process is always the leader
// ([AlwaysLeader]). With PostgreSQL ([NewPostgresLeader]) the leader is the
// replica whose session holds a session-level advisory lock
// (pg_try_advisory_lock): one dedicated connection, not taken from any pool,
// is kept open for as long as the lock is held. When that replica dies its
// session ends, PostgreSQL releases the lock, and the next follower to try
// (within [LeaderOptions.Interval]) takes over.
//
// A replica that loses its session (connection broken, backend terminated)
// stops signing at once: [Leader.IsLeader], asked by the log before each
// signature, pings the lock's own session and answers false on any error.
// Between that check and the checkpoint's insert a replica that has just
// lost the lock could still store one checkpoint; that cannot make the log
// inconsistent, since every replica signs the same gapless sequence of
// leaves (the store assigns indexes) and the store keeps the first
// checkpoint of each size.
//
// [advisory lock]: https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS
type Leader struct {
	always bool
	cfg    *pgx.ConnConfig
	o      LeaderOptions

	leading atomic.Bool

	mu   sync.Mutex // guards conn and key (pgx.Conn is not safe for concurrent use)
	conn *pgx.Conn
	key  int64
}

// AlwaysLeader returns the leader of a single process (SQLite): IsLeader is
// always true and Run only waits for its context.
func AlwaysLeader() *Leader {
	l := &Leader{always: true}
	l.leading.Store(true)
	return l
}

// NewPostgresLeader returns a follower that contends for the leadership once
// Run is called. It does not connect yet.
func NewPostgresLeader(o LeaderOptions) (*Leader, error) {
	cfg, err := pgx.ParseConfig(o.DSN)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLeaderConfig, err)
	}
	if o.Interval <= 0 {
		o.Interval = DefaultLeaderInterval
	}
	if o.CheckTimeout <= 0 {
		o.CheckTimeout = o.Interval / 2
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Leader{cfg: cfg, o: o}, nil
}

// Leading reports the last known state without asking the database (for
// metrics and logs).
func (l *Leader) Leading() bool { return l.leading.Load() }

// IsLeader reports whether this replica may sign now. While it believes it
// leads, it first checks (within CheckTimeout) that the session holding the
// lock is alive; on any error it gives the leadership up and answers false.
// It is the exchange log's leader hook.
func (l *Leader) IsLeader() bool {
	if l.always {
		return true
	}
	if !l.leading.Load() {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil || !l.leading.Load() {
		return false
	}
	if err := l.ping(context.Background()); err != nil {
		l.drop("lock session check failed", err)
		return false
	}
	return true
}

// Run contends for the leadership until ctx ends, then releases it (by
// closing the session). A follower tries the lock every Interval; the
// leader pings its session every Interval. Connection errors are logged and
// retried; Run returns only ctx's error.
func (l *Leader) Run(ctx context.Context) error {
	if l.always {
		<-ctx.Done()
		return ctx.Err()
	}
	defer l.release()
	tick := time.NewTicker(l.o.Interval)
	defer tick.Stop()
	for {
		l.step(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// step connects if needed, then checks the held lock or tries to take it.
func (l *Leader) step(ctx context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		if err := l.connect(ctx); err != nil {
			if ctx.Err() == nil {
				l.o.Logger.Warn("log leader election: cannot connect", "err", err)
			}
			return
		}
	}
	if l.leading.Load() {
		if err := l.ping(ctx); err != nil {
			l.drop("lock session lost", err)
		}
		return
	}
	cctx, cancel := context.WithTimeout(ctx, l.o.Interval)
	defer cancel()
	var got bool
	if err := l.conn.QueryRow(cctx, "SELECT pg_try_advisory_lock($1)", l.key).Scan(&got); err != nil {
		l.drop("trying the lock failed", err)
		return
	}
	if got {
		l.leading.Store(true)
		l.o.Logger.Info("log leader: this replica now integrates and signs checkpoints", "lock", l.key)
		if l.o.OnChange != nil {
			l.o.OnChange(true)
		}
	}
}

// connect opens the dedicated session and derives the lock key from its
// database and schema, so that logs in other databases or schemas of the
// same server (tests, staging) do not contend with this one.
func (l *Leader) connect(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 5*l.o.Interval)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, l.cfg)
	if err != nil {
		return err
	}
	var db, schema string
	if err := conn.QueryRow(cctx, "SELECT current_database(), coalesce(current_schema(), '')").Scan(&db, &schema); err != nil {
		_ = conn.Close(context.Background())
		return err
	}
	l.conn, l.key = conn, LeaderLockKey(db, schema, l.o.Name)
	return nil
}

// LeaderLockKey is the advisory lock key the replicas of one log contend
// for: the first 8 bytes of SHA-256 over the database, the schema and the
// name (the log's origin).
func LeaderLockKey(database, schema, name string) int64 {
	h := sha256.Sum256([]byte("tongban log leader\n" + database + "\n" + schema + "\n" + name))
	return int64(binary.BigEndian.Uint64(h[:8]))
}

func (l *Leader) ping(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, l.o.CheckTimeout)
	defer cancel()
	return l.conn.Ping(cctx)
}

// drop closes the session (l.mu held); a lock it held is released by
// PostgreSQL with it. err is nil on a shutdown.
func (l *Leader) drop(why string, err error) {
	was := l.leading.Swap(false)
	if l.conn != nil {
		cctx, cancel := context.WithTimeout(context.Background(), l.o.CheckTimeout)
		_ = l.conn.Close(cctx)
		cancel()
		l.conn = nil
	}
	if !was {
		return
	}
	if err != nil {
		l.o.Logger.Warn("log leader: leadership lost, no longer signing", "reason", why, "err", err)
	} else {
		l.o.Logger.Info("log leader: leadership released", "reason", why)
	}
	if l.o.OnChange != nil {
		l.o.OnChange(false)
	}
}

// release gives the leadership up on shutdown.
func (l *Leader) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.drop("shutting down", nil)
}

// newLeader is the leader election cfg's store calls for.
func newLeader(cfg *Config, logger *slog.Logger) (*Leader, error) {
	switch cfg.Store.Driver {
	case store.DriverPostgres, "postgresql", "pgx":
		return NewPostgresLeader(LeaderOptions{DSN: cfg.Store.DSN, Name: cfg.Log.Origin, Logger: logger})
	}
	return AlwaysLeader(), nil
}

// gauge exposes the leadership at /metrics as tongban_log_leader (1 on the
// replica that signs checkpoints, 0 on the others).
func (l *Leader) gauge() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "tongban", Name: "log_leader",
		Help: "1 while this replica integrates the exchange log and signs checkpoints, else 0.",
	}, func() float64 {
		if l.Leading() {
			return 1
		}
		return 0
	})
}
