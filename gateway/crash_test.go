package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/tongban/tongban/gateway"
	"github.com/tongban/tongban/gateway/store"
)

// The crash test runs a gateway in a child process: this test binary run
// again with childEnv naming the data directory.
const (
	childEnv       = "TONGBAN_GATEWAY_TEST_CHILD"
	childNanhaiEnv = "TONGBAN_GATEWAY_TEST_NANHAI"
	childLiwanEnv  = "TONGBAN_GATEWAY_TEST_LIWAN"
)

// runChild serves a gateway on the data directory childEnv names until it
// is killed; its address is written to DIR/addr once it listens.
func runChild() int {
	dir := os.Getenv(childEnv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg, err := makeConfig(dir, ln.Addr().String(), os.Getenv(childNanhaiEnv), os.Getenv(childLiwanEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg.Delivery.Timeout = 500 * time.Millisecond // the default lease: a restarted SQLite gateway releases the dead claims itself
	srv, err := gateway.NewServer(context.Background(), cfg, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	tmp := filepath.Join(dir, "addr.tmp")
	if err := os.WriteFile(tmp, []byte(ln.Addr().String()), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := os.Rename(tmp, filepath.Join(dir, "addr")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := srv.Run(context.Background(), ln); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestCrashAfterAccepted kills (SIGKILL) a gateway process the moment it
// answered 202, reopens its SQLite file and finds the exchange, its log
// entry and its outbox row; a new gateway on the same data directory then
// delivers the case, once, and answers a resubmission with the same
// receipt.
func TestCrashAfterAccepted(t *testing.T) {
	t.Parallel()
	f := loadFixtures(t)["nanhai-llc-setup"]
	if f == nil {
		t.Fatal("sample nanhai-llc-setup missing")
	}
	e := newParts(t)
	e.liwan.Down(true) // nothing is delivered before the crash

	var out bytes.Buffer
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+e.dir, childNanhaiEnv+"="+e.nanhai.url, childLiwanEnv+"="+e.liwan.url)
	cmd.Stdout, cmd.Stderr = &out, &out
	mustOK(t, cmd.Start())
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	var addr []byte
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		b, err := os.ReadFile(filepath.Join(e.dir, "addr"))
		if err == nil {
			addr = b
			break
		}
		if time.Now().After(deadline) || cmd.ProcessState != nil {
			t.Fatalf("the child gateway did not start: %v\n%s", err, out.String())
		}
	}

	resp, err := e.nanhai.SendCase(context.Background(), "https://"+string(addr), f.Input)
	mustOK(t, cmd.Process.Kill())
	killed = true
	werr := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(werr, &exit) || exit.ExitCode() != -1 {
		t.Fatalf("the child was not killed: %v\n%s", werr, out.String())
	}
	send(t, "submit", resp, err, http.StatusAccepted)
	rc := resp.Receipt

	// What the killed process left on disk.
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite", filepath.Join(e.dir, "tongban.db"))
	mustOK(t, err)
	ex, err := st.GetExchange(ctx, rc.ExchangeID)
	if err != nil {
		t.Fatalf("the accepted exchange is lost: %v", err)
	}
	if !bytes.Equal(ex.Request, f.Input) || ex.LogIndex != rc.LogIndex || len(ex.Translated) == 0 {
		t.Errorf("stored exchange: log index %d (receipt %d), request %d bytes, translated %d bytes",
			ex.LogIndex, rc.LogIndex, len(ex.Request), len(ex.Translated))
	}
	entries, err := st.EntriesOfExchange(ctx, rc.ExchangeID)
	mustOK(t, err)
	if len(entries) == 0 || entries[0].Kind != "exchange" || entries[0].Index != rc.LogIndex {
		t.Fatalf("log entries of the exchange: %+v", entries)
	}
	if got := fmt.Sprintf("%x", entries[0].LeafHash); got != rc.LeafHash {
		t.Errorf("leaf hash %s, receipt %s", got, rc.LeafHash)
	}
	ds, err := st.DeliveriesOf(ctx, rc.ExchangeID)
	mustOK(t, err)
	if len(ds) != 1 || ds[0].Seq != 0 || ds[0].Kind != "case" || !bytes.Equal(ds[0].Payload, ex.Translated) {
		t.Fatalf("outbox rows of the exchange: %+v", ds)
	}
	switch ds[0].State {
	case store.StateQueued, store.StateDelivering, store.StateRetrying:
	default:
		t.Fatalf("outbox row in state %s", ds[0].State)
	}
	t.Logf("after the kill: outbox row %s, %d attempts", ds[0].State, ds[0].Attempts)
	mustOK(t, st.Close())

	// A new gateway on the same data directory delivers it (after the
	// killed worker's lease, if it had claimed it).
	e.liwan.Down(false)
	e.start(t)
	deadline := time.Now().Add(60 * time.Second)
	for {
		ex, err := e.srv.Store.GetExchange(ctx, rc.ExchangeID)
		mustOK(t, err)
		if ex.DeliveryState == store.StateDelivered {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not delivered after the restart: %s %s", ex.DeliveryState, ex.DeliveryDetail)
		}
		time.Sleep(50 * time.Millisecond)
	}
	got := received(t, e.liwan, rc.ExchangeID)
	if !bytes.Equal(got.Body, ex.Translated) || len(e.liwan.Received()) != 1 || len(e.liwan.Duplicates()) != 0 {
		t.Errorf("Liwan received %d records (duplicates %q)", len(e.liwan.Received()), e.liwan.Duplicates())
	}

	// The sender, unsure, sends it again: 200 and the same receipt.
	again, err := e.nanhai.SendCase(ctx, e.url, f.Input)
	send(t, "resubmit", again, err, http.StatusOK)
	if !bytes.Equal(again.Body, resp.Body) {
		t.Errorf("resubmission receipt\n%s\nwant\n%s", again.Body, resp.Body)
	}
}
