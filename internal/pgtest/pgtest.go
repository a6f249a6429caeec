// Package pgtest finds the PostgreSQL server tests run against and gives
// each test a schema of its own. The server is TONGBAN_TEST_POSTGRES, or
// the CI default; when it is unreachable a test is skipped, unless
// TONGBAN_REQUIRE_POSTGRES=1, which makes it fail instead.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver
)

// DefaultDSN is the server of the CI, used when TONGBAN_TEST_POSTGRES is
// not set.
const DefaultDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// DSN is TONGBAN_TEST_POSTGRES, or DefaultDSN.
func DSN() string {
	if dsn := os.Getenv("TONGBAN_TEST_POSTGRES"); dsn != "" {
		return dsn
	}
	return DefaultDSN
}

// Admin connects to DSN() for creating and dropping schemas and killing
// connections, closed when tb ends; when the server does not answer within
// five seconds it skips tb (fails it with TONGBAN_REQUIRE_POSTGRES=1).
func Admin(tb testing.TB) *sql.DB {
	tb.Helper()
	db, err := sql.Open("pgx", DSN())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = db.PingContext(ctx)
		cancel()
	}
	if err != nil {
		if db != nil {
			db.Close()
		}
		if os.Getenv("TONGBAN_REQUIRE_POSTGRES") == "1" {
			tb.Fatalf("PostgreSQL required (TONGBAN_REQUIRE_POSTGRES=1) but unreachable: %v", err)
		}
		tb.Skipf("PostgreSQL suite NOT run: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// Require returns DSN() when the server answers, or skips tb as Admin does.
func Require(tb testing.TB) string {
	tb.Helper()
	Admin(tb)
	return DSN()
}

// FreshSchema creates a uniquely named schema and returns a DSN whose
// search_path is it; the schema is dropped when tb ends, and a failed drop
// fails tb.
func FreshSchema(tb testing.TB, admin *sql.DB) string {
	tb.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "tongban_test_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		tb.Fatalf("create schema: %v", err)
	}
	tb.Cleanup(func() {
		if _, err := admin.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return WithParam(tb, DSN(), "search_path", schema)
}

// WithParam returns dsn (a URL or a key=value string) with a connection
// parameter set.
func WithParam(tb testing.TB, dsn, key, value string) string {
	tb.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			tb.Fatalf("TONGBAN_TEST_POSTGRES: %v", err)
		}
		q := u.Query()
		q.Set(key, value)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " " + key + "=" + value
}
