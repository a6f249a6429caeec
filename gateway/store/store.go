// Package store is tongban's persistence behind one interface: the embedded
// SQLite store by default, PostgreSQL when several gateway replicas share one
// database. One conformance suite (storetest) runs against every backend.
//
// Every operation that accepts an event writes the event, its payloads, its
// exchange-log entry and its outbox row in one transaction: nothing is
// acknowledged before it is durable, and there is never an entry without its
// event nor an event without its entry.
//
// Backends: [OpenSQLite] (WAL, synchronous=FULL, group commit), [OpenPostgres]
// (pgx; several replicas share the database) and [Open] choosing by driver
// name. Both are one implementation on database/sql with a small dialect;
// the schema is migrated at open from the numbered files in migrations/.
// Times are stored as Unix nanoseconds and read back in UTC (time.Equal
// holds, the Location does not).
package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Sentinel errors callers act on.
var (
	// ErrNotFound: no such exchange, status, delivery, draft or revision.
	ErrNotFound = errors.New("store: not found")
	// ErrDuplicate: an exchange with the same (sender division, source case
	// number) exists. The existing exchange is returned beside it.
	ErrDuplicate = errors.New("store: duplicate")
	// ErrInvalidTransition: a status after a terminal one.
	ErrInvalidTransition = errors.New("store: invalid transition")
	// ErrConflict: a concurrent change won (e.g. delivery no longer claimable).
	ErrConflict = errors.New("store: conflict")
	// ErrReplayed: the entry's Nonce is already recorded and not expired;
	// nothing of the transaction was written.
	ErrReplayed = errors.New("store: nonce already recorded")
)

// Delivery states (gateway-api.md, "Delivery to partners").
const (
	StateQueued     = "queued"
	StateDelivering = "delivering"
	StateDelivered  = "delivered"
	StateRetrying   = "retrying"
	StateRefused    = "refused"
	StateDead       = "dead"
)

// LogAppend is one exchange-log entry to append inside a transaction. The
// store assigns the index (the current log size: gapless, no duplicates,
// across replicas).
type LogAppend struct {
	Kind     string
	Exchange string // exchange id, "" when the event belongs to none
	Time     time.Time
	Bytes    []byte   // the entry exactly as serialized once
	LeafHash [32]byte // SM3(0x00 ‖ Bytes)
	// HasDecision: Bytes carries a top-level policy_input (an exchange, or
	// a policy denial; exchange-log.md), which simulations read back. Set
	// with LeafHash when the entry is serialized ([NewLogAppend]), so that
	// the store's committer does not parse every entry again.
	HasDecision bool
	// Nonce, when set, is recorded in the transaction that appends the
	// entry, as RememberNonce would: a request's signature nonce written
	// with what the request changed, in one commit. If it is already
	// recorded, the transaction fails with ErrReplayed.
	Nonce *Nonce
}

// Nonce is a signature nonce to record until a time (signing.md).
type Nonce struct {
	KeyID, Value string
	Until        time.Time
}

// LogPosition is where an appended entry landed.
type LogPosition struct {
	Index    uint64
	LeafHash [32]byte
}

// Exchange is one accepted case crossing districts.
type Exchange struct {
	ID            string
	From          string // sender's division code
	To            string // owner's division code
	SourceCaseNo  string // the sender's case number
	TargetCaseNo  string // the owner's number, from its acknowledgement ("" until then)
	Item          string // basic code
	Mode          string // handling mode
	Revision      string // policy revision that decided
	RequestDigest string // hex SM3 of the request body
	ContentType   string // of the request
	Request       []byte // the request body as received
	Translated    []byte // the record to deliver to the owner
	// TranslatedSM3 is the SM3 of Translated when the caller computed it
	// (for the log entry); it is stored with the delivery, whose signer
	// then need not hash the payload again. Zero: not given.
	TranslatedSM3  [32]byte
	PolicyInput    json.RawMessage
	Decision       json.RawMessage
	Receipt        []byte // the receipt body returned to the sender (same bytes on a replay)
	LogIndex       uint64
	LeafHash       [32]byte
	DeliveryState  string
	RefusalReason  string
	CreatedAt      time.Time
	StatusCount    int    // number of accepted status updates
	LastState      string // latest canonical state ("" when none)
	DeliveredAt    *time.Time
	DeliveryDetail string // last error while retrying or dead
}

// StatusUpdate is one accepted status update of an exchange.
type StatusUpdate struct {
	ExchangeID    string
	Seq           int    // 1, 2, … in acceptance order (set by the store)
	From          string // division of the sender
	To            string // division it is delivered to
	State         string // canonical state (Liwan name)
	At            time.Time
	RequestDigest string
	Request       []byte
	Translated    []byte
	TranslatedSM3 [32]byte // as Exchange.TranslatedSM3
	Receipt       []byte
	LogIndex      uint64
	LeafHash      [32]byte
	CreatedAt     time.Time
}

// Delivery is one outbox row: a record to POST to a partner until it
// acknowledges.
type Delivery struct {
	ID         string // exchange id for a case, "<exchange id>.<n>" for its n-th status
	ExchangeID string
	Seq        int    // 0 for the case, n for the n-th status update
	To         string // partner division code
	Kind       string // "case" or "status"
	Payload    []byte // the translated record
	// PayloadSM3 is the SM3 of Payload as given to CreateExchange or
	// AddStatus (TranslatedSM3); zero when it was not given.
	PayloadSM3    [32]byte
	EventIndex    uint64 // log index of the exchange/status entry delivered
	State         string
	Attempts      int
	NextAttempt   time.Time
	LastError     string
	PartnerCaseNo string
	Reason        string // refusal reason
	UpdatedAt     time.Time
}

// DeliveryOutcome is how an attempt ended.
type DeliveryOutcome struct {
	State         string // StateDelivered, StateRefused, StateRetrying or StateDead
	Attempts      int
	NextAttempt   time.Time // when retrying
	LastError     string
	PartnerCaseNo string // the number the partner assigned (delivered case)
	Reason        string // refused
	Entry         *LogAppend
}

// Draft is an uploaded policy bundle.
type Draft struct {
	ID         string
	Revision   string
	Bundle     []byte // tar
	UploadedBy string // key id
	UploadedAt time.Time
	Validated  bool
	Report     json.RawMessage
}

// Activation is one policy revision made active.
type Activation struct {
	Revision string
	Previous string
	Bundle   []byte // tar
	By       string // key id
	At       time.Time
	LogIndex uint64
}

// StoredEntry is one exchange-log entry as stored.
type StoredEntry struct {
	Index    uint64
	Time     time.Time
	Kind     string
	Exchange string
	Bytes    []byte
	LeafHash [32]byte
}

// StoredCheckpoint is one signed checkpoint as stored.
type StoredCheckpoint struct {
	Size uint64
	Time time.Time
	Note []byte
}

// Store is the whole of tongban's persistence.
type Store interface {
	// CreateExchange stores a new accepted exchange, appends its log entry
	// and queues its delivery, in one transaction. The entry's position is
	// written into ex (LogIndex, LeafHash) before the receipt is built, so
	// receipt is called inside the transaction to produce the receipt bytes
	// stored with the exchange. On a duplicate (same From and SourceCaseNo) it
	// returns the existing exchange and ErrDuplicate, and writes nothing.
	// If receipt fails, nothing is written and its error is returned.
	// receipt must not call the store's write methods (on SQLite it runs on
	// the one writer). An empty ex.ID or entry.Exchange is filled in.
	CreateExchange(ctx context.Context, ex *Exchange, entry LogAppend, receipt func(LogPosition) ([]byte, error)) (*Exchange, error)
	// GetExchange by id.
	GetExchange(ctx context.Context, id string) (*Exchange, error)
	// FindExchange by a case number of either district.
	FindExchange(ctx context.Context, caseNo string) (*Exchange, error)
	// ExchangeDetails reads an exchange — by id, or when id is "" by a case
	// number as FindExchange — with its status updates and deliveries, all
	// from one snapshot (a read transaction; REPEATABLE READ on
	// PostgreSQL), so that a delivery shown delivered comes with the
	// partner's case number it was delivered under. ErrNotFound as
	// GetExchange.
	ExchangeDetails(ctx context.Context, id, caseNo string) (*Exchange, []StatusUpdate, []Delivery, error)
	// FindExchangeOf finds the exchange in which division's own case number
	// is caseNo: the source number when division sent it, the target number
	// when division owns it.
	FindExchangeOf(ctx context.Context, division, caseNo string) (*Exchange, error)

	// AddStatus appends a status update of an exchange, its log entry and its
	// outbox row in one transaction, giving it the next Seq. If a status with
	// the same sender and request digest exists for the exchange, that one is
	// returned with ErrDuplicate. After a terminal state it is
	// ErrInvalidTransition (terminal is decided by the caller's predicate).
	AddStatus(ctx context.Context, st *StatusUpdate, terminal func(state string) bool, entry LogAppend, receipt func(LogPosition) ([]byte, error)) (*StatusUpdate, error)
	// Statuses of an exchange in acceptance order.
	Statuses(ctx context.Context, exchangeID string) ([]StatusUpdate, error)

	// AppendEntry appends a log entry that belongs to no stored event (a
	// denial, a key rotation).
	AppendEntry(ctx context.Context, entry LogAppend) (LogPosition, error)

	// ClaimDeliveries leases up to limit due deliveries (queued or retrying
	// with NextAttempt ≤ now), marking them delivering until leaseUntil.
	// Queued rows are due as soon as committed; a delivering row whose lease
	// ended before now is due again (its worker died). Oldest entry first.
	// A status delivery is due only once every earlier delivery of its
	// exchange is delivered or refused. Safe across replicas: a row is
	// claimed by one caller only.
	ClaimDeliveries(ctx context.Context, now, leaseUntil time.Time, limit int) ([]Delivery, error)
	// ClaimDeliveriesFor is ClaimDeliveries restricted to the deliveries
	// addressed to one partner division (Delivery.To), so that a worker
	// claims no more of a partner's rows than it has free slots for.
	ClaimDeliveriesFor(ctx context.Context, division string, now, leaseUntil time.Time, limit int) ([]Delivery, error)
	// FinishDelivery records an attempt's outcome (and its log entry, if any)
	// in one transaction; a delivered case also stores the partner's case
	// number on its exchange. ErrNotFound for an unknown id; ErrConflict if
	// the delivery is already delivered, refused or dead.
	FinishDelivery(ctx context.Context, id string, out DeliveryOutcome) error
	// GetDelivery by id.
	GetDelivery(ctx context.Context, id string) (*Delivery, error)
	// Deliveries lists deliveries in a state (all when state is ""), oldest
	// first, at most limit.
	Deliveries(ctx context.Context, state string, limit int) ([]Delivery, error)
	// DeliveriesOf lists an exchange's deliveries by seq.
	DeliveriesOf(ctx context.Context, exchangeID string) ([]Delivery, error)
	// Redrive re-queues a dead delivery (attempts reset) and appends the
	// redriven entry, in one transaction; ErrConflict if it is not dead.
	Redrive(ctx context.Context, id string, entry LogAppend) error

	// RememberNonce records (keyID, nonce) until the given time; fresh is
	// false if it was already recorded and not yet expired.
	RememberNonce(ctx context.Context, keyID, nonce string, until time.Time) (fresh bool, err error)
	// NonceSeen reports, without recording, whether (keyID, nonce) is
	// recorded and not expired (a read: RememberNonce or an entry's Nonce
	// stays the atomic check).
	NonceSeen(ctx context.Context, keyID, nonce string) (bool, error)
	// LiveNonces calls fn with every recorded nonce not yet expired.
	LiveNonces(ctx context.Context, fn func(keyID, nonce string, until time.Time)) error

	// Policy administration. SaveDraft fills in an empty ID and UploadedAt;
	// an ID already used is ErrDuplicate.
	SaveDraft(ctx context.Context, d *Draft) error
	GetDraft(ctx context.Context, id string) (*Draft, error)
	MarkDraftValidated(ctx context.Context, id string, ok bool, report json.RawMessage) error
	// Activate records an activation and its log entry in one transaction.
	Activate(ctx context.Context, a *Activation, entry LogAppend) error
	Activations(ctx context.Context) ([]Activation, error) // newest first
	// RecentDecisions returns the last n exchange or policy-denied entries
	// (those of kind exchange or denied with a top-level policy_input),
	// newest first.
	RecentDecisions(ctx context.Context, n int) ([]StoredEntry, error)

	// The exchange log (gateway/exchangelog's Store interface).
	LogSize(ctx context.Context) (uint64, error)
	// LeafHashes and Entries cover start ≤ i < end; a range past the log's
	// size is ErrNotFound.
	LeafHashes(ctx context.Context, start, end uint64) ([][32]byte, error)
	Entries(ctx context.Context, start, end uint64) ([]StoredEntry, error)
	EntriesOfExchange(ctx context.Context, id string) ([]StoredEntry, error)
	// AddCheckpoint keeps the first checkpoint stored for a size (replicas
	// may sign the same size; a second one is accepted without effect).
	AddCheckpoint(ctx context.Context, cp StoredCheckpoint) error
	LatestCheckpoint(ctx context.Context) (*StoredCheckpoint, error) // nil, nil when none
	// Checkpoints with minSize ≤ Size ≤ maxSize, smallest first.
	Checkpoints(ctx context.Context, minSize, maxSize uint64) ([]StoredCheckpoint, error)
	// CheckpointAtOrBefore: of those with Time ≤ t, the largest.
	CheckpointAtOrBefore(ctx context.Context, t time.Time) (*StoredCheckpoint, error) // nil, nil when none

	// Ping checks the database is reachable.
	Ping(ctx context.Context) error
	Close() error
}
