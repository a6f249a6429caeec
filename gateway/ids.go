package gateway

import (
	"crypto/rand"
	"time"

	"github.com/oklog/ulid/v2"
)

// NewExchangeID returns a new exchange id: a ULID, which sorts by time and
// carries 80 random bits.
func NewExchangeID() string {
	return ulid.MustNew(ulid.Timestamp(time.Now()), rand.Reader).String()
}
