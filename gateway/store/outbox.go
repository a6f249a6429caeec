package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"
)

// deliveryCols are read from deliveries (unaliased: also the RETURNING of
// the claims). Rows queued since migration 4 do not copy the translated
// record (payload is NULL): the second column reads it from the exchange's
// bodies (a case; the third reads the request, which a case's record is
// stored against: delta.go) or from the status row (a status update),
// which are never updated. Rows queued before keep their own copy.
const deliveryCols = `id, exchange_id, seq, to_division, kind, payload,
	CASE WHEN deliveries.payload IS NOT NULL THEN NULL
		WHEN deliveries.seq = 0 THEN (SELECT b.translated FROM exchange_bodies b WHERE b.exchange_id = deliveries.exchange_id)
		ELSE (SELECT s.translated FROM statuses s WHERE s.exchange_id = deliveries.exchange_id AND s.seq = deliveries.seq) END,
	CASE WHEN deliveries.payload IS NULL AND deliveries.seq = 0
		THEN (SELECT b.request FROM exchange_bodies b WHERE b.exchange_id = deliveries.exchange_id) END,
	event_index, state, attempts, next_attempt_ns, last_error, partner_case_no, reason, updated_ns, payload_sm3`

// storedDelivery is a delivery row as read: its payload is opened (and a
// case's record rebuilt against its request) by payload, which the claims
// call after their transaction, off the writer connection.
type storedDelivery struct {
	Delivery
	source, request []byte
}

func scanStoredDelivery(row interface{ Scan(...any) error }) (storedDelivery, error) {
	var (
		r                              storedDelivery
		seq, event, attempts, next, up int64
		sum                            []byte
	)
	err := row.Scan(&r.ID, &r.ExchangeID, &seq, &r.To, &r.Kind, &r.Payload, &r.source, &r.request, &event, &r.State, &attempts, &next,
		&r.LastError, &r.PartnerCaseNo, &r.Reason, &up, &sum)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrNotFound
	}
	if err != nil {
		return r, fmt.Errorf("store: read delivery: %w", err)
	}
	r.Seq, r.EventIndex, r.Attempts = int(seq), uint64(event), int(attempts)
	r.NextAttempt, r.UpdatedAt = fromNs(next), fromNs(up)
	if len(sum) == len(r.PayloadSM3) {
		copy(r.PayloadSM3[:], sum)
	}
	return r, nil
}

// payload returns the delivery with its payload opened.
func (s *sqlStore) payload(r storedDelivery) (Delivery, error) {
	d := r.Delivery
	var err error
	switch {
	case d.Payload != nil:
		d.Payload, err = s.open(d.Payload, placeDeliveryPayload, d.ID)
	case d.Seq == 0:
		d.Payload, err = s.caseRecord(r.source, r.request, d.ExchangeID)
	default:
		d.Payload, err = s.open(r.source, placeStatusTranslated, statusPlace(d.ExchangeID, d.Seq))
	}
	return d, err
}

func (s *sqlStore) scanDelivery(row interface{ Scan(...any) error }) (*Delivery, error) {
	r, err := scanStoredDelivery(row)
	if err != nil {
		return nil, err
	}
	d, err := s.payload(r)
	if err != nil {
		return nil, err
	}
	return &d, nil
}

func scanStoredDeliveries(rows *sql.Rows, err error) ([]storedDelivery, error) {
	if err != nil {
		return nil, fmt.Errorf("store: deliveries: %w", err)
	}
	defer rows.Close()
	var out []storedDelivery
	for rows.Next() {
		r, err := scanStoredDelivery(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: deliveries: %w", err)
	}
	return out, nil
}

// payloads opens the payloads of stored rows, in order.
func (s *sqlStore) payloads(rows []storedDelivery) ([]Delivery, error) {
	var out []Delivery
	for _, r := range rows {
		d, err := s.payload(r)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

func (s *sqlStore) scanDeliveries(rows *sql.Rows, err error) ([]Delivery, error) {
	stored, err := scanStoredDeliveries(rows, err)
	if err != nil {
		return nil, err
	}
	return s.payloads(stored)
}

// dueCondition selects claimable rows of deliveries d: queued rows (due at
// once), retrying rows whose next attempt has come, and delivering rows whose
// lease has expired (their worker died); and of those, a status only once
// every earlier delivery of its exchange is delivered or refused, so an
// exchange's deliveries go out in acceptance order. The first term is implied
// by the second; it is there so that SQLite's planner sees the condition of
// the partial indexes and walks deliveries_active_to in log order, stopping
// at the limit, instead of reading every active row of each state and
// sorting them (what it did under a backlog).
const dueCondition = `d.state IN ('queued', 'retrying', 'delivering') AND (d.state = 'queued'
		OR (d.state = 'retrying' AND d.next_attempt_ns <= ?)
		OR (d.state = 'delivering' AND d.lease_until_ns <= ?))
	AND NOT EXISTS (SELECT 1 FROM deliveries p
		WHERE p.exchange_id = d.exchange_id AND p.seq < d.seq AND p.state NOT IN ('delivered', 'refused'))`

var (
	qClaim = newQuery(`WITH c AS (SELECT d.id FROM deliveries d WHERE ` + dueCondition + `
		ORDER BY d.event_index LIMIT ?` + skipLocked + `)
		UPDATE deliveries SET state = 'delivering', lease_until_ns = ?, updated_ns = ?
		WHERE id IN (SELECT id FROM c)
		RETURNING ` + deliveryCols)
	qClaimFor = newQuery(`WITH c AS (SELECT d.id FROM deliveries d WHERE d.to_division = ? AND ` + dueCondition + `
		ORDER BY d.event_index LIMIT ?` + skipLocked + `)
		UPDATE deliveries SET state = 'delivering', lease_until_ns = ?, updated_ns = ?
		WHERE id IN (SELECT id FROM c)
		RETURNING ` + deliveryCols)
	qLockDelivery   = newQuery("SELECT exchange_id, seq, state FROM deliveries WHERE id = ?" + forUpdate)
	qFinishDelivery = newQuery(`UPDATE deliveries SET state = ?, attempts = ?, next_attempt_ns = ?, lease_until_ns = 0,
			last_error = ?, partner_case_no = ?, reason = ?, updated_ns = ?, delivered_ns = ? WHERE id = ?`)
	qSetTargetCaseNo = newQuery("UPDATE exchanges SET target_case_no = ? WHERE id = ?")
	qDeliveryByID    = newQuery("SELECT " + deliveryCols + " FROM deliveries WHERE id = ?")
	qDeliveries      = newQuery("SELECT " + deliveryCols + " FROM deliveries ORDER BY event_index LIMIT ?")
	qDeliveriesIn    = newQuery("SELECT " + deliveryCols + " FROM deliveries WHERE state = ? ORDER BY event_index LIMIT ?")
	qDeliveriesOf    = newQuery("SELECT " + deliveryCols + " FROM deliveries WHERE exchange_id = ? ORDER BY seq")
	qRedrive         = newQuery(`UPDATE deliveries SET state = 'queued', attempts = 0, next_attempt_ns = ?,
			lease_until_ns = 0, last_error = '', updated_ns = ? WHERE id = ?`)
)

// ClaimDeliveries implements Store. Queued rows are due as soon as they are
// committed, whatever now says; the order is that of their log entries.
// On PostgreSQL the candidate rows are locked FOR UPDATE SKIP LOCKED, so
// concurrent claimers (any replica) take disjoint rows; a row another
// claimer committed meanwhile is re-checked against the condition and
// dropped. On SQLite the claim is one IMMEDIATE transaction.
func (s *sqlStore) ClaimDeliveries(ctx context.Context, now, leaseUntil time.Time, limit int) ([]Delivery, error) {
	nowNs := ns(now)
	return s.claim(ctx, limit, qClaim, nowNs, nowNs, limit, ns(leaseUntil), ns(s.now()))
}

// ClaimDeliveriesFor implements Store: ClaimDeliveries of the rows
// addressed to division (index deliveries_active_to).
func (s *sqlStore) ClaimDeliveriesFor(ctx context.Context, division string, now, leaseUntil time.Time, limit int) ([]Delivery, error) {
	nowNs := ns(now)
	return s.claim(ctx, limit, qClaimFor, division, nowNs, nowNs, limit, ns(leaseUntil), ns(s.now()))
}

// claim runs a claim query in one transaction taken first by the group
// commit, and opens the payloads of the rows it took after it (off the
// writer connection), in log order.
func (s *sqlStore) claim(ctx context.Context, limit int, q query, args ...any) ([]Delivery, error) {
	if limit <= 0 {
		return nil, nil
	}
	var stored []storedDelivery
	err := s.inTxFirst(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		stored, err = scanStoredDeliveries(s.txQuery(ctx, tx, q, args...))
		return err
	})
	if err != nil {
		return nil, err
	}
	out, err := s.payloads(stored)
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].EventIndex < out[j].EventIndex })
	return out, nil
}

// FinishDelivery implements Store. A delivery already delivered, refused or
// dead is not changed again: ErrConflict (a worker whose lease expired lost
// the row to another that finished it).
func (s *sqlStore) FinishDelivery(ctx context.Context, id string, out DeliveryOutcome) error {
	switch out.State {
	case StateDelivered, StateRefused, StateRetrying, StateDead:
	default:
		return fmt.Errorf("store: FinishDelivery: outcome state %q", out.State)
	}
	now := ns(s.now())
	return s.inTxFirst(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var exchangeID, state string
		var seq int64
		err := s.txQueryRow(ctx, tx, qLockDelivery, id).Scan(&exchangeID, &seq, &state)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: delivery %s", ErrNotFound, id)
		}
		if err != nil {
			return fmt.Errorf("store: read delivery: %w", err)
		}
		switch state {
		case StateDelivered, StateRefused, StateDead:
			return fmt.Errorf("%w: delivery %s is already %s", ErrConflict, id, state)
		}
		var delivered any // NULL unless delivered
		next := int64(0)
		switch out.State {
		case StateDelivered:
			delivered = now
		case StateRetrying:
			next = ns(out.NextAttempt)
		}
		if _, err := s.txExec(ctx, tx, qFinishDelivery,
			out.State, out.Attempts, next, out.LastError, out.PartnerCaseNo, out.Reason, now, delivered, id); err != nil {
			return fmt.Errorf("store: update delivery: %w", err)
		}
		if out.State == StateDelivered && seq == 0 && out.PartnerCaseNo != "" {
			if _, err := s.txExec(ctx, tx, qSetTargetCaseNo, out.PartnerCaseNo, exchangeID); err != nil {
				return fmt.Errorf("store: update exchange: %w", err)
			}
		}
		if out.Entry != nil {
			e := *out.Entry
			if e.Exchange == "" {
				e.Exchange = exchangeID
			}
			if _, err := s.appendEntry(ctx, tx, e); err != nil {
				return err
			}
		}
		return nil
	})
}

// GetDelivery implements Store.
func (s *sqlStore) GetDelivery(ctx context.Context, id string) (*Delivery, error) {
	return s.scanDelivery(s.dbQueryRow(ctx, s.r, qDeliveryByID, id))
}

// Deliveries implements Store; oldest means earliest log entry. A limit ≤ 0
// means no limit.
func (s *sqlStore) Deliveries(ctx context.Context, state string, limit int) ([]Delivery, error) {
	if limit <= 0 {
		limit = 1 << 30
	}
	if state == "" {
		return s.scanDeliveries(s.dbQuery(ctx, s.r, qDeliveries, limit))
	}
	return s.scanDeliveries(s.dbQuery(ctx, s.r, qDeliveriesIn, state, limit))
}

// DeliveriesOf implements Store.
func (s *sqlStore) DeliveriesOf(ctx context.Context, exchangeID string) ([]Delivery, error) {
	return s.scanDeliveries(s.dbQuery(ctx, s.r, qDeliveriesOf, exchangeID))
}

// Redrive implements Store: the row becomes queued with no attempts and no
// last error.
func (s *sqlStore) Redrive(ctx context.Context, id string, entry LogAppend) error {
	now := ns(s.now())
	return s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var exchangeID, state string
		var seq int64
		err := s.txQueryRow(ctx, tx, qLockDelivery, id).Scan(&exchangeID, &seq, &state)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: delivery %s", ErrNotFound, id)
		}
		if err != nil {
			return fmt.Errorf("store: read delivery: %w", err)
		}
		if state != StateDead {
			return fmt.Errorf("%w: delivery %s is %s, not dead", ErrConflict, id, state)
		}
		if _, err := s.txExec(ctx, tx, qRedrive, now, now, id); err != nil {
			return fmt.Errorf("store: update delivery: %w", err)
		}
		if entry.Exchange == "" {
			entry.Exchange = exchangeID
		}
		_, err = s.appendEntry(ctx, tx, entry)
		return err
	})
}
