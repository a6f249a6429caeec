package store

import (
	"time"

	"github.com/tongban/tongban/gateway/exchangelog"
)

// NewLogAppend serializes e once (exchangelog.Marshal) for appending at t:
// its kind, exchange, bytes, leaf hash, and whether it carries a policy
// decision. Every producer of log entries builds its LogAppend here, so
// that the store never parses an entry again.
func NewLogAppend(e exchangelog.Entry, t time.Time) (LogAppend, error) {
	b, err := exchangelog.Marshal(e)
	if err != nil {
		return LogAppend{}, err
	}
	return LogAppend{Kind: exchangelog.Kind(e), Exchange: e.ExchangeID(), Time: t, Bytes: b,
		LeafHash: exchangelog.LeafHash(b), HasDecision: exchangelog.HasDecision(e)}, nil
}
