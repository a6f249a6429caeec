package store

import (
	"errors"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// dialect holds the little that differs between the two engines; every query
// is written once with ? placeholders.
type dialect struct {
	name string
	// dollar: placeholders are $1, $2, … (PostgreSQL).
	dollar bool
	// forUpdate is appended to a SELECT that reads a row the transaction will
	// change: PostgreSQL locks it; SQLite's single writer needs nothing.
	forUpdate string
	// skipLocked is the claim query's locking clause.
	skipLocked string
	// blob is the byte-string column type.
	blob string
}

var (
	sqliteDialect = dialect{name: "sqlite", blob: "BLOB"}
	pgDialect     = dialect{name: "postgres", dollar: true, forUpdate: " FOR UPDATE", skipLocked: " FOR UPDATE SKIP LOCKED", blob: "BYTEA"}
)

// q rewrites a query's ? placeholders for the engine. Queries here never hold
// a literal question mark.
func (d dialect) q(query string) string {
	if !d.dollar {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

// ddl adapts a migration written for SQLite types.
func (d dialect) ddl(script string) string {
	if d.blob == "BLOB" {
		return script
	}
	return strings.ReplaceAll(script, " BLOB", " "+d.blob)
}

// isUniqueViolation reports whether err is a unique or primary-key
// constraint failure on either engine.
func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23505"
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		c := se.Code()
		return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}
