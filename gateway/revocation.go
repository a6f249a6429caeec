package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/tongban/tongban/certs"
)

// ErrRevocationList: the revocation list file does not parse.
var ErrRevocationList = errors.New("gateway: bad revocation list")

// ParseRevocationList reads a revocation list: one revoked certificate a
// line, as `keyid <lowercase hex SM3 of the certificate>` or
// `serial <serial number in hex, colons allowed>`; blank lines and lines
// starting with # are ignored.
func ParseRevocationList(b []byte) (keyIDs []string, serials []*big.Int, err error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		kind, value, _ := strings.Cut(line, " ")
		value = strings.TrimSpace(value)
		switch kind {
		case "keyid":
			if len(value) != 64 || strings.Trim(value, "0123456789abcdef") != "" {
				return nil, nil, fmt.Errorf("%w: line %d: a keyid is 64 lowercase hex digits", ErrRevocationList, n)
			}
			keyIDs = append(keyIDs, value)
		case "serial":
			v, ok := new(big.Int).SetString(strings.ReplaceAll(value, ":", ""), 16)
			if !ok || v.Sign() <= 0 {
				return nil, nil, fmt.Errorf("%w: line %d: a serial is a positive hex number", ErrRevocationList, n)
			}
			serials = append(serials, v)
		default:
			return nil, nil, fmt.Errorf("%w: line %d: want \"keyid …\" or \"serial …\"", ErrRevocationList, n)
		}
	}
	return keyIDs, serials, sc.Err()
}

// revocationWatcher applies a revocation list file to a trust store, and
// again whenever the file's content changes. A file that stops parsing
// (or disappears) leaves the last good list in force and is reported.
type revocationWatcher struct {
	path  string
	trust *certs.TrustStore
	log   *slog.Logger

	mu   sync.Mutex
	last [certs.SM3Size]byte
	seen bool
}

// load reads the file and applies it if it changed; changed reports
// whether it did.
func (w *revocationWatcher) load() (changed bool, err error) {
	b, err := os.ReadFile(w.path)
	if err != nil {
		return false, fmt.Errorf("revocation list: %w", err)
	}
	sum := certs.SM3(b)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen && sum == w.last {
		return false, nil
	}
	keyIDs, serials, err := ParseRevocationList(b)
	if err != nil {
		return false, fmt.Errorf("%s: %w", w.path, err)
	}
	w.trust.SetRevoked(keyIDs, serials)
	w.last, w.seen = sum, true
	return true, nil
}

// run reloads the file every interval until ctx ends.
func (w *revocationWatcher) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed, err := w.load()
		switch {
		case err != nil:
			w.log.ErrorContext(ctx, "revocation list not reloaded; the previous one stays in force", "err", err)
		case changed:
			w.log.InfoContext(ctx, "revocation list reloaded", "file", w.path)
		}
	}
}
