package store_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/tongban/tongban/gateway/store"
	"github.com/tongban/tongban/internal/pgtest"
)

func TestOpenByDriver(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, tc := range []struct {
		driver, dsn string
		ok          bool
	}{
		{store.DriverSQLite, filepath.Join(dir, "a.db"), true},
		{"sqlite3", filepath.Join(dir, "b.db"), true},
		{store.DriverSQLite, ":memory:", false}, // not durable
		{store.DriverSQLite, filepath.Join(dir, "c.db") + "?_pragma=synchronous(OFF)", false},
		{store.DriverSQLite, "", false},
		{"mysql", "x", false},
	} {
		s, err := store.Open(ctx, tc.driver, tc.dsn)
		if (err == nil) != tc.ok {
			t.Errorf("Open(%q, %q) error = %v, want ok=%v", tc.driver, tc.dsn, err, tc.ok)
		}
		if err == nil {
			if err := s.Ping(ctx); err != nil {
				t.Errorf("Ping: %v", err)
			}
			s.Close()
		}
	}
}

func TestOpenPostgresByDriver(t *testing.T) {
	dsn := pgtest.FreshSchema(t, pgtest.Admin(t))
	s, err := store.Open(context.Background(), "pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}
