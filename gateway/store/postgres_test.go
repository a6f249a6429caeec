package store_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, for creating test schemas

	"github.com/tongban/tongban/gateway/store"
	"github.com/tongban/tongban/gateway/store/storetest"
	"github.com/tongban/tongban/internal/pgtest"
)

// postgresOpener opens stores on internal/pgtest's server, each test in a
// fresh schema that is dropped afterwards; the suite is skipped when the
// server is unreachable, unless TONGBAN_REQUIRE_POSTGRES=1.
func postgresOpener(t *testing.T) storetest.Opener {
	dsn := pgtest.FreshSchema(t, pgtest.Admin(t))
	return func(t *testing.T) store.Store {
		t.Helper()
		s, err := store.OpenPostgres(context.Background(), dsn)
		if err != nil {
			t.Fatalf("OpenPostgres: %v", err)
		}
		return s
	}
}

func TestPostgresConformance(t *testing.T) {
	pgtest.Admin(t) // skip the whole suite at once when unreachable
	storetest.Run(t, postgresOpener)
}

// TestPostgresReplicasMigrateTogether opens several stores on one fresh
// schema at once: the advisory lock lets one migrate, the others find the
// schema ready.
func TestPostgresReplicasMigrateTogether(t *testing.T) {
	admin := pgtest.Admin(t)
	dsn := pgtest.FreshSchema(t, admin)
	const replicas = 4
	errs := make(chan error, replicas)
	stores := make(chan store.Store, replicas)
	for i := 0; i < replicas; i++ {
		go func() {
			s, err := store.OpenPostgres(context.Background(), dsn)
			errs <- err
			stores <- s
		}()
	}
	for i := 0; i < replicas; i++ {
		if err := <-errs; err != nil {
			t.Errorf("replica open: %v", err)
		}
		if s := <-stores; s != nil {
			defer s.Close()
		}
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	files, err := filepath.Glob(filepath.Join("migrations", "*.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("migration files: %v, %v", files, err)
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM schema_migrations").Scan(&n); err != nil || n != len(files) {
		t.Errorf("schema_migrations has %d rows (%v), want %d (each migration once)", n, err, len(files))
	}
}

// TestPostgresRefusesAsyncCommit: a session with synchronous_commit=off
// would answer 202 before the case is on disk.
func TestPostgresRefusesAsyncCommit(t *testing.T) {
	dsn := pgtest.WithParam(t, pgtest.FreshSchema(t, pgtest.Admin(t)), "synchronous_commit", "off")
	s, err := store.OpenPostgres(context.Background(), dsn)
	if err == nil {
		s.Close()
	}
	if !errors.Is(err, store.ErrNotDurable) {
		t.Fatalf("OpenPostgres with synchronous_commit=off: %v, want ErrNotDurable", err)
	}
}
