package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// sqlStore is the one implementation of Store, on database/sql: SQLite
// (modernc.org/sqlite) or PostgreSQL (pgx), differing only by dialect.
type sqlStore struct {
	d              dialect
	w              *sql.DB // writes; on SQLite a single connection
	r              *sql.DB // reads; the same pool on PostgreSQL
	now            func() time.Time
	cleanupEvery   time.Duration
	jobs           chan *txJob   // group commit queue; nil when off
	first          chan *txJob   // group commit queue taken first (deliveries)
	committed      chan struct{} // closed when the committer has stopped
	maxBatch       int
	commitInterval time.Duration // least time between the starts of two commits
	st             stmts         // the registry's statements, readied at open
	sealer         Sealer        // encrypts payload columns; nil: stored in clear
	groupStats
	closeState
}

var _ Store = (*sqlStore)(nil)

// inTx runs fn in a write transaction and commits it; on SQLite the
// transaction begins IMMEDIATE and the commit is fsynced (synchronous=FULL).
//
// With group commit (SQLite) the transaction is shared with other callers'
// jobs: fn must run its statements with the ctx it is given (not the
// caller's, whose cancellation would interrupt the shared transaction).
func (s *sqlStore) inTx(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	if s.jobs != nil {
		return s.submit(ctx, s.jobs, fn)
	}
	return s.runTx(ctx, fn)
}

// inTxFirst is inTx for the outbox's claims and outcomes: with group
// commit they go into the next batch ahead of other waiting jobs.
func (s *sqlStore) inTxFirst(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	if s.first != nil {
		return s.submit(ctx, s.first, fn)
	}
	return s.runTx(ctx, fn)
}

// runTx runs fn in a transaction of its own.
func (s *sqlStore) runTx(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	if err := fn(ctx, tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// Times are stored as Unix nanoseconds, 0 for the zero time, and read back in
// UTC.
func ns(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNs(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// nonNil keeps a NOT NULL byte column from receiving NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// optionalSum is a digest for a nullable column: NULL when not given (zero).
func optionalSum(sum [32]byte) any {
	if sum == ([32]byte{}) {
		return nil
	}
	return sum[:]
}

func hash32(b []byte) (h [32]byte, err error) {
	if len(b) != len(h) {
		return h, fmt.Errorf("store: stored hash has %d bytes", len(b))
	}
	copy(h[:], b)
	return h, nil
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

var (
	qNextIndex   = newQuery("UPDATE log_head SET size = size + 1 WHERE id = 0 RETURNING size")
	qInsertEntry = newQuery(`INSERT INTO log_entries (idx, time_ns, kind, exchange_id, bytes, leaf_hash, has_decision)
		VALUES (?, ?, ?, ?, ?, ?, ?)`)
)

// appendEntry takes the next log index (locking log_head until commit, so
// indexes are gapless and unique across every writer) and stores the entry.
func (s *sqlStore) appendEntry(ctx context.Context, tx *sql.Tx, e LogAppend) (LogPosition, error) {
	if n := e.Nonce; n != nil {
		fresh, err := s.rememberNonce(ctx, tx, n.KeyID, n.Value, n.Until)
		if err != nil {
			return LogPosition{}, err
		}
		if !fresh {
			return LogPosition{}, ErrReplayed
		}
	}
	var size int64
	if err := s.txQueryRow(ctx, tx, qNextIndex).Scan(&size); err != nil {
		return LogPosition{}, fmt.Errorf("store: log head: %w", err)
	}
	idx := size - 1
	t := e.Time
	if t.IsZero() {
		t = s.now()
	}
	dec := 0
	if e.HasDecision {
		dec = 1
	}
	if _, err := s.txExec(ctx, tx, qInsertEntry, idx, ns(t), e.Kind, e.Exchange, nonNil(e.Bytes), e.LeafHash[:], dec); err != nil {
		return LogPosition{}, fmt.Errorf("store: append entry: %w", err)
	}
	return LogPosition{Index: uint64(idx), LeafHash: e.LeafHash}, nil
}

// ---- exchanges ----

const exchangeCols = `e.id, e.from_division, e.to_division, e.source_case_no, e.target_case_no, e.item, e.mode,
	e.revision, e.request_digest, e.content_type, COALESCE(b.request, e.request), COALESCE(b.translated, e.translated),
	e.policy_input, e.decision, e.receipt,
	e.log_index, e.leaf_hash, e.created_ns, e.status_count, e.last_state,
	COALESCE(d.state, ''), COALESCE(d.reason, ''), COALESCE(d.last_error, ''), d.delivered_ns`

// exchangeFrom joins an exchange's bodies (exchange_bodies; rows written
// before migration 4 hold them in exchanges.request/translated instead) and
// its case delivery.
const exchangeFrom = ` FROM exchanges e LEFT JOIN exchange_bodies b ON b.exchange_id = e.id
	LEFT JOIN deliveries d ON d.exchange_id = e.id AND d.seq = 0 `

func (s *sqlStore) scanExchange(row interface{ Scan(...any) error }) (*Exchange, error) {
	var (
		ex                             Exchange
		policyInput, decision          []byte
		logIndex, created, statusCount int64
		leaf                           []byte
		lastError                      string
		deliveredNs                    sql.NullInt64
	)
	err := row.Scan(&ex.ID, &ex.From, &ex.To, &ex.SourceCaseNo, &ex.TargetCaseNo, &ex.Item, &ex.Mode,
		&ex.Revision, &ex.RequestDigest, &ex.ContentType, &ex.Request, &ex.Translated, &policyInput, &decision, &ex.Receipt,
		&logIndex, &leaf, &created, &statusCount, &ex.LastState,
		&ex.DeliveryState, &ex.RefusalReason, &lastError, &deliveredNs)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: read exchange: %w", err)
	}
	if ex.Request, err = s.open(ex.Request, placeExchangeRequest, ex.ID); err != nil {
		return nil, err
	}
	if ex.Translated, err = s.caseRecord(ex.Translated, ex.Request, ex.ID); err != nil {
		return nil, err
	}
	if ex.LeafHash, err = hash32(leaf); err != nil {
		return nil, err
	}
	ex.PolicyInput = json.RawMessage(policyInput)
	ex.Decision = json.RawMessage(decision)
	ex.LogIndex = uint64(logIndex)
	ex.CreatedAt = fromNs(created)
	ex.StatusCount = int(statusCount)
	if ex.DeliveryState == StateRetrying || ex.DeliveryState == StateDead {
		ex.DeliveryDetail = lastError
	}
	if ex.DeliveryState != StateRefused {
		ex.RefusalReason = ""
	}
	if deliveredNs.Valid {
		t := fromNs(deliveredNs.Int64)
		ex.DeliveredAt = &t
	}
	return &ex, nil
}

var (
	qExchangeBySource = newQuery("SELECT " + exchangeCols + exchangeFrom + "WHERE e.from_division = ? AND e.source_case_no = ?")
	qInsertExchange   = newQuery(`INSERT INTO exchanges (id, from_division, to_division, source_case_no, target_case_no,
			item, mode, revision, request_digest, content_type, request, translated, policy_input, decision, receipt,
			log_index, leaf_hash, created_ns, status_count, last_state)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?, ?, ?, ?, ?, 0, '')`)
	qInsertBodies = newQuery(`INSERT INTO exchange_bodies (exchange_id, request, translated) VALUES (?, ?, ?)`)
	// The outbox row does not copy the translated record (payload NULL):
	// it is read from exchange_bodies (deliveryCols).
	qQueueCase = newQuery(`INSERT INTO deliveries (id, exchange_id, seq, to_division, kind, payload, payload_sm3, event_index,
			state, attempts, next_attempt_ns, created_ns, updated_ns) VALUES (?, ?, 0, ?, 'case', NULL, ?, ?, ?, 0, ?, ?, ?)`)
	qExchangeByID     = newQuery("SELECT " + exchangeCols + exchangeFrom + "WHERE e.id = ?")
	qExchangeByCaseNo = newQuery("SELECT " + exchangeCols + exchangeFrom +
		"WHERE e.source_case_no = ? OR e.target_case_no = ? ORDER BY e.log_index LIMIT 1")
	qExchangeOf = newQuery("SELECT " + exchangeCols + exchangeFrom +
		"WHERE (e.from_division = ? AND e.source_case_no = ?) OR (e.to_division = ? AND e.target_case_no = ?) ORDER BY e.log_index LIMIT 1")
)

// CreateExchange implements Store.
func (s *sqlStore) CreateExchange(ctx context.Context, ex *Exchange, entry LogAppend, receipt func(LogPosition) ([]byte, error)) (*Exchange, error) {
	if ex == nil {
		return nil, errors.New("store: CreateExchange: nil exchange")
	}
	n := *ex
	if n.ID == "" {
		n.ID = newID()
	}
	if n.CreatedAt.IsZero() {
		n.CreatedAt = s.now()
	}
	if entry.Exchange == "" {
		entry.Exchange = n.ID
	}
	// The bodies as stored, made before the transaction: on SQLite it runs
	// on the one writer connection, which commits for every caller.
	request := s.seal(n.Request, placeExchangeRequest, n.ID)
	record := s.seal(deltaAgainst(n.Translated, n.Request), placeExchangeTranslated, n.ID)
	var existing *Exchange
	err := s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		old, err := s.scanExchange(s.txQueryRow(ctx, tx, qExchangeBySource, n.From, n.SourceCaseNo))
		if err == nil {
			existing = old
			return ErrDuplicate
		}
		if !errors.Is(err, ErrNotFound) {
			return err
		}
		pos, err := s.appendEntry(ctx, tx, entry)
		if err != nil {
			return err
		}
		n.LogIndex, n.LeafHash = pos.Index, pos.LeafHash
		if receipt != nil {
			if n.Receipt, err = receipt(pos); err != nil {
				return err
			}
		}
		_, err = s.txExec(ctx, tx, qInsertExchange,
			n.ID, n.From, n.To, n.SourceCaseNo, n.TargetCaseNo, n.Item, n.Mode, n.Revision, n.RequestDigest, n.ContentType,
			[]byte(n.PolicyInput), []byte(n.Decision), n.Receipt,
			int64(pos.Index), pos.LeafHash[:], ns(n.CreatedAt))
		if err != nil {
			if isUniqueViolation(err) {
				return errDupRace
			}
			return fmt.Errorf("store: insert exchange: %w", err)
		}
		_, err = s.txExec(ctx, tx, qInsertBodies, n.ID, request, record)
		if err != nil {
			return fmt.Errorf("store: insert exchange bodies: %w", err)
		}
		created := ns(n.CreatedAt)
		_, err = s.txExec(ctx, tx, qQueueCase,
			n.ID, n.ID, n.To, optionalSum(n.TranslatedSM3), int64(pos.Index), StateQueued, created, created, created)
		if err != nil {
			return fmt.Errorf("store: queue delivery: %w", err)
		}
		return nil
	})
	switch {
	case errors.Is(err, ErrDuplicate):
		return existing, ErrDuplicate
	case errors.Is(err, errDupRace):
		// A concurrent transaction (another replica) inserted the same case
		// first; ours rolled back, log index included.
		old, err := s.scanExchange(s.dbQueryRow(ctx, s.w, qExchangeBySource, n.From, n.SourceCaseNo))
		if err != nil {
			return nil, fmt.Errorf("store: exchange id or case number already taken: %w", err)
		}
		return old, ErrDuplicate
	case err != nil:
		return nil, err
	}
	n.DeliveryState = StateQueued
	n.StatusCount, n.LastState = 0, ""
	n.RefusalReason, n.DeliveredAt, n.DeliveryDetail = "", nil, ""
	*ex = n
	out := n
	return &out, nil
}

// errDupRace: the insert hit a unique constraint the pre-check did not see.
var errDupRace = errors.New("store: concurrent duplicate")

// GetExchange implements Store.
func (s *sqlStore) GetExchange(ctx context.Context, id string) (*Exchange, error) {
	return s.scanExchange(s.dbQueryRow(ctx, s.r, qExchangeByID, id))
}

// FindExchange implements Store. When a number names several exchanges (two
// districts happened to use the same number), the oldest is returned.
func (s *sqlStore) FindExchange(ctx context.Context, caseNo string) (*Exchange, error) {
	if caseNo == "" {
		return nil, ErrNotFound
	}
	return s.scanExchange(s.dbQueryRow(ctx, s.r, qExchangeByCaseNo, caseNo, caseNo))
}

// ExchangeDetails implements Store: the three reads in one read
// transaction of the reader pool.
func (s *sqlStore) ExchangeDetails(ctx context.Context, id, caseNo string) (*Exchange, []StatusUpdate, []Delivery, error) {
	if id == "" && caseNo == "" {
		return nil, nil, nil, ErrNotFound
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("store: begin read: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // read only: nothing to commit
	var ex *Exchange
	if id != "" {
		ex, err = s.scanExchange(s.readTxQueryRow(ctx, tx, qExchangeByID, id))
	} else {
		ex, err = s.scanExchange(s.readTxQueryRow(ctx, tx, qExchangeByCaseNo, caseNo, caseNo))
	}
	if err != nil {
		return nil, nil, nil, err
	}
	sts, err := s.scanStatuses(s.readTxQuery(ctx, tx, qStatusesOf, ex.ID))
	if err != nil {
		return nil, nil, nil, err
	}
	dls, err := s.scanDeliveries(s.readTxQuery(ctx, tx, qDeliveriesOf, ex.ID))
	if err != nil {
		return nil, nil, nil, err
	}
	return ex, sts, dls, nil
}

// FindExchangeOf implements Store.
func (s *sqlStore) FindExchangeOf(ctx context.Context, division, caseNo string) (*Exchange, error) {
	if caseNo == "" {
		return nil, ErrNotFound
	}
	return s.scanExchange(s.dbQueryRow(ctx, s.r, qExchangeOf, division, caseNo, division, caseNo))
}

// ---- statuses ----

const statusCols = `exchange_id, seq, from_division, to_division, state, at_ns, request_digest, request, translated, receipt,
	log_index, leaf_hash, created_ns`

var (
	qLockExchange   = newQuery("SELECT status_count, last_state FROM exchanges WHERE id = ?" + forUpdate)
	qStatusByDigest = newQuery("SELECT " + statusCols + " FROM statuses WHERE exchange_id = ? AND from_division = ? AND request_digest = ?")
	qInsertStatus   = newQuery("INSERT INTO statuses (" + statusCols + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
	qSetStatusCount = newQuery("UPDATE exchanges SET status_count = ?, last_state = ? WHERE id = ?")
	// As qQueueCase: the payload is read from statuses.translated.
	qQueueStatus = newQuery(`INSERT INTO deliveries (id, exchange_id, seq, to_division, kind, payload, payload_sm3, event_index,
			state, attempts, next_attempt_ns, created_ns, updated_ns) VALUES (?, ?, ?, ?, 'status', NULL, ?, ?, ?, 0, ?, ?, ?)`)
	qStatusesOf = newQuery("SELECT " + statusCols + " FROM statuses WHERE exchange_id = ? ORDER BY seq")
)

func (s *sqlStore) scanStatus(row interface{ Scan(...any) error }) (*StatusUpdate, error) {
	var (
		st                         StatusUpdate
		seq, at, logIndex, created int64
		leaf                       []byte
	)
	err := row.Scan(&st.ExchangeID, &seq, &st.From, &st.To, &st.State, &at, &st.RequestDigest, &st.Request, &st.Translated,
		&st.Receipt, &logIndex, &leaf, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: read status: %w", err)
	}
	place := statusPlace(st.ExchangeID, int(seq))
	if st.Request, err = s.open(st.Request, placeStatusRequest, place); err != nil {
		return nil, err
	}
	if st.Translated, err = s.open(st.Translated, placeStatusTranslated, place); err != nil {
		return nil, err
	}
	if st.LeafHash, err = hash32(leaf); err != nil {
		return nil, err
	}
	st.Seq, st.At, st.LogIndex, st.CreatedAt = int(seq), fromNs(at), uint64(logIndex), fromNs(created)
	return &st, nil
}

// AddStatus implements Store. The exchange row is locked first (FOR UPDATE
// on PostgreSQL), so the duplicate and terminal checks and the next Seq hold
// against every concurrent update of the same exchange.
func (s *sqlStore) AddStatus(ctx context.Context, st *StatusUpdate, terminal func(state string) bool, entry LogAppend, receipt func(LogPosition) ([]byte, error)) (*StatusUpdate, error) {
	if st == nil {
		return nil, errors.New("store: AddStatus: nil status")
	}
	n := *st
	if n.CreatedAt.IsZero() {
		n.CreatedAt = s.now()
	}
	if entry.Exchange == "" {
		entry.Exchange = n.ExchangeID
	}
	var existing *StatusUpdate
	err := s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var count int64
		var last string
		err := s.txQueryRow(ctx, tx, qLockExchange, n.ExchangeID).Scan(&count, &last)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("store: read exchange: %w", err)
		}
		old, err := s.scanStatus(s.txQueryRow(ctx, tx, qStatusByDigest, n.ExchangeID, n.From, n.RequestDigest))
		if err == nil {
			existing = old
			return ErrDuplicate
		}
		if !errors.Is(err, ErrNotFound) {
			return err
		}
		if count > 0 && terminal != nil && terminal(last) {
			return fmt.Errorf("%w: exchange %s is in terminal state %s", ErrInvalidTransition, n.ExchangeID, last)
		}
		n.Seq = int(count) + 1
		pos, err := s.appendEntry(ctx, tx, entry)
		if err != nil {
			return err
		}
		n.LogIndex, n.LeafHash = pos.Index, pos.LeafHash
		if receipt != nil {
			if n.Receipt, err = receipt(pos); err != nil {
				return err
			}
		}
		if _, err := s.txExec(ctx, tx, qInsertStatus,
			n.ExchangeID, n.Seq, n.From, n.To, n.State, ns(n.At), n.RequestDigest,
			s.seal(n.Request, placeStatusRequest, statusPlace(n.ExchangeID, n.Seq)),
			s.seal(n.Translated, placeStatusTranslated, statusPlace(n.ExchangeID, n.Seq)), n.Receipt,
			int64(pos.Index), pos.LeafHash[:], ns(n.CreatedAt)); err != nil {
			return fmt.Errorf("store: insert status: %w", err)
		}
		if _, err := s.txExec(ctx, tx, qSetStatusCount, n.Seq, n.State, n.ExchangeID); err != nil {
			return fmt.Errorf("store: update exchange: %w", err)
		}
		created := ns(n.CreatedAt)
		if _, err := s.txExec(ctx, tx, qQueueStatus,
			StatusDeliveryID(n.ExchangeID, n.Seq), n.ExchangeID, n.Seq, n.To,
			optionalSum(n.TranslatedSM3), int64(pos.Index), StateQueued,
			created, created, created); err != nil {
			return fmt.Errorf("store: queue delivery: %w", err)
		}
		return nil
	})
	if errors.Is(err, ErrDuplicate) {
		return existing, ErrDuplicate
	}
	if err != nil {
		return nil, err
	}
	*st = n
	out := n
	return &out, nil
}

// StatusDeliveryID is the delivery id (and Idempotency-Key) of an exchange's
// n-th status update: "<exchange id>.<n>" (gateway-api.md).
func StatusDeliveryID(exchangeID string, n int) string {
	return fmt.Sprintf("%s.%d", exchangeID, n)
}

// Statuses implements Store.
func (s *sqlStore) Statuses(ctx context.Context, exchangeID string) ([]StatusUpdate, error) {
	return s.scanStatuses(s.dbQuery(ctx, s.r, qStatusesOf, exchangeID))
}

func (s *sqlStore) scanStatuses(rows *sql.Rows, err error) ([]StatusUpdate, error) {
	if err != nil {
		return nil, fmt.Errorf("store: statuses: %w", err)
	}
	defer rows.Close()
	var out []StatusUpdate
	for rows.Next() {
		st, err := s.scanStatus(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *st)
	}
	return out, rows.Err()
}

// AppendEntry implements Store.
func (s *sqlStore) AppendEntry(ctx context.Context, entry LogAppend) (LogPosition, error) {
	var pos LogPosition
	err := s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		pos, err = s.appendEntry(ctx, tx, entry)
		return err
	})
	return pos, err
}
