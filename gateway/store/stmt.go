package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// Statements are written once, with ? placeholders, as package variables
// ([newQuery]); a store readies all of them when it opens. On SQLite each
// is prepared there, once per database handle, and reused: parsing a
// statement anew on every call (what ExecContext with the text does with
// modernc.org/sqlite) was 7% of the CPU of a load run. database/sql
// prepares a statement again by itself on each new pooled connection, and
// a transaction takes it up on its connection with Tx.StmtContext without
// re-preparing. The write handle is prepared at open because later, inside
// a transaction, its one connection is busy.
//
// On PostgreSQL only the placeholders are rewritten at open: pgx already
// prepares and caches each statement per connection (its default
// QueryExecModeCacheStatement), and plans it keeps there survive a
// migration by another replica where a database/sql statement would not.

// Markers in a registered text for the clauses that differ by engine.
const (
	forUpdate  = " {{for update}}"  // dialect.forUpdate
	skipLocked = " {{skip locked}}" // dialect.skipLocked
)

// render is a registered text for d: its placeholders and locking clauses.
func (d dialect) render(text string) string {
	text = strings.ReplaceAll(text, forUpdate, d.forUpdate)
	text = strings.ReplaceAll(text, skipLocked, d.skipLocked)
	return d.q(text)
}

// query names a statement of the registry.
type query int

// queries is the registry: texts indexed by query.
var queries []string

// newQuery registers a statement; called from package variable
// initialisers only.
func newQuery(text string) query {
	queries = append(queries, text)
	return query(len(queries) - 1)
}

// stmts is a store's readied registry.
type stmts struct {
	text []string    // in the dialect's placeholders
	w, r []*sql.Stmt // prepared on the write and read handles; nil on PostgreSQL
}

// prepareAll readies the registry for s: the dialect's texts and, on SQLite,
// the statements prepared on both handles.
func (s *sqlStore) prepareAll(ctx context.Context) error {
	s.st.text = make([]string, len(queries))
	for i, q := range queries {
		s.st.text[i] = s.d.render(q)
	}
	if s.d.dollar {
		return nil
	}
	prep := func(db *sql.DB) ([]*sql.Stmt, error) {
		out := make([]*sql.Stmt, len(queries))
		for i, q := range s.st.text {
			st, err := db.PrepareContext(ctx, q)
			if err != nil {
				return nil, fmt.Errorf("store: prepare %q: %w", q, err)
			}
			out[i] = st
		}
		return out, nil
	}
	var err error
	if s.st.w, err = prep(s.w); err != nil {
		return err
	}
	if s.r == s.w {
		s.st.r = s.st.w
		return nil
	}
	s.st.r, err = prep(s.r)
	return err
}

// closeStmts closes the prepared statements (before their handles).
func (s *sqlStore) closeStmts() {
	for _, set := range [][]*sql.Stmt{s.st.w, s.st.r} {
		for _, st := range set {
			if st != nil {
				_ = st.Close() // closing twice (one handle for both) is harmless
			}
		}
	}
}

// txStmt is q on the connection of tx, a write transaction (of s.w), or
// nil when q runs by its text.
func (s *sqlStore) txStmt(ctx context.Context, tx *sql.Tx, q query) *sql.Stmt {
	return stmtIn(ctx, tx, s.st.w, q)
}

// stmtIn is q of set — the statements prepared on the handle tx belongs
// to (s.st.w or s.st.r) — bound to tx, or nil when q runs by its text.
func stmtIn(ctx context.Context, tx *sql.Tx, set []*sql.Stmt, q query) *sql.Stmt {
	if set == nil {
		return nil
	}
	return tx.StmtContext(ctx, set[q])
}

func (s *sqlStore) txExec(ctx context.Context, tx *sql.Tx, q query, args ...any) (sql.Result, error) {
	if st := s.txStmt(ctx, tx, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, s.st.text[q], args...)
}

func (s *sqlStore) txQueryRow(ctx context.Context, tx *sql.Tx, q query, args ...any) *sql.Row {
	return s.queryRowIn(ctx, tx, s.st.w, q, args...)
}

func (s *sqlStore) txQuery(ctx context.Context, tx *sql.Tx, q query, args ...any) (*sql.Rows, error) {
	return s.queryIn(ctx, tx, s.st.w, q, args...)
}

// readTxQueryRow and readTxQuery run q in tx, a read transaction of the
// reader pool s.r.
func (s *sqlStore) readTxQueryRow(ctx context.Context, tx *sql.Tx, q query, args ...any) *sql.Row {
	return s.queryRowIn(ctx, tx, s.st.r, q, args...)
}

func (s *sqlStore) readTxQuery(ctx context.Context, tx *sql.Tx, q query, args ...any) (*sql.Rows, error) {
	return s.queryIn(ctx, tx, s.st.r, q, args...)
}

func (s *sqlStore) queryRowIn(ctx context.Context, tx *sql.Tx, set []*sql.Stmt, q query, args ...any) *sql.Row {
	if st := stmtIn(ctx, tx, set, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return tx.QueryRowContext(ctx, s.st.text[q], args...)
}

func (s *sqlStore) queryIn(ctx context.Context, tx *sql.Tx, set []*sql.Stmt, q query, args ...any) (*sql.Rows, error) {
	if st := stmtIn(ctx, tx, set, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return tx.QueryContext(ctx, s.st.text[q], args...)
}

// dbStmt is q prepared on db (s.w or s.r), or nil when q runs by its text.
func (s *sqlStore) dbStmt(db *sql.DB, q query) *sql.Stmt {
	switch {
	case s.st.w == nil:
		return nil
	case db == s.w:
		return s.st.w[q]
	}
	return s.st.r[q]
}

func (s *sqlStore) dbExec(ctx context.Context, db *sql.DB, q query, args ...any) (sql.Result, error) {
	if st := s.dbStmt(db, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return db.ExecContext(ctx, s.st.text[q], args...)
}

func (s *sqlStore) dbQueryRow(ctx context.Context, db *sql.DB, q query, args ...any) *sql.Row {
	if st := s.dbStmt(db, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return db.QueryRowContext(ctx, s.st.text[q], args...)
}

func (s *sqlStore) dbQuery(ctx context.Context, db *sql.DB, q query, args ...any) (*sql.Rows, error) {
	if st := s.dbStmt(db, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return db.QueryContext(ctx, s.st.text[q], args...)
}
