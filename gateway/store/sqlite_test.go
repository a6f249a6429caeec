package store_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/tongban/tongban/gateway/store"
	"github.com/tongban/tongban/gateway/store/storetest"
)

func sqliteOpener(t *testing.T) storetest.Opener {
	path := filepath.Join(t.TempDir(), "tongban.db")
	return func(t *testing.T) store.Store {
		t.Helper()
		s, err := store.OpenSQLite(context.Background(), path)
		if err != nil {
			t.Fatalf("OpenSQLite: %v", err)
		}
		return s
	}
}

func TestSQLiteConformance(t *testing.T) {
	storetest.Run(t, sqliteOpener)
}
