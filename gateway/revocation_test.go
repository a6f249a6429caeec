package gateway

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseRevocationList(t *testing.T) {
	good := "# revoked 2026-11-27\n\nkeyid " + string(bytes.Repeat([]byte("a"), 64)) + "\nserial 0a:1B:ff\nserial 1\n"
	ids, serials, err := ParseRevocationList([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || len(serials) != 2 || serials[0].Text(16) != "a1bff" || serials[1].Int64() != 1 {
		t.Fatalf("ids %v serials %v", ids, serials)
	}
	for _, bad := range []string{
		"keyid abc",
		"keyid " + string(bytes.Repeat([]byte("A"), 64)),
		"serial xyz",
		"serial 0",
		"serial -5",
		"fingerprint 12",
		"keyid",
	} {
		if _, _, err := ParseRevocationList([]byte(bad)); !errors.Is(err, ErrRevocationList) {
			t.Errorf("%q: error %v, want ErrRevocationList", bad, err)
		}
	}
}

// TestRevocationFileReload: revoking a partner certificate in the
// configured file (by key id or serial) refuses its requests as
// certificate_invalid within the reload interval, without a restart; a
// file that stops parsing leaves the last good list in force; emptying the
// file lets the partner in again. A file that does not parse at start
// stops the start.
func TestRevocationFileReload(t *testing.T) {
	var list string
	e := newRelEnv(t, func(tb testing.TB, e *relEnv) {
		list = filepath.Join(e.dir, "revoked.txt")
		if err := os.WriteFile(list, []byte("# nothing revoked\n"), 0o644); err != nil {
			tb.Fatal(err)
		}
		e.cfg.RevocationFile = list
		e.cfg.RevocationReload = 50 * time.Millisecond
	})
	lookup := func(who string) int {
		signer := e.pki.Nanhai
		if who == "liwan" {
			signer = e.pki.Liwan
		}
		req, _ := e.signedRequest(t, signer, http.MethodGet, "/v1/cases/440605202611279999", "", nil)
		return e.do(t, req).Status
	}
	write := func(s string) {
		t.Helper()
		// Replace by rename, as configuration management does.
		tmp := list + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, list); err != nil {
			t.Fatal(err)
		}
	}
	await := func(who string, status int) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for {
			got := lookup(who)
			if got == status {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: status %d, want %d", who, got, status)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	await("nanhai", http.StatusNotFound)
	write("keyid " + e.pki.Nanhai.KeyID() + "\n")
	await("nanhai", http.StatusUnauthorized)
	req, _ := e.signedRequest(t, e.pki.Nanhai, http.MethodPost, "/v1/exchanges", relXML, e.nanhaiCase(t))
	relCheckProblem(t, e.do(t, req), 401, "certificate_invalid")
	if lookup("liwan") != http.StatusNotFound {
		t.Fatal("liwan refused with only nanhai revoked")
	}

	write("this is not a revocation list\n")
	time.Sleep(300 * time.Millisecond)
	if got := lookup("nanhai"); got != http.StatusUnauthorized {
		t.Fatalf("a broken file lifted the revocation: %d", got)
	}
	if !bytes.Contains(e.procLog.Bytes(), []byte("revocation list not reloaded")) {
		t.Error("the broken file was not reported")
	}

	write("serial " + e.pki.Liwan.Certificate().SerialNumber.Text(16) + "\n")
	await("liwan", http.StatusUnauthorized)
	await("nanhai", http.StatusNotFound)
	write("")
	await("liwan", http.StatusNotFound)

	// At start, a broken file is an error.
	cfg := &Config{Data: t.TempDir(), RevocationFile: list}
	write("serial nope\n")
	if srv, err := NewServer(context.Background(), cfg, relQuiet()); err == nil {
		srv.Close()
		t.Fatal("started with a broken revocation list")
	} else if !errors.Is(err, ErrRevocationList) {
		t.Fatalf("error %v, want ErrRevocationList", err)
	}
}
