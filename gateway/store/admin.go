package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

var (
	qRememberNonce = newQuery(`INSERT INTO nonces (keyid, nonce, until_ns) VALUES (?, ?, ?)
			ON CONFLICT (keyid, nonce) DO UPDATE SET until_ns = excluded.until_ns WHERE nonces.until_ns <= ?
			RETURNING 1`)
	qPurgeNonces = newQuery("DELETE FROM nonces WHERE until_ns <= ?")
	qNonceSeen   = newQuery("SELECT COUNT(*) FROM nonces WHERE keyid = ? AND nonce = ? AND until_ns > ?")
	qLiveNonces  = newQuery("SELECT keyid, nonce, until_ns FROM nonces WHERE until_ns > ?")
	qSaveDraft   = newQuery(`INSERT INTO drafts (id, revision, bundle, uploaded_by, uploaded_ns, validated, report)
		VALUES (?, ?, ?, ?, ?, ?, ?)`)
	qDraft     = newQuery("SELECT id, revision, bundle, uploaded_by, uploaded_ns, validated, report FROM drafts WHERE id = ?")
	qMarkDraft = newQuery("UPDATE drafts SET validated = ?, report = ? WHERE id = ?")
	qActivate  = newQuery(`INSERT INTO activations (log_index, revision, previous, bundle, by_key, at_ns)
			VALUES (?, ?, ?, ?, ?, ?)`)
	qActivations = newQuery("SELECT log_index, revision, previous, bundle, by_key, at_ns FROM activations ORDER BY log_index DESC")
)

// RememberNonce implements Store. One statement inserts the nonce, or
// replaces it when the stored one has expired; nothing happens (and fresh is
// false) when it is still live. The primary key makes this atomic across
// replicas.
func (s *sqlStore) RememberNonce(ctx context.Context, keyID, nonce string, until time.Time) (bool, error) {
	var fresh bool
	err := s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		fresh, err = s.rememberNonce(ctx, tx, keyID, nonce, until)
		return err
	})
	return fresh, err
}

// rememberNonce is RememberNonce in the caller's transaction.
func (s *sqlStore) rememberNonce(ctx context.Context, tx *sql.Tx, keyID, nonce string, until time.Time) (bool, error) {
	rows, err := s.txQuery(ctx, tx, qRememberNonce, keyID, nonce, ns(until), ns(s.now()))
	if err != nil {
		return false, fmt.Errorf("store: nonce: %w", err)
	}
	defer rows.Close()
	fresh := rows.Next()
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("store: nonce: %w", err)
	}
	return fresh, rows.Close()
}

// NonceSeen implements Store, on the readers.
func (s *sqlStore) NonceSeen(ctx context.Context, keyID, nonce string) (bool, error) {
	var n int
	if err := s.dbQueryRow(ctx, s.r, qNonceSeen, keyID, nonce, ns(s.now())).Scan(&n); err != nil {
		return false, fmt.Errorf("store: nonce: %w", err)
	}
	return n > 0, nil
}

// LiveNonces implements Store, on the readers.
func (s *sqlStore) LiveNonces(ctx context.Context, fn func(keyID, nonce string, until time.Time)) error {
	rows, err := s.dbQuery(ctx, s.r, qLiveNonces, ns(s.now()))
	if err != nil {
		return fmt.Errorf("store: nonces: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var keyID, nonce string
		var until int64
		if err := rows.Scan(&keyID, &nonce, &until); err != nil {
			return fmt.Errorf("store: nonces: %w", err)
		}
		fn(keyID, nonce, fromNs(until))
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: nonces: %w", err)
	}
	return nil
}

// purgeNonces deletes expired nonces.
func (s *sqlStore) purgeNonces(ctx context.Context) (int64, error) {
	res, err := s.dbExec(ctx, s.w, qPurgeNonces, ns(s.now()))
	if err != nil {
		return 0, fmt.Errorf("store: purge nonces: %w", err)
	}
	return res.RowsAffected()
}

// SaveDraft implements Store. An empty ID is filled in with a random one;
// an ID already used is ErrDuplicate.
func (s *sqlStore) SaveDraft(ctx context.Context, d *Draft) error {
	if d.ID == "" {
		d.ID = newID()
	}
	if d.UploadedAt.IsZero() {
		d.UploadedAt = s.now()
	}
	_, err := s.dbExec(ctx, s.w, qSaveDraft, d.ID, d.Revision, d.Bundle, d.UploadedBy, ns(d.UploadedAt), boolInt(d.Validated), []byte(d.Report))
	if isUniqueViolation(err) {
		return fmt.Errorf("%w: draft %s", ErrDuplicate, d.ID)
	}
	if err != nil {
		return fmt.Errorf("store: save draft: %w", err)
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// GetDraft implements Store.
func (s *sqlStore) GetDraft(ctx context.Context, id string) (*Draft, error) {
	var (
		d             Draft
		uploaded, val int64
		report        []byte
	)
	err := s.dbQueryRow(ctx, s.r, qDraft, id).
		Scan(&d.ID, &d.Revision, &d.Bundle, &d.UploadedBy, &uploaded, &val, &report)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: draft %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("store: read draft: %w", err)
	}
	d.UploadedAt, d.Validated, d.Report = fromNs(uploaded), val != 0, json.RawMessage(report)
	return &d, nil
}

// MarkDraftValidated implements Store.
func (s *sqlStore) MarkDraftValidated(ctx context.Context, id string, ok bool, report json.RawMessage) error {
	res, err := s.dbExec(ctx, s.w, qMarkDraft, boolInt(ok), []byte(report), id)
	if err != nil {
		return fmt.Errorf("store: mark draft: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store: mark draft: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("%w: draft %s", ErrNotFound, id)
	}
	return nil
}

// Activate implements Store; a.LogIndex is set to the entry's index and a
// zero a.At to the store's clock.
func (s *sqlStore) Activate(ctx context.Context, a *Activation, entry LogAppend) error {
	n := *a
	if n.At.IsZero() {
		n.At = s.now()
	}
	err := s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		pos, err := s.appendEntry(ctx, tx, entry)
		if err != nil {
			return err
		}
		n.LogIndex = pos.Index
		if _, err := s.txExec(ctx, tx, qActivate, int64(n.LogIndex), n.Revision, n.Previous, n.Bundle, n.By, ns(n.At)); err != nil {
			return fmt.Errorf("store: insert activation: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	*a = n
	return nil
}

// Activations implements Store.
func (s *sqlStore) Activations(ctx context.Context) ([]Activation, error) {
	rows, err := s.dbQuery(ctx, s.r, qActivations)
	if err != nil {
		return nil, fmt.Errorf("store: activations: %w", err)
	}
	defer rows.Close()
	var out []Activation
	for rows.Next() {
		var a Activation
		var idx, at int64
		if err := rows.Scan(&idx, &a.Revision, &a.Previous, &a.Bundle, &a.By, &at); err != nil {
			return nil, fmt.Errorf("store: activations: %w", err)
		}
		a.LogIndex, a.At = uint64(idx), fromNs(at)
		out = append(out, a)
	}
	return out, rows.Err()
}
