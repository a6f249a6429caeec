package gateway

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/tongban/tongban/gateway/store"
	"github.com/tongban/tongban/httpsig"
)

// TestStoreNonces: what this process recorded, itself or folded into a
// request's write (Note), is seen from memory; a nonce recorded only in the
// store (another handle: another replica) is looked up when the store may
// be shared, and missed on SQLite, where its write still refuses it.
func TestStoreNonces(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tongban.db")
	open := func() store.Store {
		s, err := store.OpenSQLite(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	st, other := open(), open()
	until := time.Now().Add(5 * time.Minute)
	for _, shared := range []bool{false, true} {
		n := &storeNonces{s: st, recent: httpsig.NewMemoryNonces(0), shared: shared}
		seen := func(nonce string) bool {
			t.Helper()
			ok, err := n.Seen(ctx, "k", nonce)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		mine, noted, theirs := "mine-"+t.Name(), "noted", "theirs"
		if shared {
			mine, noted, theirs = mine+"-s", noted+"-s", theirs+"-s"
		}
		if fresh, err := n.Remember(ctx, "k", mine, until); err != nil || !fresh {
			t.Fatalf("Remember: %v %v", fresh, err)
		}
		n.Note("k", noted, until)
		if fresh, err := other.RememberNonce(ctx, "k", theirs, until); err != nil || !fresh {
			t.Fatalf("RememberNonce on the other handle: %v %v", fresh, err)
		}
		if !seen(mine) || !seen(noted) {
			t.Errorf("shared %v: own nonces not seen", shared)
		}
		if seen(theirs) != shared {
			t.Errorf("shared %v: the other handle's nonce seen %v", shared, !shared)
		}
		if seen("never") {
			t.Errorf("shared %v: an unknown nonce is seen", shared)
		}
		if fresh, err := n.Remember(ctx, "k", theirs, until); err != nil || fresh {
			t.Errorf("shared %v: Remember of the other handle's nonce: fresh %v, %v", shared, fresh, err)
		}
	}
	if n, err := newStoreNonces(ctx, st, store.DriverPostgres); err != nil || !n.shared {
		t.Errorf("a PostgreSQL store is not looked up (%v)", err)
	}

	// On SQLite the memory starts with the store's live nonces (a restart),
	// not the expired ones.
	if _, err := st.RememberNonce(ctx, "k", "expired", time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	restarted, err := newStoreNonces(ctx, st, store.DriverSQLite)
	if err != nil {
		t.Fatal(err)
	}
	for nonce, want := range map[string]bool{"theirs": true, "noted": false, "expired": false, "never": false} {
		if got, _ := restarted.Seen(ctx, "k", nonce); got != want {
			t.Errorf("after a restart, %s seen %v, want %v", nonce, got, want)
		}
	}
}

// TestWritesWithEntry: the nonce is deferred to the write on the routes
// that write with a log entry, as the handler's mux routes them, and on no
// other.
func TestWritesWithEntry(t *testing.T) {
	for _, c := range []struct {
		method, path string
		want         bool
	}{
		{"POST", "/v1/exchanges", true},
		{"POST", "/v1/status", true},
		{"POST", "/v1/exchanges/01JDEX/status", true},
		{"GET", "/v1/exchanges/01JDEX", false},
		{"GET", "/v1/cases/NH1", false},
		{"POST", "/v1/exchanges/01JDEX", false},
		{"POST", "/v1/policies", false},
		{"GET", "/v1/exchanges", false},
	} {
		r := httptest.NewRequest(c.method, "https://127.0.0.1:8443"+c.path, nil)
		if got := writesWithEntry(r); got != c.want {
			t.Errorf("%s %s: deferred %v, want %v", c.method, c.path, got, c.want)
		}
	}
}
