package pgtest

import (
	"database/sql"
	"testing"
)

func TestWithParam(t *testing.T) {
	for _, tc := range []struct{ dsn, want string }{
		{"postgres://u@h:5432/db?sslmode=disable", "postgres://u@h:5432/db?search_path=s1&sslmode=disable"},
		{"postgresql://u@h/db", "postgresql://u@h/db?search_path=s1"},
		{"host=h dbname=db", "host=h dbname=db search_path=s1"},
	} {
		if got := WithParam(t, tc.dsn, "search_path", "s1"); got != tc.want {
			t.Errorf("WithParam(%q) = %q, want %q", tc.dsn, got, tc.want)
		}
	}
}

// TestFreshSchema: the DSN's search_path is a new, empty schema, and the
// schema is gone once the test that made it ends.
func TestFreshSchema(t *testing.T) {
	admin := Admin(t)
	var schema string
	t.Run("make", func(t *testing.T) {
		db, err := sql.Open("pgx", FreshSchema(t, admin))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.QueryRow("SELECT current_schema()").Scan(&schema); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec("CREATE TABLE t (x int)"); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := admin.QueryRow("SELECT count(*) FROM information_schema.tables WHERE table_schema = $1", schema).Scan(&n); err != nil || n != 1 {
			t.Fatalf("tables in %s: %d (%v), want the one made", schema, n, err)
		}
	})
	if schema == "" {
		t.Fatal("no schema seen")
	}
	var n int
	if err := admin.QueryRow("SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1", schema).Scan(&n); err != nil || n != 0 {
		t.Errorf("schema %s still there (%d, %v)", schema, n, err)
	}
}
