package store_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/gateway/store"
	"github.com/tongban/tongban/gateway/store/storetest"
	"github.com/tongban/tongban/internal/pgtest"
)

// sealer is an SM4-GCM payload cipher with a fresh key (one per database:
// every handle on it must share the key).
func sealer(t *testing.T) store.Sealer {
	c, err := certs.NewPayloadCipher(certs.NewPayloadKey())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The whole conformance suite again with the payload columns sealed: every
// payload must read back exactly as written.
func TestSQLiteConformanceSealed(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Opener {
		path, sl := filepath.Join(t.TempDir(), "tongban.db"), sealer(t)
		return func(t *testing.T) store.Store {
			t.Helper()
			s, err := store.OpenSQLite(context.Background(), path, store.WithPayloadSealer(sl))
			if err != nil {
				t.Fatalf("OpenSQLite: %v", err)
			}
			return s
		}
	})
}

func TestPostgresConformanceSealed(t *testing.T) {
	admin := pgtest.Admin(t) // skips when unreachable
	storetest.Run(t, func(t *testing.T) storetest.Opener {
		dsn, sl := pgtest.FreshSchema(t, admin), sealer(t)
		return func(t *testing.T) store.Store {
			t.Helper()
			s, err := store.OpenPostgres(context.Background(), dsn, store.WithPayloadSealer(sl))
			if err != nil {
				t.Fatalf("OpenPostgres: %v", err)
			}
			return s
		}
	})
}
