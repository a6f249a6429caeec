package gateway

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/gateway/exchangelog"
	"github.com/tongban/tongban/gateway/store"
)

// TestKeyFileMode: a gateway, log or TLS key readable by group or others
// stops the gateway from starting.
func TestKeyFileMode(t *testing.T) {
	for _, key := range []string{"gateway.key", "log.key", "tls.key"} {
		t.Run(key, func(t *testing.T) {
			cfg := &Config{Data: t.TempDir()}
			if err := certs.InitDevPKI(filepath.Join(cfg.Data, "certs")); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(filepath.Join(cfg.Data, "certs", key), 0o640); err != nil {
				t.Fatal(err)
			}
			srv, err := NewServer(context.Background(), cfg, relQuiet())
			if err == nil {
				srv.Close()
				t.Fatal("started with a key of mode 0640")
			}
			if !errors.Is(err, ErrKeyFileMode) {
				t.Fatalf("error %v, want ErrKeyFileMode", err)
			}
		})
	}
}

// encryptKey writes key (PKCS#8 PEM) encrypted with pass by the OpenSSL
// CLI (PBES2, AES-256-CBC), mode 0600, in place.
func encryptKey(t *testing.T, key, pass string) {
	t.Helper()
	out := key + ".enc"
	cmd := exec.Command("openssl", "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", key, "-out", out, "-passout", "pass:"+pass)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("openssl: %v %s", err, b)
	}
	if err := os.Chmod(out, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(out, key); err != nil {
		t.Fatal(err)
	}
}

// TestEncryptedKeys: gateway and log keys encrypted with OpenSSL load with
// the passphrase from keys.passphrase_env or keys.passphrase_file, and
// not without it or with a wrong one.
func TestEncryptedKeys(t *testing.T) {
	dir := t.TempDir()
	certDir := filepath.Join(dir, "certs")
	if err := certs.InitDevPKI(certDir); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"gateway.key", "log.key"} {
		encryptKey(t, filepath.Join(certDir, k), "s3cret passphrase")
	}
	passFile := filepath.Join(dir, "pass")
	if err := os.WriteFile(passFile, []byte("s3cret passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TONGBAN_TEST_PASS", "s3cret passphrase")
	t.Setenv("TONGBAN_TEST_WRONG", "wrong")
	for _, c := range []struct {
		name     string
		env      string
		file     string
		startsOK bool
	}{
		{"env", "TONGBAN_TEST_PASS", "", true},
		{"file", "", passFile, true},
		{"none", "", "", false},
		{"wrong", "TONGBAN_TEST_WRONG", "", false},
		{"unset variable", "TONGBAN_TEST_UNSET", "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := &Config{Data: dir}
			cfg.Keys.PassphraseEnv, cfg.Keys.PassphraseFile = c.env, c.file
			srv, err := NewServer(context.Background(), cfg, relQuiet())
			if err == nil {
				defer srv.Close()
				if _, serr := srv.Gateway.Sign([]byte("x")); serr != nil {
					t.Fatal(serr)
				}
			}
			if (err == nil) != c.startsOK {
				t.Fatalf("NewServer: %v, want success %v", err, c.startsOK)
			}
		})
	}
}

// TestRotateKeys rotates the log key and then the gateway key of a
// gateway with traffic, and checks: a key_rotated entry each, naming the
// old and new key ids and the new certificate; checkpoints signed by the
// new log key afterwards; and an export of the whole log (old checkpoints
// by the old key, old deliveries by the old gateway key) verifying offline
// with both log certificates.
func TestRotateKeys(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	// The harness gives the simulators and a PKI; a gateway of our own in
	// dir, with a copy of that PKI, is stopped and started around the
	// rotations.
	e := newRelEnv(t)
	if err := os.CopyFS(filepath.Join(dir, "certs"), os.DirFS(filepath.Join(e.dir, "certs"))); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"ca.key", "gateway.key", "log.key", "nanhai.key", "liwan.key", "admin.key", "auditor.key", "tls.key"} {
		if err := os.Chmod(filepath.Join(dir, "certs", k), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	newCfg := func() *Config {
		cfg := &Config{Data: dir, Listen: addr}
		cfg.Log.CheckpointInterval = 50 * time.Millisecond
		cfg.Delivery.InitialBackoff = 50 * time.Millisecond
		if err := cfg.ApplyDefaults(); err != nil {
			t.Fatal(err)
		}
		cfg.Partners[0].Endpoint, cfg.Partners[1].Endpoint = e.nanhai.url, e.liwan.url
		return cfg
	}
	run := func(submit int) *Server {
		ctx, cancel := context.WithCancel(context.Background())
		srv, err := NewServer(ctx, newCfg(), relQuiet())
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- srv.Run(ctx, ln) }()
		for range submit {
			resp, err := e.nanhai.SendCase(ctx, srv.Config.PublicURL, e.nanhaiCase(t))
			if err != nil || resp.Status != http.StatusAccepted {
				t.Fatalf("case: %v %+v", err, resp)
			}
		}
		relWaitDelivered(t, srv)
		if err := srv.Log.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		return srv
	}
	first := run(2)
	oldLog, oldGateway := first.LogKey, first.Gateway

	rot, err := RotateKey(context.Background(), newCfg(), KeyRoleLog, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if rot.OldKeyID != oldLog.KeyID() || rot.NewKeyID == rot.OldKeyID {
		t.Fatalf("rotation %+v, old log key %s", rot, oldLog.KeyID())
	}
	// The retired key stays private.
	if fi, err := os.Stat(filepath.Join(rot.Retired, "log-"+rot.OldKeyID+".key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("retired key: %v %v", err, fi)
	}
	second := run(2)
	if second.LogKey.KeyID() != rot.NewKeyID {
		t.Fatalf("log key after the rotation %s, want %s", second.LogKey.KeyID(), rot.NewKeyID)
	}

	// The gateway key, within the dev PKI.
	rotGW, err := RotateKey(context.Background(), newCfg(), KeyRoleGateway, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if rotGW.OldKeyID != oldGateway.KeyID() {
		t.Fatalf("gateway rotation %+v", rotGW)
	}
	newGatewayCert, err := certs.LoadCertificate(filepath.Join(dir, "certs", "gateway.pem"))
	if err != nil {
		t.Fatal(err)
	}

	// Export everything from the store the stopped gateways left.
	ctx := context.Background()
	final, err := NewServer(ctx, newCfg(), relQuiet())
	if err != nil {
		t.Fatal(err)
	}
	defer final.Close()
	if err := final.Log.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	n, err := final.Store.LogSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := final.Store.Entries(ctx, 0, n)
	if err != nil {
		t.Fatal(err)
	}
	var rotations []exchangelog.KeyRotatedEntry
	for _, se := range entries {
		if se.Kind != exchangelog.KindKeyRotated {
			continue
		}
		var k exchangelog.KeyRotatedEntry
		if err := json.Unmarshal(se.Bytes, &k); err != nil {
			t.Fatal(err)
		}
		rotations = append(rotations, k)
	}
	if len(rotations) != 2 || rotations[0].Role != "log" || rotations[1].Role != "gateway" {
		t.Fatalf("key_rotated entries %+v", rotations)
	}
	der, _ := base64.StdEncoding.DecodeString(rotations[1].NewCertificate)
	if !bytes.Equal(der, newGatewayCert.Raw) || rotations[1].NewKeyID != certs.KeyID(newGatewayCert) {
		t.Error("the gateway key_rotated entry does not carry the new certificate")
	}

	var buf bytes.Buffer
	if err := final.Log.Export(ctx, &buf, time.Unix(0, 0), time.Now().Add(time.Hour), exchangelog.CertsFromTrustStore(final.Trust)); err != nil {
		t.Fatal(err)
	}
	sum, err := exchangelog.VerifyBundle(bytes.NewReader(buf.Bytes()), exchangelog.NewVerifyOptions().WithLogCertificates(oldLog.Certificate(), second.LogKey.Certificate()))
	if err != nil {
		t.Fatalf("export after two rotations: %v", err)
	}
	t.Logf("verified: %+v", sum)
	// Without the old log certificate the old checkpoints do not verify.
	if _, err := exchangelog.VerifyBundle(bytes.NewReader(buf.Bytes()), exchangelog.NewVerifyOptions().WithLogCertificates(second.LogKey.Certificate())); err == nil {
		t.Error("the export verified with the new log certificate alone")
	}
}

// relWaitDelivered waits until srv's outbox is empty of open deliveries.
func relWaitDelivered(t *testing.T, srv *Server) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ds, err := srv.Store.Deliveries(context.Background(), "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		open := 0
		for _, d := range ds {
			if d.State != store.StateDelivered {
				open++
			}
		}
		if open == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries open", open)
		}
	}
}
