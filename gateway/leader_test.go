package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tongban/tongban/internal/pgtest"
)

// runningLeader starts a leader's Run; stop ends it and waits.
type runningLeader struct {
	*Leader
	changes atomic.Int32
	stop    func()
}

func startLeader(t *testing.T, dsn, name string) *runningLeader {
	t.Helper()
	return startLeaderEvery(t, dsn, name, 50*time.Millisecond)
}

func startLeaderEvery(t *testing.T, dsn, name string, interval time.Duration) *runningLeader {
	t.Helper()
	r := &runningLeader{}
	l, err := NewPostgresLeader(LeaderOptions{
		DSN: dsn, Name: name, Interval: interval, CheckTimeout: time.Second,
		OnChange: func(bool) { r.changes.Add(1) },
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	r.Leader = l
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	var once atomic.Bool
	r.stop = func() {
		if once.Swap(true) {
			return
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v", err)
		}
	}
	t.Cleanup(r.stop)
	return r
}

func leaderWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// exactlyOneLeads checks, for a while, that exactly one of ls leads.
func exactlyOneLeads(t *testing.T, ls ...*runningLeader) *runningLeader {
	t.Helper()
	var leader *runningLeader
	leaderWait(t, "one replica leads", func() bool {
		for _, l := range ls {
			if l.Leading() {
				leader = l
				return true
			}
		}
		return false
	})
	for range 10 {
		n := 0
		for _, l := range ls {
			if l.IsLeader() {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d replicas lead", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return leader
}

func TestLeaderFailover(t *testing.T) {
	admin := pgtest.Admin(t)
	dsn := pgtest.FreshSchema(t, admin)
	ctx := context.Background()
	ls := []*runningLeader{startLeader(t, dsn, "tongban/guangfo"), startLeader(t, dsn, "tongban/guangfo"), startLeader(t, dsn, "tongban/guangfo")}
	first := exactlyOneLeads(t, ls...)

	// The leader's session is killed from outside (a crash, a network cut
	// the server saw first): once the backend is gone the old leader says
	// so at the very next check, without waiting for its ticker.
	first.mu.Lock()
	pid := first.conn.PgConn().PID()
	first.mu.Unlock()
	if _, err := admin.ExecContext(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	leaderWait(t, "the terminated backend is gone", func() bool {
		var n int
		_ = admin.QueryRowContext(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid).Scan(&n)
		return n == 0
	})
	if first.IsLeader() {
		t.Fatal("a replica whose lock session was terminated still says it leads")
	}
	second := exactlyOneLeads(t, ls...)
	if second == first {
		// It may have reconnected and won again before the others tried;
		// then it must hold a new session.
		second.mu.Lock()
		newPID := second.conn.PgConn().PID()
		second.mu.Unlock()
		if newPID == pid {
			t.Fatal("leader kept the terminated session")
		}
	}
	if first.changes.Load() < 2 {
		t.Errorf("first leader reported %d changes, want gained and lost", first.changes.Load())
	}

	// A leader that shuts down releases the lock for the others.
	second.stop()
	if second.Leading() || second.IsLeader() {
		t.Fatal("a stopped leader still leads")
	}
	var rest []*runningLeader
	for _, l := range ls {
		if l != second {
			rest = append(rest, l)
		}
	}
	exactlyOneLeads(t, rest...)
}

// TestLeaderStopsSigningAtOnce: with the periodic check an hour away, only
// the check IsLeader makes itself can notice the lost session.
func TestLeaderStopsSigningAtOnce(t *testing.T) {
	admin := pgtest.Admin(t)
	dsn := pgtest.FreshSchema(t, admin)
	ctx := context.Background()
	l := startLeaderEvery(t, dsn, "tongban/guangfo", time.Hour)
	leaderWait(t, "the only replica leads", l.Leading)
	if !l.IsLeader() {
		t.Fatal("the leader with a live session does not lead")
	}
	l.mu.Lock()
	pid := l.conn.PgConn().PID()
	l.mu.Unlock()
	var killed bool
	if err := admin.QueryRowContext(ctx, "SELECT pg_terminate_backend($1, 5000)", pid).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminate: %v %v", killed, err)
	}
	if l.IsLeader() {
		t.Fatal("a replica whose lock session ended still says it may sign")
	}
	if l.Leading() || l.changes.Load() != 2 {
		t.Errorf("leading %v after %d changes, want false after 2", l.Leading(), l.changes.Load())
	}
}

func TestLeaderLocksArePerLogAndSchema(t *testing.T) {
	admin := pgtest.Admin(t)
	dsnA := pgtest.FreshSchema(t, admin)
	dsnB := pgtest.FreshSchema(t, admin)
	a := startLeader(t, dsnA, "tongban/guangfo")
	b := startLeader(t, dsnB, "tongban/guangfo")
	c := startLeader(t, dsnA, "tongban/other")
	for _, l := range []*runningLeader{a, b, c} {
		leaderWait(t, "each log has its own leader", l.Leading)
	}
	if LeaderLockKey("test", "s1", "o") == LeaderLockKey("test", "s2", "o") ||
		LeaderLockKey("test", "s1", "o") == LeaderLockKey("test", "s1", "p") {
		t.Error("lock keys collide")
	}
}

func TestLeaderWithoutDatabase(t *testing.T) {
	// A port nothing listens on: the replica never leads, and Run keeps
	// trying until its context ends.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	l := startLeader(t, "postgres://postgres@"+addr+"/test?sslmode=disable&connect_timeout=1", "x")
	time.Sleep(200 * time.Millisecond)
	if l.Leading() || l.IsLeader() {
		t.Fatal("a replica without a database leads")
	}
	l.stop()

	if _, err := NewPostgresLeader(LeaderOptions{DSN: "postgres://%zz"}); !errors.Is(err, ErrLeaderConfig) {
		t.Errorf("bad DSN: %v", err)
	}
}

func TestAlwaysLeader(t *testing.T) {
	l := AlwaysLeader()
	if !l.IsLeader() || !l.Leading() {
		t.Fatal("the single process does not lead")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v", err)
	}
}
