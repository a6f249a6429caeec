// Package chaos kills the real `tongban serve` binary with SIGKILL at
// random moments under load, restarts it, and proves at the end that no
// accepted case was lost or delivered twice (issue 10, part 1;
// docs/reliability.md).
//
// `go test ./chaos` (and `-short`, as `make test` runs it) does a short
// run of a few kills in well under a minute; `make chaos` sets
// TONGBAN_CHAOS=long for the long run (TONGBAN_CHAOS_KILLS kills, default
// 25) and prints the figures docs/reliability.md quotes.
package chaos

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/httpsig"
	"github.com/tongban/tongban/sim"
)

// run is one chaos run: the gateway process, the simulated districts, the
// load and what each request came to.
type run struct {
	t       *testing.T
	dir     string
	bin     string
	cfgPath string
	addr    string
	url     string
	pki     *certs.DevPKI
	client  *http.Client
	nanhai  *sim.Partner
	liwan   *sim.Partner
	logFile *os.File

	mu     sync.Mutex
	proc   *exec.Cmd
	exited chan struct{}
	kills  int
	cases  map[string]*outcome // by sender division + "/" + case number
}

// outcome is what the load generator knows of one case it sent.
type outcome struct {
	from, caseNo string
	to           *sim.Partner
	exchangeID   string // from the verified receipt
	status       int    // the final answer: 202, 200 or the refusal
	valid        bool   // sent as a valid case (else spoiled: must be refused)
	unanswered   int    // attempts that got no answer (killed mid-flight)
	answers      []int  // every status received
}

func TestChaos(t *testing.T) {
	kills, load := 6, 3
	if os.Getenv("TONGBAN_CHAOS") == "long" {
		kills, load = 25, 4
		if n, err := strconv.Atoi(os.Getenv("TONGBAN_CHAOS_KILLS")); err == nil && n > 0 {
			kills = n
		}
	}
	phase := time.Now()
	r := newRun(t)
	t.Logf("built and set up in %v", time.Since(phase))
	r.start()
	ctx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range load {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.drive(ctx, w)
		}()
	}
	// Kill at random moments: 150 ms to 1.5 s after the gateway is ready,
	// so that some kills land in the middle of requests and deliveries.
	begin := time.Now()
	for r.kills < kills {
		time.Sleep(time.Duration(150+rand.IntN(1350)) * time.Millisecond)
		r.kill()
		r.start()
	}
	time.Sleep(time.Second) // load against the last process, then stop sending new cases
	stopLoad()
	wg.Wait()
	loadTook := time.Since(begin)
	phase = time.Now()
	r.waitDelivered(90 * time.Second)
	t.Logf("deliveries drained in %v", time.Since(phase))
	phase = time.Now()
	r.check(kills, loadTook)
	t.Logf("checked in %v", time.Since(phase))
	phase = time.Now()
	r.stop()
	t.Logf("stopped in %v", time.Since(phase))
}

func newRun(t *testing.T) *run {
	r := &run{t: t, dir: t.TempDir(), cases: map[string]*outcome{}}
	r.bin = filepath.Join(r.dir, "tongban")
	build := exec.Command("go", "build", "-o", r.bin, "github.com/tongban/tongban/cmd/tongban")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	data := filepath.Join(r.dir, "data")
	certDir := filepath.Join(data, "certs")
	if err := certs.InitDevPKI(certDir); err != nil {
		t.Fatal(err)
	}
	var err error
	if r.pki, err = certs.LoadDevPKI(certDir); err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(r.pki.TLSCert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	r.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, MaxIdleConnsPerHost: 16,
	}}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	partner := func(division string, signer *certs.Signer) (*sim.Partner, string) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		u := "http://" + ln.Addr().String()
		p, err := sim.New(sim.Options{Division: division, Signer: signer, Trust: r.pki.TrustStore(), PublicURL: u, HTTPClient: r.client, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}}
		srv.Start()
		t.Cleanup(srv.Close)
		return p, u
	}
	var nanhaiURL, liwanURL string
	r.nanhai, nanhaiURL = partner(adapters.DivisionNanhai, r.pki.Nanhai)
	r.liwan, liwanURL = partner(adapters.DivisionLiwan, r.pki.Liwan)

	// A fixed port, so that the URL partners sign stays the same across
	// restarts.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	ln.Close()
	r.url = "https://" + r.addr
	cfg := fmt.Sprintf(`listen: %q
data: %q
log:
  checkpoint_interval: 200ms
delivery:
  initial_backoff: 50ms
  max_backoff: 500ms
  timeout: 2s
  lease: 3s
limits:
  rate_per_s: 100000
  concurrency: 1000
partners:
  - {id: nanhai, division: "440605", endpoint: %q, certificates: [%q]}
  - {id: liwan, division: "440103", endpoint: %q, certificates: [%q]}
`, r.addr, data, nanhaiURL, filepath.Join(certDir, "nanhai.pem"), liwanURL, filepath.Join(certDir, "liwan.pem"))
	r.cfgPath = filepath.Join(r.dir, "tongban.yaml")
	if err := os.WriteFile(r.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if r.logFile, err = os.Create(filepath.Join(r.dir, "gateway.log")); err != nil {
		t.Fatal(err)
	}
	return r
}

// start runs `tongban serve` and waits until /readyz is green.
func (r *run) start() {
	r.t.Helper()
	cmd := exec.Command(r.bin, "serve", "--config", r.cfgPath)
	cmd.Stdout, cmd.Stderr = r.logFile, r.logFile
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	r.mu.Lock()
	r.proc, r.exited = cmd, exited
	r.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			r.t.Fatalf("tongban serve exited at start (kill %d); log:\n%s", r.kills, r.tail())
		default:
		}
		if resp, err := r.client.Get(r.url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("not ready after 30 s (kill %d); log:\n%s", r.kills, r.tail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill sends SIGKILL: no shutdown, no final checkpoint, no flush.
func (r *run) kill() {
	r.mu.Lock()
	cmd, exited := r.proc, r.exited
	r.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		r.t.Fatal(err)
	}
	<-exited
	r.kills++
}

// stop ends the last process gracefully.
func (r *run) stop() {
	r.mu.Lock()
	cmd, exited := r.proc, r.exited
	r.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		r.t.Error("tongban serve did not stop on SIGTERM within 30 s")
	}
}

func (r *run) tail() string {
	b, _ := os.ReadFile(r.logFile.Name())
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// drive sends cases until ctx ends, alternating the districts; every
// tenth case is spoiled (a mobile number no district allows) and must be
// refused. A case that gets no answer is sent again, signed anew, until it
// gets one.
func (r *run) drive(ctx context.Context, worker int) {
	for i := 0; ctx.Err() == nil; i++ {
		from, to := r.nanhai, r.liwan
		if (i+worker)%2 == 1 {
			from, to = r.liwan, r.nanhai
		}
		body, caseNo, err := from.NextCase(sim.SampleOptions{})
		if err != nil {
			r.t.Error(err)
			return
		}
		o := &outcome{from: from.Division(), caseNo: caseNo, to: to, valid: i%10 != 9}
		if !o.valid {
			body = spoil(r.t, from, body)
		}
		r.mu.Lock()
		r.cases[o.from+"/"+caseNo] = o
		r.mu.Unlock()
		r.send(from, o, body)
	}
}

// spoil makes a case invalid (422): its contact mobile starts with 2.
func spoil(t *testing.T, p *sim.Partner, body []byte) []byte {
	old, bad := []byte("13800138000"), []byte("23800138000")
	if p.Division() == adapters.DivisionLiwan {
		old, bad = []byte("+8613912345678"), []byte("+8623912345678")
	}
	if !bytes.Contains(body, old) {
		t.Errorf("no %s in the sample", old) // not Fatal: called from a load goroutine
	}
	return bytes.Replace(body, old, bad, 1)
}

// send sends one case until it is answered (without a deadline: the load
// generator's duty is to resolve every case it sent).
func (r *run) send(p *sim.Partner, o *outcome, body []byte) {
	for {
		resp, err := p.SendCase(context.Background(), r.url, body)
		if err != nil && resp == nil {
			o.unanswered++
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if err != nil {
			r.t.Errorf("case %s: %v", o.caseNo, err) // an answer whose receipt did not verify
			return
		}
		o.answers = append(o.answers, resp.Status)
		o.status = resp.Status
		if resp.Receipt != nil {
			o.exchangeID = resp.Receipt.ExchangeID
		}
		return
	}
}

// waitDelivered waits until no delivery is open in the store.
func (r *run) waitDelivered(limit time.Duration) {
	r.t.Helper()
	db := r.db()
	defer db.Close()
	deadline := time.Now().Add(limit)
	for {
		var open int
		if err := db.QueryRow(`SELECT COUNT(*) FROM deliveries WHERE state NOT IN ('delivered', 'refused', 'dead')`).Scan(&open); err != nil {
			r.t.Fatal(err)
		}
		if open == 0 {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%d deliveries still open after %v", open, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (r *run) db() *sql.DB {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(r.dir, "data", "tongban.db")+"?mode=ro")
	if err != nil {
		r.t.Fatal(err)
	}
	return db
}

// check proves the guarantees and reports the figures.
func (r *run) check(kills int, loadTook time.Duration) {
	t := r.t
	db := r.db()
	defer db.Close()

	type stored struct{ id, to, state, target string }
	inStore := map[string]stored{} // by from/source case number
	rows, err := db.Query(`SELECT e.id, e.from_division, e.source_case_no, e.to_division, d.state, e.target_case_no
		FROM exchanges e JOIN deliveries d ON d.exchange_id = e.id AND d.seq = 0`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, from, src, to, state, target string
		if err := rows.Scan(&id, &from, &src, &to, &state, &target); err != nil {
			t.Fatal(err)
		}
		if _, dup := inStore[from+"/"+src]; dup {
			t.Errorf("two exchanges for case %s/%s", from, src)
		}
		inStore[from+"/"+src] = stored{id, to, state, target}
	}
	rows.Close()
	logged := map[string]int{}
	rows, err = db.Query(`SELECT exchange_id FROM log_entries WHERE kind = 'exchange'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		logged[id]++
	}
	rows.Close()

	received := map[string][]sim.Received{} // by receiver division + idempotency key
	origins := map[string]int{}             // by origin division/case number
	for _, p := range []*sim.Partner{r.nanhai, r.liwan} {
		if d := p.Duplicates(); len(d) > 0 {
			t.Errorf("%s received duplicates: %v", p.Division(), d)
		}
		for _, rc := range p.Received() {
			received[p.Division()+"/"+rc.IdempotencyKey] = append(received[p.Division()+"/"+rc.IdempotencyKey], rc)
			if rc.Case != nil && rc.Case.Origin != nil {
				origins[rc.Case.Origin.Division+"/"+rc.Case.Origin.CaseNo]++
			}
		}
	}

	var accepted, replayed, refused, unanswered, resolvedAfterKill int
	for key, o := range r.cases {
		if o.unanswered > 0 {
			unanswered += o.unanswered
			resolvedAfterKill++
		}
		s, ok := inStore[key]
		switch {
		case o.status == http.StatusAccepted || o.status == http.StatusOK:
			if !o.valid {
				t.Errorf("spoiled case %s was accepted", key)
				continue
			}
			accepted++
			if o.status == http.StatusOK {
				replayed++
				if o.unanswered == 0 {
					t.Errorf("case %s answered 200 (already accepted) though it was sent once", key)
				}
			}
			if !ok || s.id != o.exchangeID {
				t.Errorf("accepted case %s (exchange %s) not in the store (%+v)", key, o.exchangeID, s)
				continue
			}
			if logged[o.exchangeID] != 1 {
				t.Errorf("accepted case %s has %d exchange entries in the log", key, logged[o.exchangeID])
			}
			if s.state != "delivered" {
				t.Errorf("accepted case %s: delivery %s", key, s.state)
			}
			if got := received[o.to.Division()+"/"+o.exchangeID]; len(got) != 1 || !got[0].Accepted {
				t.Errorf("accepted case %s: %d records at %s under its exchange id", key, len(got), o.to.Division())
			}
			if origins[key] != 1 {
				t.Errorf("accepted case %s delivered %d times", key, origins[key])
			}
		case o.status >= 400:
			refused++
			if o.valid {
				t.Errorf("valid case %s refused with %d", key, o.status)
			}
			if o.status != http.StatusUnprocessableEntity {
				t.Errorf("spoiled case %s answered %d, want 422", key, o.status)
			}
			if ok || origins[key] != 0 {
				t.Errorf("refused case %s is in the store or was delivered", key)
			}
		default:
			t.Errorf("case %s unresolved (status %d)", key, o.status)
		}
	}
	// Nothing in the store that the load generator does not know of.
	for key := range inStore {
		if o := r.cases[key]; o == nil || (o.status != http.StatusAccepted && o.status != http.StatusOK) {
			t.Errorf("the store holds case %s, which no 202 or 200 answered", key)
		}
	}
	duplicates := 0
	for _, n := range origins {
		if n > 1 {
			duplicates += n - 1
		}
	}

	// The whole log exported and verified offline by the real command.
	exportPath := filepath.Join(r.dir, "export.tar")
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/audit/v1/export?from=0&to=%d", r.url, time.Now().Add(time.Hour).Unix()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := httpsig.SignRequest(req, nil, r.pki.Auditor); err != nil {
		t.Fatal(err)
	}
	var export []byte
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		resp, err := r.client.Do(req.Clone(context.Background()))
		if err != nil {
			t.Fatal(err)
		}
		export, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("export: %d %s", resp.StatusCode, export)
		}
		if _, err := httpsig.SignRequest(req, nil, r.pki.Auditor); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(exportPath, export, 0o600); err != nil {
		t.Fatal(err)
	}
	verify := exec.Command(r.bin, "audit", "verify", "--log-key", filepath.Join(r.dir, "data", "certs", "log.pem"), exportPath)
	out, verifyErr := verify.CombinedOutput()
	if verifyErr != nil {
		t.Errorf("tongban audit verify: %v\n%s", verifyErr, out)
	}
	resp, err := r.client.Get(r.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz %d at the end", resp.StatusCode)
	}

	figures := map[string]any{
		"kills": r.kills, "load_seconds": int(loadTook.Seconds()), "cases_sent": len(r.cases),
		"accepted": accepted, "accepted_on_resend_200": replayed, "refused_422": refused,
		"requests_unanswered_then_resent": unanswered, "cases_resolved_after_a_kill": resolvedAfterKill,
		"exchanges_in_store": len(inStore), "duplicates_delivered": duplicates, "audit_verify_passed": verifyErr == nil,
	}
	b, _ := json.Marshal(figures)
	t.Logf("chaos figures: %s", b)
	t.Logf("audit verify:\n%s", strings.TrimSpace(string(out)))
	if path := os.Getenv("TONGBAN_CHAOS_REPORT"); path != "" {
		_ = os.WriteFile(path, append(b, '\n'), 0o644)
	}
	if r.kills < kills {
		t.Errorf("%d kills, want %d", r.kills, kills)
	}
	if accepted == 0 || resolvedAfterKill == 0 && os.Getenv("TONGBAN_CHAOS") == "long" {
		t.Errorf("the run proved little: %d accepted, %d cases resolved after a kill", accepted, resolvedAfterKill)
	}
}
