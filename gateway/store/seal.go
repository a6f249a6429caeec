package store

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// Sealer encrypts payloads at rest (certs.PayloadCipher: SM4-GCM). The
// additional data binds a sealed payload to its column and row, so one
// cannot be moved to another place unnoticed.
type Sealer interface {
	Seal(plaintext, ad []byte) []byte
	Open(sealed, ad []byte) ([]byte, error)
}

// ErrSealed: a sealed payload could not be opened (no key configured, a
// different key, or altered bytes).
var ErrSealed = errors.New("store: sealed payload cannot be opened")

// sealedMagic starts every sealed payload, so rows written in clear before
// encryption was turned on stay readable. No district record starts with it
// (they are XML or JSON text).
var sealedMagic = []byte("TBSM4\x00\x01")

// Places of the payload columns (additional data of the seal).
const (
	placeExchangeRequest    = "exchanges.request"
	placeExchangeTranslated = "exchanges.translated"
	placeStatusRequest      = "statuses.request"
	placeStatusTranslated   = "statuses.translated"
	placeDeliveryPayload    = "deliveries.payload"
)

func statusPlace(exchangeID string, seq int) string { return exchangeID + "." + strconv.Itoa(seq) }

func sealAD(column, row string) []byte { return []byte(column + "\x00" + row) }

// seal encrypts b for the given column and row when a sealer is set.
func (s *sqlStore) seal(b []byte, column, row string) []byte {
	if s.sealer == nil || b == nil {
		return b
	}
	return append(bytes.Clone(sealedMagic), s.sealer.Seal(b, sealAD(column, row))...)
}

// open reverses seal; a payload stored in clear is returned as it is.
func (s *sqlStore) open(b []byte, column, row string) ([]byte, error) {
	if !bytes.HasPrefix(b, sealedMagic) {
		return b, nil
	}
	if s.sealer == nil {
		return nil, fmt.Errorf("%w: %s of %s is encrypted and no payload key is configured", ErrSealed, column, row)
	}
	pt, err := s.sealer.Open(b[len(sealedMagic):], sealAD(column, row))
	if err != nil {
		return nil, fmt.Errorf("%w: %s of %s: %v", ErrSealed, column, row, err)
	}
	return pt, nil
}
