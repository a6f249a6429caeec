package store

import (
	"strings"
	"testing"
)

// Every registered statement renders for both engines with no marker or
// placeholder of the other left over; the SQLite ones are prepared at open
// (every OpenSQLite in the suite), the PostgreSQL ones run in its suite.
func TestRegistryRenders(t *testing.T) {
	if len(queries) == 0 {
		t.Fatal("no statements registered")
	}
	for i, text := range queries {
		for _, d := range []dialect{sqliteDialect, pgDialect} {
			got := d.render(text)
			if strings.Contains(got, "{{") {
				t.Errorf("%s, statement %d: marker left in %q", d.name, i, got)
			}
			if d.dollar && strings.Contains(got, "?") {
				t.Errorf("%s, statement %d: ? left in %q", d.name, i, got)
			}
		}
	}
	if got := pgDialect.render("SELECT a FROM t WHERE id = ?" + forUpdate); got != "SELECT a FROM t WHERE id = $1 FOR UPDATE" {
		t.Errorf("postgres render: %q", got)
	}
	if got := sqliteDialect.render("SELECT a FROM t WHERE id = ?" + forUpdate); got != "SELECT a FROM t WHERE id = ?" {
		t.Errorf("sqlite render: %q", got)
	}
}
