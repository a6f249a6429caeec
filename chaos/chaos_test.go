// Package chaos kills the real `tongban serve` binary with SIGKILL at
// random moments under load, restarts it, and proves at the end that no
// accepted case or status update was lost or delivered twice (issue 10,
// part 1; docs/reliability.md).
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
	"encoding/hex"
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
	// numbers holds the case numbers the owning districts' simulators
	// assigned, by exchange id (the Idempotency-Key of the delivery).
	numbers map[string]string
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

	// Status updates, for the cases chosen to get them (withStatuses):
	// sent by the owning district (to) under its own number targetNo.
	withStatuses bool
	targetNo     string
	statuses     []*statusSent // in the order sent, each once answered
	afterFinal   *statusSent   // one more after APPROVED: must be refused
}

// statusFlow is what the owning district sends for a delivered case; the
// last is terminal.
var statusFlow = []adapters.State{adapters.Accepted, adapters.InReview, adapters.Approved}

// statusSent is what the load generator knows of one status update.
type statusSent struct {
	state      adapters.State
	body       []byte // the bytes sent, the same on every resend
	status     int    // the final answer
	code       string // the problem code of a refusal
	receipt    *sim.Receipt
	unanswered int   // attempts that got no answer (killed mid-flight)
	answers    []int // every status received
	// resendStatus is the answer to a deliberate resend after the first
	// answer (0: not resent), and resendReceipt its receipt.
	resendStatus  int
	resendReceipt *sim.Receipt
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
	// Cases chosen for status updates go to the status workers, which wait
	// for the delivery and then send the owning district's updates.
	flows := make(chan *outcome, 1<<16)
	var wg, statusWG sync.WaitGroup
	for w := range load {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.drive(ctx, w, flows)
		}()
		statusWG.Add(1)
		go func() {
			defer statusWG.Done()
			for o := range flows {
				r.sendStatuses(o)
			}
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
	close(flows)
	statusWG.Wait() // every chosen case's statuses sent and answered
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
	r := &run{t: t, dir: t.TempDir(), cases: map[string]*outcome{}, numbers: map[string]string{}}
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
		// The simulator's own record of each case it took in and numbered.
		numbered := func(rc sim.Received) {
			if rc.Kind == sim.KindCase && rc.Accepted {
				r.mu.Lock()
				r.numbers[rc.IdempotencyKey] = rc.CaseNo
				r.mu.Unlock()
			}
		}
		p, err := sim.New(sim.Options{Division: division, Signer: signer, Trust: r.pki.TrustStore(), PublicURL: u,
			HTTPClient: r.client, Logger: quiet, OnReceive: numbered})
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
// gets one. Every third accepted case goes to flows for status updates.
func (r *run) drive(ctx context.Context, worker int, flows chan<- *outcome) {
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
		if o.valid && (o.status == http.StatusAccepted || o.status == http.StatusOK) && i%3 == 0 {
			r.mu.Lock()
			o.withStatuses = true
			r.mu.Unlock()
			flows <- o
		}
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

// sendStatuses waits until the owning district's simulator has numbered
// the case and the gateway knows that number, then sends the status flow
// from the owning district, each update resent with the same bytes until it
// is answered; every fourth case resends its second update once more after
// its answer. Last, one update after the terminal state, which must be
// refused.
func (r *run) sendStatuses(o *outcome) {
	t := r.t
	deadline := time.Now().Add(2 * time.Minute)
	var no string
	for {
		r.mu.Lock()
		no = r.numbers[o.exchangeID]
		r.mu.Unlock()
		if no != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("case %s/%s (exchange %s) not numbered by %s within 2 min", o.from, o.caseNo, o.exchangeID, o.to.Division())
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The simulator numbers the case before the gateway records its
	// acknowledgement (a kill may even come in between, and the delivery is
	// retried): until then the gateway does not know the number.
	for {
		resp, err := o.to.Track(context.Background(), r.url, no)
		if err == nil && resp.Status == http.StatusOK {
			var view struct {
				ExchangeID string `json:"exchangeId"`
				From, To   struct {
					CaseNo string `json:"caseNo"`
				}
			}
			if err := json.Unmarshal(resp.Body, &view); err != nil {
				t.Errorf("case %s: exchange view: %v", o.caseNo, err)
				return
			}
			if view.ExchangeID != o.exchangeID || view.From.CaseNo != o.caseNo || view.To.CaseNo != no {
				t.Errorf("case %s: the view of %s is %+v, want exchange %s, %s -> %s", o.caseNo, no, view, o.exchangeID, o.caseNo, no)
				return
			}
			break
		}
		if err == nil && resp.Status != http.StatusNotFound {
			t.Errorf("case %s: GET /v1/cases/%s: %d %s", o.caseNo, no, resp.Status, resp.Body)
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("case %s: the gateway does not know %s's number %s within 2 min", o.caseNo, o.to.Division(), no)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.mu.Lock()
	o.targetNo = no
	r.mu.Unlock()
	resend := rand.IntN(4) == 0
	for i, state := range statusFlow {
		body, err := o.to.SampleStatus(no, state, time.Time{})
		if err != nil {
			t.Error(err)
			return
		}
		s := &statusSent{state: state, body: body}
		r.mu.Lock()
		o.statuses = append(o.statuses, s)
		r.mu.Unlock()
		if !r.sendStatus(o, s) {
			return
		}
		if s.status != http.StatusAccepted && s.status != http.StatusOK {
			return // check reports it
		}
		if i == 1 && resend {
			again := &statusSent{body: body}
			if !r.sendStatus(o, again) {
				return
			}
			r.mu.Lock()
			s.resendStatus, s.resendReceipt = again.status, again.receipt
			s.unanswered += again.unanswered
			r.mu.Unlock()
		}
	}
	// Nothing after the terminal state: a state not sent before, so that
	// the body is new.
	body, err := o.to.SampleStatus(no, adapters.SupplementRequested, time.Time{})
	if err != nil {
		t.Error(err)
		return
	}
	s := &statusSent{state: adapters.SupplementRequested, body: body}
	r.mu.Lock()
	o.afterFinal = s
	r.mu.Unlock()
	r.sendStatus(o, s)
}

// sendStatus sends one status update of o from its owning district until
// it is answered, resending the same bytes (signed anew); false when the
// answer's receipt did not verify.
func (r *run) sendStatus(o *outcome, s *statusSent) bool {
	for {
		resp, err := o.to.SendStatus(context.Background(), r.url, s.body)
		if err != nil && resp == nil {
			r.mu.Lock()
			s.unanswered++
			r.mu.Unlock()
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if err != nil {
			r.t.Errorf("case %s status %s: %v", o.caseNo, s.state, err)
			return false
		}
		var problem struct {
			Code string `json:"code"`
		}
		if resp.Status >= 400 {
			_ = json.Unmarshal(resp.Body, &problem)
		}
		r.mu.Lock()
		s.answers = append(s.answers, resp.Status)
		s.status, s.receipt, s.code = resp.Status, resp.Receipt, problem.Code
		r.mu.Unlock()
		return true
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
	sf := r.checkStatuses(db)

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
	for k, v := range sf {
		figures[k] = v
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
	if sf["status_cases"] == 0 || sf["statuses_resolved_after_a_kill"] == 0 && os.Getenv("TONGBAN_CHAOS") == "long" {
		t.Errorf("the run proved little for statuses: %v", sf)
	}
}

// checkStatuses proves the guarantees for status updates and returns their
// figures: every update answered 202 or 200 is in the store (statuses of
// its exchange, in the order accepted, under the receipt's log index and
// leaf hash), has exactly one `status` entry in the log, and was delivered
// exactly once to the other district's simulator under
// `<exchange>.<n>`, in acceptance order; a 200 only answers a resend and
// carries the same receipt; nothing after APPROVED was accepted; the store,
// the log and the simulators hold no update no 202 or 200 answered.
func (r *run) checkStatuses(db *sql.DB) map[string]int {
	t := r.t
	type storedStatus struct {
		from, to, state string
		logIndex        uint64
		leafHash        string
	}
	inStore := map[string]map[int]storedStatus{} // by exchange id, then seq
	rows, err := db.Query(`SELECT exchange_id, seq, from_division, to_division, state, log_index, leaf_hash FROM statuses`)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for rows.Next() {
		var id string
		var seq int
		var st storedStatus
		var leaf []byte
		if err := rows.Scan(&id, &seq, &st.from, &st.to, &st.state, &st.logIndex, &leaf); err != nil {
			t.Fatal(err)
		}
		st.leafHash = hex.EncodeToString(leaf)
		if inStore[id] == nil {
			inStore[id] = map[int]storedStatus{}
		}
		inStore[id][seq] = st
		total++
	}
	rows.Close()
	type logged struct{ kind, exchangeID string }
	entries := map[uint64]logged{} // status entries by log index
	perExchange := map[string]int{}
	rows, err = db.Query(`SELECT idx, kind, exchange_id FROM log_entries WHERE kind = 'status'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var idx uint64
		var e logged
		if err := rows.Scan(&idx, &e.kind, &e.exchangeID); err != nil {
			t.Fatal(err)
		}
		entries[idx] = e
		perExchange[e.exchangeID]++
	}
	rows.Close()
	deliveries := map[string]string{} // state by exchange id + "." + seq
	rows, err = db.Query(`SELECT exchange_id, seq, state FROM deliveries WHERE seq > 0`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, state string
		var seq int
		if err := rows.Scan(&id, &seq, &state); err != nil {
			t.Fatal(err)
		}
		deliveries[id+"."+strconv.Itoa(seq)] = state
	}
	rows.Close()

	// What the simulators took in, by receiver division + "/" + key, with
	// the position of arrival.
	type arrival struct {
		rc  sim.Received
		pos int
	}
	received := map[string][]arrival{}
	statusRecords, statusDuplicates := 0, 0
	for _, p := range []*sim.Partner{r.nanhai, r.liwan} {
		for _, d := range p.Duplicates() { // reported by check too
			if strings.HasPrefix(d, sim.KindStatus+" ") {
				statusDuplicates++
			}
		}
		for i, rc := range p.Received() {
			if rc.Kind != sim.KindStatus {
				continue
			}
			statusRecords++
			k := p.Division() + "/" + rc.IdempotencyKey
			received[k] = append(received[k], arrival{rc, i})
		}
	}

	f := map[string]int{}
	for _, k := range []string{"status_cases", "status_updates_sent", "statuses_accepted", "statuses_accepted_on_resend_200",
		"statuses_resolved_after_a_kill", "status_cases_resolved_after_a_kill", "status_requests_unanswered_then_resent",
		"statuses_resent_after_their_answer", "refused_after_final_409"} {
		f[k] = 0 // every figure reported, 0 included
	}
	known := map[string]bool{} // exchange ids whose statuses the load generator sent
	for key, o := range r.cases {
		if !o.withStatuses {
			continue
		}
		f["status_cases"]++
		known[o.exchangeID] = true
		var accepted []*statusSent
		resolvedAfterKill := false
		for _, s := range append(append([]*statusSent(nil), o.statuses...), o.afterFinal) {
			if s == nil {
				continue
			}
			f["status_updates_sent"]++
			f["status_requests_unanswered_then_resent"] += s.unanswered
			if s.unanswered > 0 {
				resolvedAfterKill = true
			}
		}
		if resolvedAfterKill {
			f["status_cases_resolved_after_a_kill"]++
		}
		if len(o.statuses) != len(statusFlow) {
			t.Errorf("case %s: %d of %d status updates sent (an earlier one failed)", key, len(o.statuses), len(statusFlow))
		}
		for i, s := range o.statuses {
			switch s.status {
			case http.StatusAccepted, http.StatusOK:
			default:
				t.Errorf("case %s: status %s answered %d %s", key, s.state, s.status, s.code)
				continue
			}
			accepted = append(accepted, s)
			f["statuses_accepted"]++
			if s.unanswered > 0 {
				f["statuses_resolved_after_a_kill"]++
			}
			if s.status == http.StatusOK {
				f["statuses_accepted_on_resend_200"]++
				if s.unanswered == 0 {
					t.Errorf("case %s: status %s answered 200 (already accepted) though it was sent once", key, s.state)
				}
			}
			if s.resendStatus != 0 {
				f["statuses_resent_after_their_answer"]++
				if s.resendStatus != http.StatusOK || s.resendReceipt == nil || *s.resendReceipt != *s.receipt {
					t.Errorf("case %s: status %s resent after its answer: %d %+v, want 200 and the receipt %+v", key, s.state, s.resendStatus, s.resendReceipt, s.receipt)
				}
			}
			n := i + 1
			if s.receipt == nil || s.receipt.ExchangeID != o.exchangeID {
				t.Errorf("case %s: status %s receipt %+v, want exchange %s", key, s.state, s.receipt, o.exchangeID)
				continue
			}
			st, ok := inStore[o.exchangeID][n]
			if !ok || st.state != string(s.state) || st.from != o.to.Division() || st.to != o.from {
				t.Errorf("case %s: status %d (%s) in the store: %+v (found %v)", key, n, s.state, st, ok)
				continue
			}
			if s.receipt.LogIndex != st.logIndex || s.receipt.LeafHash != st.leafHash {
				t.Errorf("case %s: status %s: receipt at log index %d leaf %s, the store %d %s", key, s.state, s.receipt.LogIndex, s.receipt.LeafHash, st.logIndex, st.leafHash)
			}
			if e, ok := entries[st.logIndex]; !ok || e.exchangeID != o.exchangeID {
				t.Errorf("case %s: status %s: no status entry of the exchange at log index %d (%+v)", key, s.state, st.logIndex, e)
			}
			dk := o.exchangeID + "." + strconv.Itoa(n)
			if d := deliveries[dk]; d != "delivered" {
				t.Errorf("case %s: status %s: delivery %s is %q", key, s.state, dk, d)
			}
			got := received[o.from+"/"+dk]
			if len(got) != 1 || !got[0].rc.Accepted || got[0].rc.Status == nil ||
				got[0].rc.Status.State != s.state || got[0].rc.CaseNo != o.caseNo {
				t.Errorf("case %s: status %s: %d records at %s under %s (%+v)", key, s.state, len(got), o.from, dk, got)
				continue
			}
			if n > 1 {
				if prev := received[o.from+"/"+o.exchangeID+"."+strconv.Itoa(n-1)]; len(prev) == 1 && prev[0].pos > got[0].pos {
					t.Errorf("case %s: status %d delivered before status %d", key, n, n-1)
				}
			}
		}
		if len(inStore[o.exchangeID]) != len(accepted) {
			t.Errorf("case %s: %d statuses in the store, %d accepted", key, len(inStore[o.exchangeID]), len(accepted))
		}
		if perExchange[o.exchangeID] != len(accepted) {
			t.Errorf("case %s: %d status entries in the log, %d statuses accepted", key, perExchange[o.exchangeID], len(accepted))
		}
		if extra := received[o.from+"/"+o.exchangeID+"."+strconv.Itoa(len(accepted)+1)]; len(extra) != 0 {
			t.Errorf("case %s: %s received a status update %d no 202 answered", key, o.from, len(accepted)+1)
		}
		if s := o.afterFinal; s == nil {
			t.Errorf("case %s: no update sent after %s", key, statusFlow[len(statusFlow)-1])
		} else if s.status != http.StatusConflict || s.code != "invalid_transition" {
			t.Errorf("case %s: %s after %s answered %d %q, want 409 invalid_transition", key, s.state, statusFlow[len(statusFlow)-1], s.status, s.code)
		} else {
			f["refused_after_final_409"]++
		}
	}
	// Nothing in the store, the log or at the simulators that the load
	// generator did not send.
	for id := range inStore {
		if !known[id] {
			t.Errorf("the store holds statuses of exchange %s, for which none were sent", id)
		}
	}
	for id := range perExchange {
		if !known[id] {
			t.Errorf("the log holds status entries of exchange %s, for which none were sent", id)
		}
	}
	if statusRecords != f["statuses_accepted"] || total != f["statuses_accepted"] || len(entries) != f["statuses_accepted"] {
		t.Errorf("%d statuses accepted; %d in the store, %d status entries in the log, %d received by the simulators",
			f["statuses_accepted"], total, len(entries), statusRecords)
	}
	f["statuses_in_store"], f["status_entries_in_log"], f["statuses_received_by_simulators"] = total, len(entries), statusRecords
	f["status_duplicates_delivered"] = statusDuplicates
	return f
}
