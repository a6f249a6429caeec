package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// A translated record carries the case's materials in base64 as the request
// did, and both districts write standard base64 on one line: most of its
// bytes are already in the request stored beside it. The store keeps such a
// record as a delta against its request — literal bytes and copies of the
// request's runs — which halves what a case writes (to the WAL and again to
// the database at each checkpoint, on SQLite). Reads rebuild the record
// exactly; a record with nothing worth copying is kept as it is.
//
// Layout: deltaMagic, uvarint length of the record, then pairs of
// (uvarint n, n literal bytes, uvarint offset, uvarint m: m bytes of the
// request from offset) up to the record's length. No district record starts
// with the magic (they are XML or JSON text), nor does a sealed payload.
var deltaMagic = []byte("TBDLT\x00\x01")

// minCopy is the shortest run copied from the request; anchorLen the
// prefix of a run looked up in it (short enough for bytes.Index's
// vectorized search).
const (
	minCopy   = 256
	anchorLen = 32
)

// b64Byte marks the base64 alphabet: materials' content in both formats.
var b64Byte = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") {
		t[c] = true
	}
	return t
}()

// deltaAgainst returns record as a delta against base when that saves at
// least a minCopy's worth, and record itself otherwise. Each maximal run of
// base64 of at least minCopy bytes in record is copied when base holds it
// whole: looked up by its first anchorLen bytes after the previous copy
// first (materials keep their order), then from the start. The lookups
// share a budget of a few times base's size, so the work stays linear
// whatever the bytes (they come from partners); runs not found within it
// stay literal.
func deltaAgainst(record, base []byte) []byte {
	budget := 4*len(base) + len(record)
	return deltaWithin(record, base, &budget)
}

// deltaWithin is deltaAgainst with the lookups' budget given.
func deltaWithin(record, base []byte, budget *int) []byte {
	if len(record) < minCopy || len(base) < minCopy {
		return record
	}
	var (
		out   []byte
		lit   int // record[lit:] is not yet in out
		after int // where the previous copy ended in base
	)
	for i, j := range runs(record) {
		off := findRun(base, record[i:j], after, budget)
		if off < 0 {
			continue
		}
		if out == nil {
			out = make([]byte, 0, len(deltaMagic)+binary.MaxVarintLen64+(len(record)-(j-i))/2)
			out = append(out, deltaMagic...)
			out = binary.AppendUvarint(out, uint64(len(record)))
		}
		out = binary.AppendUvarint(out, uint64(i-lit))
		out = append(out, record[lit:i]...)
		out = binary.AppendUvarint(out, uint64(off))
		out = binary.AppendUvarint(out, uint64(j-i))
		lit, after = j, off+(j-i)
	}
	if out == nil || len(record)-len(out)-(len(record)-lit) < minCopy {
		return record
	}
	out = binary.AppendUvarint(out, uint64(len(record)-lit))
	out = append(out, record[lit:]...)
	return binary.AppendUvarint(binary.AppendUvarint(out, 0), 0)
}

// findRun returns where base holds run whole, looking from hint first and
// then from the start, or -1; the bytes it looks at are taken from budget.
func findRun(base, run []byte, hint int, budget *int) int {
	anchor := run[:anchorLen]
	for pass, from := range [2]int{hint, 0} {
		if pass == 1 && hint == 0 {
			break
		}
		for k := from; k+len(run) <= len(base) && *budget > 0; k++ {
			window := base[k : len(base)-len(run)+anchorLen]
			n := bytes.Index(window, anchor)
			if n < 0 {
				*budget -= len(window)
				break
			}
			k += n
			*budget -= n + len(run)
			if bytes.Equal(base[k:k+len(run)], run) {
				return k
			}
		}
	}
	return -1
}

// runs yields the start and end of each maximal run of base64 in b at least
// minCopy long.
func runs(b []byte) func(yield func(int, int) bool) {
	return func(yield func(int, int) bool) {
		for i := 0; i < len(b); {
			if !b64Byte[b[i]] {
				i++
				continue
			}
			j := i + 1
			for j < len(b) && b64Byte[b[j]] {
				j++
			}
			if j-i >= minCopy && !yield(i, j) {
				return
			}
			i = j
		}
	}
}

// errDelta: a stored delta does not fit its request (altered bytes, or a
// request that is not the one it was made against).
var errDelta = errors.New("store: stored delta does not fit its request")

// undelta rebuilds a record stored by deltaAgainst; a record stored as it
// is is returned unchanged.
func undelta(stored, base []byte) ([]byte, error) {
	if !bytes.HasPrefix(stored, deltaMagic) {
		return stored, nil
	}
	p := stored[len(deltaMagic):]
	next := func() (uint64, bool) {
		v, n := binary.Uvarint(p)
		if n <= 0 {
			return 0, false
		}
		p = p[n:]
		return v, true
	}
	size, ok := next()
	if !ok || size > uint64(len(p))+uint64(len(base))*uint64(len(p)) {
		return nil, fmt.Errorf("%w: bad length", errDelta)
	}
	out := make([]byte, 0, min(size, uint64(len(p)+2*len(base))))
	for len(p) > 0 {
		n, ok := next()
		if !ok || n > uint64(len(p)) {
			return nil, fmt.Errorf("%w: bad literal", errDelta)
		}
		out, p = append(out, p[:n]...), p[n:]
		off, ok1 := next()
		m, ok2 := next()
		if !ok1 || !ok2 || off > uint64(len(base)) || m > uint64(len(base))-off {
			return nil, fmt.Errorf("%w: copy out of range", errDelta)
		}
		out = append(out, base[off:off+m]...)
		if uint64(len(out)) > size {
			return nil, fmt.Errorf("%w: longer than recorded", errDelta)
		}
	}
	if uint64(len(out)) != size {
		return nil, fmt.Errorf("%w: %d bytes, recorded %d", errDelta, len(out), size)
	}
	return out, nil
}

// caseRecord opens a case's stored translated record and rebuilds it
// against the request (as stored, or already opened: a record in clear
// never starts with the seal's magic).
func (s *sqlStore) caseRecord(stored, request []byte, exchangeID string) ([]byte, error) {
	rec, err := s.open(stored, placeExchangeTranslated, exchangeID)
	if err != nil || !bytes.HasPrefix(rec, deltaMagic) {
		return rec, err
	}
	if request, err = s.open(request, placeExchangeRequest, exchangeID); err != nil {
		return nil, err
	}
	rec, err = undelta(rec, request)
	if err != nil {
		return nil, fmt.Errorf("%w (translated record of exchange %s)", err, exchangeID)
	}
	return rec, nil
}
