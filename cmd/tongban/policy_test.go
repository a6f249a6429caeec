package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tongban/tongban/gateway"
	"github.com/tongban/tongban/policies"
	"github.com/tongban/tongban/sim"
)

// runCLI runs `tongban args...` and returns its exit code and output.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := dispatch(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// writeBundle writes the pilot bundle into dir, each file passed through
// edit (by bundle path).
func writeBundle(t *testing.T, dir string, edit func(path, content string) string) {
	t.Helper()
	for p, content := range policies.Pilot().Files() {
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, []byte(edit(p, string(content))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPolicyAdministrationCLI drives `tongban policy push|validate|
// simulate|activate|history|rollback` against a gateway served over HTTPS,
// signing with the dev PKI's administrator key.
func TestPolicyAdministrationCLI(t *testing.T) {
	data := t.TempDir()
	// serve listens itself: take a free port for it (the public URL partners
	// sign against must name the real one).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := &gateway.Config{Data: data, Listen: addr}
	if err := cfg.ApplyDefaults(); err != nil {
		t.Fatal(err)
	}
	for i := range cfg.Partners {
		cfg.Partners[i].Endpoint = "http://127.0.0.1:1" // nobody: deliveries wait
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	var served bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- serve(ctx, cfg, io.Discard, &served, func(*gateway.Server, string) { close(ready) })
	}()
	select {
	case <-ready:
	case code := <-done:
		cancel()
		t.Fatalf("serve exited %d: %s", code, served.String())
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("gateway did not start")
	}
	t.Cleanup(func() { cancel(); <-done })
	url := cfg.PublicURL
	certDir := filepath.Join(data, "certs")
	flags := []string{"--gateway", url, "--certs", certDir}
	admin := func(args ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, append(append([]string{"policy"}, args...), flags...)...)
	}

	// Past traffic: one physician registration from Liwan.
	liwan, err := newSimPartner(certDir, "liwan", "http://127.0.0.1:1", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	body, _, err := liwan.NextCase(sim.SampleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := liwan.SendCase(ctx, url, body); err != nil || resp.Status != 202 {
		t.Fatalf("physician case: %v %+v", err, resp)
	}

	// A draft with a failing test: validate names file and line, exit 1.
	broken := t.TempDir()
	writeBundle(t, broken, func(p, s string) string {
		if p == "tongban/crossdistrict_test.rego" {
			s += "\ntest_seven_days if {\n\tdecide(llc_case).promised_days == 7\n}\n"
		}
		return s
	})
	code, out, errOut := admin("push", broken)
	if code != 0 {
		t.Fatalf("push: exit %d: %s%s", code, out, errOut)
	}
	id := regexp.MustCompile(`(?m)^draft\s+(\S+)$`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("push printed no draft id: %s", out)
	}
	code, out, _ = admin("validate", id[1])
	if code != 1 || !strings.Contains(out, "tongban/crossdistrict_test.rego:") || !strings.Contains(out, "test_seven_days") || !strings.Contains(out, "FAIL") {
		t.Fatalf("validate of a failing draft: exit %d:\n%s", code, out)
	}
	if code, _, errOut = admin("activate", id[1]); code != 1 || !strings.Contains(errOut, "409 invalid_transition") {
		t.Fatalf("activate of a failing draft: exit %d: %s", code, errOut)
	}

	// A valid draft that disables the physician registration.
	dir := t.TempDir()
	writeBundle(t, dir, func(p, s string) string {
		switch p {
		case policies.CatalogPath:
			return strings.Replace(s, "\"department\": \"health\",\n      \"cross_district\": true", "\"department\": \"health\",\n      \"cross_district\": false", 1)
		case "tongban/crossdistrict_test.rego":
			s = strings.Replace(s, "\td.allow == true\n\td.mode == \"REMOTE_RECEIPT\"\n\td.target_impl_code == \"11440605MB2C32020N000114001000\"\n\td.promised_days == 20", "\tcodes(d) == [\"item_not_cross_district\"]", 1)
			return strings.Replace(s, "\t}\n\tcodes(decide(req)) == [\"no_mode_for_channel\"]", "\t}\n\tcodes(decide(req)) == [\"item_not_cross_district\"]", 1)
		}
		return s
	})
	code, out, errOut = admin("push", dir)
	id = regexp.MustCompile(`(?m)^draft\s+(\S+)$`).FindStringSubmatch(out)
	if code != 0 || id == nil {
		t.Fatalf("push: exit %d: %s%s", code, out, errOut)
	}
	rev := regexp.MustCompile(`(?m)^revision\s+([0-9a-f]{64})$`).FindStringSubmatch(out)
	if rev == nil {
		t.Fatalf("push printed no revision: %s", out)
	}
	if code, out, errOut = admin("validate", id[1]); code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("validate: exit %d: %s%s", code, out, errOut)
	}
	code, out, errOut = admin("simulate", id[1], "--n", "10")
	if code != 0 || !strings.Contains(out, "evaluated 1 past decisions: 1 would change (1 allow → deny") ||
		!regexp.MustCompile(`000114001000\s+440103 → 440605\s+COUNTER.*allow REMOTE_RECEIPT 20d\s+deny item_not_cross_district`).MatchString(out) {
		t.Fatalf("simulate: exit %d:\n%s%s", code, out, errOut)
	}
	pilot := policies.Pilot().Revision()
	code, out, errOut = admin("activate", id[1])
	if code != 0 || !strings.Contains(out, "active    "+rev[1]) || !strings.Contains(out, "previous  "+pilot) || !strings.Contains(out, "policy_activated") {
		t.Fatalf("activate: exit %d: %s%s", code, out, errOut)
	}
	code, out, _ = admin("history")
	if code != 0 || !regexp.MustCompile(`\*\s+`+rev[1]).MatchString(out) || !strings.Contains(out, pilot+"  (at start-up)") {
		t.Fatalf("history: exit %d:\n%s", code, out)
	}
	code, out, errOut = admin("rollback", pilot[:8])
	if code != 0 || !strings.Contains(out, "active    "+pilot) || !strings.Contains(out, "previous  "+rev[1]) {
		t.Fatalf("rollback: exit %d: %s%s", code, out, errOut)
	}
	if code, _, errOut = admin("rollback", "abcdef"); code != 1 || !strings.Contains(errOut, "no revision abcdef") {
		t.Fatalf("rollback to an unknown prefix: exit %d: %s", code, errOut)
	}

	// Another key than the administrator's is refused by the gateway.
	code, _, errOut = runCLI(t, "policy", "history", "--gateway", url, "--certs", certDir,
		"--key", filepath.Join(certDir, "auditor.key"), "--cert", filepath.Join(certDir, "auditor.pem"))
	if code != 1 || !strings.Contains(errOut, "403 forbidden") {
		t.Fatalf("history with the auditor key: exit %d: %s", code, errOut)
	}
}
