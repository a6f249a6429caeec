// Package console is tongban's web console for administrators and auditors,
// served by the gateway itself under /console/: server-rendered HTML
// (html/template) with light progressive enhancement, its templates, styles,
// scripts and the vendored SM3 of sm-crypto embedded in the binary, Chinese
// by default and English on request.
//
// Sign-in proves possession of an administrator's or auditor's SM2 key
// without the key ever reaching the browser: the console shows a challenge,
// `tongban console login` posts it to /console/login as an RFC 9421 request
// signed with the key (signing.md), and the gateway answers a one-time link
// that turns the browser that was shown the challenge into a session bound to
// the key's role. Partners cannot sign in. The session cookie is HttpOnly,
// Secure, SameSite=Strict and short-lived; every state-changing request also
// carries a per-session CSRF token and passes net/http's cross-origin
// protection.
//
// The console does nothing on its own: every operation is a call to a
// [Backend], which the gateway implements with the same operations as its
// admin and audit APIs.
package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/httpsig"
	"github.com/tongban/tongban/policies"
)

// Sentinel errors.
var (
	// ErrNotSignedIn: the request carries no valid session.
	ErrNotSignedIn = errors.New("console: not signed in")
	// ErrForbidden: the session's role may not do this, or a partner tried
	// to sign in.
	ErrForbidden = errors.New("console: forbidden")
	// ErrCSRF: a state-changing request without the session's CSRF token,
	// or from another origin.
	ErrCSRF = errors.New("console: missing or wrong CSRF token")
	// ErrChallenge: the sign-in challenge is unknown, expired or used.
	ErrChallenge = errors.New("console: unknown or expired challenge")
)

// Problem is an error a Backend returns that the console may show: its HTTP
// status, the gateway's problem code and a safe public detail. Any other
// error is shown as an internal error without detail.
type Problem struct {
	Status int
	Code   string
	Detail string
}

func (p *Problem) Error() string {
	if p.Detail == "" {
		return p.Code
	}
	return p.Code + ": " + p.Detail
}

// Actor is who performs an operation from the console: the identity the
// sign-in proved and the signed sign-in request itself, which the gateway
// records where its log wants an administrator's signed request
// (policy_activated's `request`).
type Actor struct {
	Identity certs.Identity
	SignIn   httpsig.Signed
}

// Backend is what the console needs from the gateway. Errors are *Problem
// where the user can act on them.
type Backend interface {
	// VerifySignIn checks a signed sign-in request exactly as the gateway
	// checks signed API requests (signing.md) and returns who signed it.
	VerifySignIn(r *http.Request) (*httpsig.Verified, error)

	// SearchExchanges finds exchanges (and policy denials) newest first.
	SearchExchanges(ctx context.Context, q Query) (*SearchResult, error)
	// Exchange is one exchange with its decision, deliveries and timeline;
	// withEntries adds its log entries (auditors).
	Exchange(ctx context.Context, id string, withEntries bool) (*Exchange, error)
	// Denial is the denied entry at a log index.
	Denial(ctx context.Context, index uint64) (*Denial, error)

	// Inclusion is an entry, the latest signed checkpoint and the entry's
	// inclusion proof to it, for the browser to check.
	Inclusion(ctx context.Context, index uint64) (*Inclusion, error)
	// LogOverview is the latest checkpoint, its signer and the entries per
	// hour since the given time.
	LogOverview(ctx context.Context, since time.Time) (*LogOverview, error)
	// Export writes the export archive of a period (the .tar that
	// `tongban audit verify` checks).
	Export(ctx context.Context, w io.Writer, from, to time.Time) error

	// ActivePolicy is the active revision and its catalog.
	ActivePolicy(ctx context.Context) (*Policy, error)
	// UploadDraft stores a bundle tar as a draft.
	UploadDraft(ctx context.Context, by Actor, tar []byte) (*Draft, error)
	// Draft is an uploaded draft.
	Draft(ctx context.Context, id string) (*Draft, error)
	// ValidateDraft validates a draft and records the report.
	ValidateDraft(ctx context.Context, by Actor, id string) (*policies.Report, error)
	// SimulateDraft evaluates a validated draft against past decisions.
	SimulateDraft(ctx context.Context, by Actor, id string) (*Simulation, error)
	// ActivateDraft makes a validated draft the active policy.
	ActivateDraft(ctx context.Context, by Actor, id string) (*Activation, error)
	// PolicyHistory lists activations, newest first.
	PolicyHistory(ctx context.Context) ([]HistoryItem, error)
	// Rollback activates an earlier revision again.
	Rollback(ctx context.Context, by Actor, revision string) (*Activation, error)

	// Deliveries lists deliveries in a state ("" for all).
	Deliveries(ctx context.Context, state string) ([]Delivery, error)
	// Redrive re-queues a dead delivery.
	Redrive(ctx context.Context, by Actor, id string) (*Delivery, error)
}

// Query selects exchanges. Empty fields do not filter. CaseNo matches either
// district's number exactly; District matches the sender or the owner;
// State matches the delivery state, the latest status or "denied".
type Query struct {
	CaseNo   string
	Item     string
	District string
	State    string
	From, To time.Time // zero: unbounded
	// Before continues a search below this log index (0: from the newest).
	Before uint64
	Limit  int
}

// SearchResult is a page of rows, and where the next page starts (0: none).
type SearchResult struct {
	Rows    []Row
	Next    uint64
	Scanned int
}

// Row is one search result: an accepted exchange or a policy denial.
type Row struct {
	Kind       string // "exchange" or "denied"
	LogIndex   uint64
	Time       time.Time
	ExchangeID string
	From, To   string // division codes
	Item       string
	ItemName   string
	SourceCase string
	TargetCase string
	State      string // delivery state, latest status, or "denied"
	LastStatus string
	Code       string // the denial's problem code
	Reasons    []policies.Reason
}

// CaseRef is one district's side of an exchange.
type CaseRef struct {
	Partner  string `json:"partner,omitempty"`
	Division string `json:"division"`
	CaseNo   string `json:"caseNo,omitempty"`
}

// Delivery is one delivery (the admin API's DeliveryView).
type Delivery struct {
	ID          string     `json:"id"`
	To          string     `json:"to"`
	State       string     `json:"state"`
	Attempts    int        `json:"attempts"`
	NextAttempt *time.Time `json:"nextAttempt,omitempty"`
	Reason      string     `json:"reason,omitempty"`
	LastError   string     `json:"lastError,omitempty"`
}

// Status is one status update with both districts' names of its state.
type Status struct {
	Seq        int       `json:"seq"`
	State      string    `json:"state"`
	Code       int       `json:"code"`
	NanhaiName string    `json:"nanhaiName"`
	LiwanName  string    `json:"liwanName"`
	At         time.Time `json:"at"`
	From       string    `json:"from"`
	Delivery   string    `json:"delivery,omitempty"`
}

// Exchange is what the exchange page shows.
type Exchange struct {
	ExchangeID string     `json:"exchangeId"`
	From       CaseRef    `json:"from"`
	To         CaseRef    `json:"to"`
	Item       string     `json:"item"`
	ItemName   string     `json:"-"`
	Mode       string     `json:"mode"`
	Revision   string     `json:"revision"`
	LogIndex   uint64     `json:"logIndex"`
	AcceptedAt time.Time  `json:"acceptedAt"`
	Delivery   Delivery   `json:"delivery"`
	Statuses   []Status   `json:"statuses"`
	Deliveries []Delivery `json:"deliveries"`
	// Decision is the policy decision recorded with the exchange.
	Decision *policies.Decision `json:"-"`
	// Timeline is every event of the exchange in time order.
	Timeline []Event `json:"-"`
	// Entries are its log entries (auditors only).
	Entries []Entry `json:"-"`
}

// Event is one step of an exchange's timeline.
type Event struct {
	Time     time.Time
	Kind     string // a log entry kind: exchange, delivered, status, dead, …
	LogIndex uint64
	HasIndex bool
	To       string // division delivered to
	State    string // status state
	Detail   string // partner case number, refusal reason, last error
}

// Entry is one exchange-log entry, exactly as logged.
type Entry struct {
	Index    uint64
	Kind     string
	Time     time.Time
	Text     string // the entry bytes
	LeafHash string // hex
}

// Denial is a policy (or other) denial from the log.
type Denial struct {
	Row
	PolicyInput *policies.Input
	Decision    *policies.Decision
	Fields      []string
	Entry       Entry
}

// Inclusion is what the browser needs to check one entry: the entry bytes,
// the latest signed checkpoint (a signed note) and the inclusion proof of
// the entry in the tree of the checkpoint's size (exchange-log.md).
type Inclusion struct {
	Index      uint64   `json:"index"`
	Entry      []byte   `json:"entry"` // base64 in JSON
	Checkpoint string   `json:"checkpoint"`
	Size       uint64   `json:"size"`
	Hashes     [][]byte `json:"hashes"` // base64 in JSON
}

// LogOverview is the log page: the latest checkpoint and its signer, and
// the entries per hour.
type LogOverview struct {
	Origin     string
	Size       uint64
	Root       string // base64
	SignedAt   time.Time
	Note       string // the signed note as served
	SignerName string
	SignerKey  string // key id (hex SM3 of the certificate)
	NotAfter   time.Time
	Hours      []HourCount
}

// HourCount is the number of entries, by kind, logged in one hour.
type HourCount struct {
	Hour   time.Time
	Total  int
	ByKind map[string]int
}

// Policy is the active policy (the admin API's PolicyView).
type Policy struct {
	Revision    string            `json:"revision"`
	Files       []string          `json:"files"`
	ActivatedBy string            `json:"activatedBy,omitempty"`
	ActivatedAt *time.Time        `json:"activatedAt,omitempty"`
	Catalog     *policies.Catalog `json:"catalog,omitempty"`
}

// Draft is an uploaded draft (the admin API's DraftView), with its catalog.
type Draft struct {
	ID         string            `json:"id"`
	Revision   string            `json:"revision"`
	Files      []string          `json:"files"`
	UploadedBy string            `json:"uploadedBy"`
	UploadedAt time.Time         `json:"uploadedAt"`
	Validated  bool              `json:"validated"`
	Report     *policies.Report  `json:"report,omitempty"`
	Catalog    *policies.Catalog `json:"-"`
}

// SimulationChange is one past decision the draft would change.
type SimulationChange struct {
	LogIndex uint64            `json:"logIndex"`
	Exchange string            `json:"exchange,omitempty"`
	Input    policies.Input    `json:"input"`
	Before   policies.Decision `json:"before"`
	After    policies.Decision `json:"after"`
}

// Simulation is a draft's impact on past traffic.
type Simulation struct {
	Draft       string             `json:"draft"`
	Revision    string             `json:"revision"`
	Evaluated   int                `json:"evaluated"`
	Changed     int                `json:"changed"`
	AllowToDeny int                `json:"allowToDeny"`
	DenyToAllow int                `json:"denyToAllow"`
	Other       int                `json:"other"`
	Changes     []SimulationChange `json:"changes"`
}

// Activation is the answer to an activation or rollback.
type Activation struct {
	Revision    string `json:"revision"`
	Previous    string `json:"previous"`
	ActivatedBy string `json:"activatedBy"`
	LogIndex    uint64 `json:"logIndex"`
}

// HistoryItem is one past activation.
type HistoryItem struct {
	Revision string    `json:"revision"`
	Previous string    `json:"previous"`
	By       string    `json:"by"`
	At       time.Time `json:"at"`
	LogIndex uint64    `json:"logIndex"`
	Active   bool      `json:"active"`
	// Initial is the revision the gateway ran before the first activation.
	Initial bool `json:"initial"`
}

// Options configure the console. Only Backend and PublicURL are required.
type Options struct {
	Backend Backend
	// PublicURL is the gateway's public base URL (the one-time link's base).
	PublicURL string
	// SessionTTL is how long a session lasts (default 30 minutes).
	SessionTTL time.Duration
	// ChallengeTTL is how long a sign-in challenge may be signed and its
	// link used (default 5 minutes).
	ChallengeTTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives internal errors (default slog.Default()).
	Logger Logger
}

// Logger is the part of *slog.Logger the console uses.
type Logger interface {
	ErrorContext(ctx context.Context, msg string, args ...any)
	InfoContext(ctx context.Context, msg string, args ...any)
}

func problemOf(err error) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	switch {
	case errors.Is(err, ErrNotSignedIn):
		return &Problem{Status: http.StatusUnauthorized, Code: "unauthorized"}
	case errors.Is(err, ErrForbidden):
		return &Problem{Status: http.StatusForbidden, Code: "forbidden"}
	case errors.Is(err, ErrCSRF):
		return &Problem{Status: http.StatusForbidden, Code: "csrf"}
	case errors.Is(err, ErrChallenge):
		return &Problem{Status: http.StatusBadRequest, Code: "challenge"}
	}
	return &Problem{Status: http.StatusInternalServerError, Code: "internal"}
}

// errorf makes a Problem.
func errorf(status int, code, format string, args ...any) *Problem {
	return &Problem{Status: status, Code: code, Detail: fmt.Sprintf(format, args...)}
}
