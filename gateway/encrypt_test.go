package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tongban/tongban/gateway"
	"github.com/tongban/tongban/gateway/store"
)

// withEncryptedStore seals the payload columns with SM4-GCM (store.encrypt).
func withEncryptedStore(_ testing.TB, cfg *gateway.Config) { cfg.Store.Encrypt = true }

// TestPayloadsEncryptedAtRest submits the samples both ways with
// store.encrypt on, and finds no ID number or mobile in the database files
// (main file and write-ahead log), while the gateway still delivers the
// records and reads them back. The same run without encryption finds them,
// so the search can fail.
func TestPayloadsEncryptedAtRest(t *testing.T) {
	t.Parallel()
	secrets := []string{
		"91440605MA4W00000A", "440605199001010014", "13800138000", // nanhai-llc-setup
		"440103198506150026", "13912345678", // liwan-physician
	}
	for _, encrypt := range []bool{true, false} {
		name := map[bool]string{true: "encrypted", false: "clear"}[encrypt]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var opts []envOption
			if encrypt {
				opts = append(opts, withEncryptedStore)
			}
			e := newEnv(t, opts...)
			ctx := context.Background()
			xml := sample(t, "nanhai-llc-setup", "case.xml")
			resp, err := e.nanhai.SendCase(ctx, e.url, xml)
			send(t, "nanhai case", resp, err, http.StatusAccepted)
			nhID := resp.Receipt.ExchangeID
			resp, err = e.liwan.SendCase(ctx, e.url, sample(t, "liwan-physician", "case.json"))
			send(t, "liwan case", resp, err, http.StatusAccepted)
			lwID := resp.Receipt.ExchangeID
			e.waitDelivered(t, nhID)
			e.waitDelivered(t, lwID)

			ex, err := e.srv.Store.GetExchange(ctx, nhID)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ex.Request, xml) {
				t.Fatal("the stored request does not read back as sent")
			}
			if got := received(t, e.liwan, nhID); !bytes.Equal(got.Body, ex.Translated) {
				t.Fatal("Liwan did not receive the stored translated record")
			}

			found := map[string]bool{}
			files, _ := filepath.Glob(filepath.Join(e.dir, "tongban.db*"))
			if len(files) == 0 {
				t.Fatal("no database files")
			}
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range secrets {
					if bytes.Contains(b, []byte(s)) {
						found[s] = true
					}
				}
			}
			if encrypt && len(found) > 0 {
				t.Fatalf("with store.encrypt the database files hold in clear: %v", keys(found))
			}
			if !encrypt && len(found) != len(secrets) {
				t.Fatalf("without encryption the search found only %v of %v: it could not fail", keys(found), secrets)
			}
			if encrypt {
				key, err := os.Stat(filepath.Join(e.dir, "payload.key"))
				if err != nil || key.Mode().Perm() != 0o600 {
					t.Fatalf("payload key file: %v, %v", key, err)
				}
			}
		})
	}
}

// TestEncryptedPayloadsNeedTheKey: a store opened without the payload key
// refuses to hand out sealed rows instead of returning ciphertext.
func TestEncryptedPayloadsNeedTheKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withEncryptedStore)
	ctx := context.Background()
	resp, err := e.nanhai.SendCase(ctx, e.url, sample(t, "nanhai-llc-setup", "case.xml"))
	send(t, "nanhai case", resp, err, http.StatusAccepted)
	st, err := store.OpenSQLite(ctx, filepath.Join(e.dir, "tongban.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.GetExchange(ctx, resp.Receipt.ExchangeID); !errors.Is(err, store.ErrSealed) {
		t.Fatalf("read without the key: %v, want ErrSealed", err)
	}
}

func keys(m map[string]bool) string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return strings.Join(out, ", ")
}

// sample reads a file of the committed copy of the shared samples.
func sample(tb testing.TB, name, file string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "fixtures", name, file))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
