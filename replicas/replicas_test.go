package replicas

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/gateway/exchangelog"
	"github.com/tongban/tongban/gateway/store"
	"github.com/tongban/tongban/httpsig"
	"github.com/tongban/tongban/internal/pgtest"
	"github.com/tongban/tongban/sim"
)

// casesToSend is the size of the multi-replica run: 300 by default (make
// test, under the race detector), TONGBAN_REPLICAS_CASES for the full run
// (make replicas: 5000).
func casesToSend(t *testing.T) int {
	if v := os.Getenv("TONGBAN_REPLICAS_CASES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 6 {
			t.Fatalf("TONGBAN_REPLICAS_CASES=%q: want a number ≥ 6", v)
		}
		return n
	}
	return 300
}

// TestThreeReplicasLeaderKilled: three replicas on one PostgreSQL, both
// districts sending cases round-robin across them; a third of the way in
// the leader is killed with SIGKILL, two thirds in it is started again.
// Every case is accepted and delivered exactly once, the log holds one
// entry per event without gaps, another replica took over the signing,
// and an auditor's export from a follower verifies.
func TestThreeReplicasLeaderKilled(t *testing.T) {
	total := casesToSend(t)
	c := newCluster(t, clusterOptions{replicas: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	leader, err := c.oneLeader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	subs, err := c.cases(total)
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int64
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- submitAll(ctx, subs, 16, &accepted) }()

	// The leader dies a third of the way in, while cases arrive.
	waitCount(t, &accepted, int64(total/3), done)
	killedAt := time.Now()
	c.kill(leader)
	t.Logf("killed the leader, replica %d, after %d accepted cases", leader.n, accepted.Load())
	next, err := c.oneLeader(10 * time.Second)
	if err != nil {
		t.Fatalf("no new leader after the kill: %v", err)
	}
	t.Logf("replica %d leads %s after the kill", next.n, time.Since(killedAt).Round(time.Millisecond))
	if next == leader {
		t.Fatal("the killed replica still leads")
	}

	// It comes back two thirds in, as a follower that opens the log while
	// the new leader signs.
	waitCount(t, &accepted, int64(2*total/3), done)
	back, err := c.start(leader.n)
	if err != nil {
		t.Fatalf("restarting the killed replica: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	if ls, err := c.leaders(); err != nil || len(ls) != 1 || ls[0] != next {
		t.Errorf("after the restart the leaders are %v (%v), want only replica %d", ls, err, next.n)
	}
	c.lb.mu.Lock()
	t.Logf("%d cases accepted in %s (%.0f/s) through %d replicas; requests per replica address: %v",
		total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), len(c.lb.served), c.lb.served)
	c.lb.mu.Unlock()
	if c.lb.servedBy(back.addr) == 0 {
		t.Error("the restarted replica got no requests")
	}

	// Receipts: one exchange per case, none twice.
	resent, retried := 0, 0
	byExchange := map[string]*submission{}
	for _, s := range subs {
		if s.attempts > 1 {
			retried++
		}
		if s.receipt == nil {
			t.Fatalf("case %s has no receipt", s.caseNo)
		}
		if s.status == http.StatusOK {
			resent++
		}
		if prev, dup := byExchange[s.receipt.ExchangeID]; dup {
			t.Fatalf("cases %s and %s got the same exchange %s", prev.caseNo, s.caseNo, s.receipt.ExchangeID)
		}
		byExchange[s.receipt.ExchangeID] = s
	}
	t.Logf("%d cases were sent more than once (no answer from the killed replica); %d of them had been accepted by it and were answered 200 with their first receipt", retried, resent)

	// Every accepted case delivered, exactly once, to the other district.
	st := c.inspect
	deadline := time.Now().Add(3 * time.Minute)
	for {
		ds, err := st.Deliveries(ctx, store.StateDelivered, total+1)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == total {
			break
		}
		if time.Now().After(deadline) {
			pending, _ := st.Deliveries(ctx, "", 5)
			t.Fatalf("%d of %d cases delivered; e.g. %+v", len(ds), total, pending)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if all, _ := st.Deliveries(ctx, "", 2*total); len(all) != total {
		t.Errorf("%d deliveries in the store, want %d", len(all), total)
	}
	repeats := 0
	for _, p := range []struct{ to, from *sim.Partner }{{c.nanhai, c.liwan}, {c.liwan, c.nanhai}} {
		if dups := p.to.Duplicates(); len(dups) > 0 {
			t.Errorf("district %s received cases twice: %v", p.to.Division(), dups)
		}
		got := map[string]bool{}
		for _, r := range p.to.Received() {
			if r.Kind != sim.KindCase || r.Case == nil || r.Case.Origin == nil || !r.Accepted {
				t.Errorf("district %s took in %+v", p.to.Division(), r)
				continue
			}
			got[r.Case.Origin.CaseNo] = true
			if n := p.to.Requests(r.IdempotencyKey); n > 1 {
				repeats += n - 1
			}
		}
		want := 0
		for _, s := range subs {
			if s.from == p.from {
				want++
				if !got[s.caseNo] {
					t.Errorf("case %s from %s never reached %s", s.caseNo, p.from.Division(), p.to.Division())
				}
			}
		}
		if len(got) != want {
			t.Errorf("district %s took in %d cases, want %d", p.to.Division(), len(got), want)
		}
	}
	t.Logf("%d deliveries were repeated under the same Idempotency-Key (taken over after the kill) and answered with the first acknowledgement", repeats)

	// The log: one exchange and one delivered entry per case, indexes
	// 0..size-1, the receipts pointing at their entries.
	size := waitCheckpointCovers(t, st)
	if want := uint64(2 * total); size != want {
		t.Errorf("log of %d entries, want %d (an exchange and a delivered entry per case)", size, want)
	}
	checkLog(t, st, size, byExchange)

	// Checkpoints were signed after the kill too (by the new leader).
	cps, err := st.Checkpoints(ctx, 0, size)
	if err != nil {
		t.Fatal(err)
	}
	var afterKill int
	for i, cp := range cps {
		if i > 0 && cp.Size <= cps[i-1].Size {
			t.Errorf("checkpoint sizes out of order: %d after %d", cp.Size, cps[i-1].Size)
		}
		if cp.Time.After(killedAt) {
			afterKill++
		}
	}
	if afterKill == 0 {
		t.Error("no checkpoint signed after the leader was killed")
	}
	t.Logf("%d checkpoints, %d of them signed after the kill", len(cps), afterKill)

	// An auditor exports the whole log from a follower and verifies it
	// offline, with the log key given out of band.
	var follower *replica
	for _, r := range c.live() {
		if r != next {
			follower = r
			break
		}
	}
	status, tarball, err := c.get(follower.addr, fmt.Sprintf("/audit/v1/export?from=0&to=%d", time.Now().Add(time.Minute).Unix()), c.pki.Auditor)
	if err != nil || status != http.StatusOK {
		t.Fatalf("export from replica %d: HTTP %d %v %.300s", follower.n, status, err, tarball)
	}
	if path := os.Getenv("TONGBAN_REPLICAS_EXPORT"); path != "" {
		if err := os.WriteFile(path, tarball, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path+".log.pem", certs.EncodeCertificatePEM(c.pki.Log.Certificate()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := exchangelog.VerifyBundle(bytes.NewReader(tarball), exchangelog.NewVerifyOptions().WithLogCertificates(c.pki.Log.Certificate()))
	if err != nil {
		t.Fatalf("audit verify: %v", err)
	}
	if sum.Entries != int(size) || sum.TreeSize != size || sum.ByKind["exchange"] != total || sum.ByKind["delivered"] != total || sum.Exchanges != total {
		t.Errorf("export summary:\n%s", sum)
	}
	t.Logf("export verified:\n%s", sum)
}

func waitCount(t *testing.T, n *atomic.Int64, want int64, done chan error) {
	t.Helper()
	for n.Load() < want {
		select {
		case err := <-done:
			t.Fatalf("submissions ended early (%d accepted): %v", n.Load(), err)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// waitCheckpointCovers waits until the latest checkpoint covers the whole
// log and returns the log's size.
func waitCheckpointCovers(t *testing.T, st store.Store) uint64 {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		size, err := st.LogSize(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cp, err := st.LatestCheckpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if cp != nil && cp.Size == size {
			return size
		}
		if time.Now().After(deadline) {
			t.Fatalf("log of %d entries, latest checkpoint %+v", size, cp)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkLog reads the whole log: indexes without gaps, each entry's leaf
// hash its bytes', exactly one exchange entry per accepted case (at the
// index and leaf hash of its receipt) and exactly one delivered entry per
// exchange, pointing at it.
func checkLog(t *testing.T, st store.Store, size uint64, byExchange map[string]*submission) {
	t.Helper()
	ctx := context.Background()
	exchangeAt := map[string]uint64{}
	delivered := map[string]int{}
	var deliveredOf []struct {
		exchange string
		of       uint64
	}
	for start := uint64(0); start < size; start += 2000 {
		end := min(size, start+2000)
		es, err := st.Entries(ctx, start, end)
		if err != nil {
			t.Fatal(err)
		}
		if uint64(len(es)) != end-start {
			t.Fatalf("entries [%d, %d): %d returned", start, end, len(es))
		}
		for i, e := range es {
			if e.Index != start+uint64(i) {
				t.Fatalf("entry at position %d has index %d", start+uint64(i), e.Index)
			}
			if exchangelog.LeafHash(e.Bytes) != e.LeafHash {
				t.Fatalf("entry %d: leaf hash is not its bytes'", e.Index)
			}
			var body struct {
				Kind     string  `json:"kind"`
				Exchange string  `json:"exchange"`
				Of       *uint64 `json:"of"`
			}
			if err := json.Unmarshal(e.Bytes, &body); err != nil {
				t.Fatalf("entry %d: %v", e.Index, err)
			}
			switch body.Kind {
			case "exchange":
				if _, dup := exchangeAt[body.Exchange]; dup {
					t.Errorf("exchange %s logged twice", body.Exchange)
				}
				exchangeAt[body.Exchange] = e.Index
				s, ok := byExchange[body.Exchange]
				if !ok {
					t.Errorf("entry %d: exchange %s that no district was given a receipt for", e.Index, body.Exchange)
				} else if s.receipt.LogIndex != e.Index || s.receipt.LeafHash != fmt.Sprintf("%x", e.LeafHash) {
					t.Errorf("exchange %s: receipt says index %d leaf %s, log has %d %x", body.Exchange, s.receipt.LogIndex, s.receipt.LeafHash, e.Index, e.LeafHash)
				}
			case "delivered":
				delivered[body.Exchange]++
				if body.Of == nil {
					t.Errorf("entry %d: delivered without of", e.Index)
				} else {
					deliveredOf = append(deliveredOf, struct {
						exchange string
						of       uint64
					}{body.Exchange, *body.Of})
				}
			default:
				t.Errorf("entry %d: unexpected kind %q", e.Index, body.Kind)
			}
		}
	}
	if len(exchangeAt) != len(byExchange) {
		t.Errorf("%d exchange entries for %d accepted cases", len(exchangeAt), len(byExchange))
	}
	for id, n := range delivered {
		if n != 1 {
			t.Errorf("exchange %s has %d delivered entries", id, n)
		}
	}
	if len(delivered) != len(byExchange) {
		t.Errorf("%d exchanges delivered, %d accepted", len(delivered), len(byExchange))
	}
	for _, d := range deliveredOf {
		if at, ok := exchangeAt[d.exchange]; !ok || at != d.of {
			t.Errorf("delivered entry of exchange %s points at %d, its exchange entry is at %d", d.exchange, d.of, at)
		}
	}
}

// TestReplayToAnotherReplica: a signed request accepted by one replica and
// replayed, byte for byte, to another is refused there as replayed (the
// nonce is in the shared store); the same case signed anew and sent to the
// other replica gets the first receipt again (the idempotency record is
// shared too).
func TestReplayToAnotherReplica(t *testing.T) {
	c := newCluster(t, clusterOptions{replicas: 2})
	rs := c.live()
	a, b := rs[0], rs[1]
	body, caseNo, err := c.nanhai.NextCase(sim.SampleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	signed := func() *http.Request {
		req, err := http.NewRequest(http.MethodPost, publicURL+"/v1/exchanges", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", c.nanhai.Codec().ContentType())
		if _, err := httpsig.SignRequest(req, body, c.pki.Nanhai); err != nil {
			t.Fatal(err)
		}
		return req
	}
	withBody := func(req *http.Request) *http.Request {
		r := req.Clone(context.Background())
		r.Body = http.NoBody
		if len(body) > 0 {
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
		}
		return r
	}
	first := signed()
	status, answer, err := c.send(a.addr, withBody(first))
	if err != nil || status != http.StatusAccepted {
		t.Fatalf("replica %d: HTTP %d %v %s", a.n, status, err, answer)
	}
	var receipt sim.Receipt
	if err := json.Unmarshal(answer, &receipt); err != nil {
		t.Fatal(err)
	}

	// The same signed request, replayed to the other replica.
	status, answer, err = c.send(b.addr, withBody(first))
	if err != nil || status != http.StatusUnauthorized || problemCode(answer) != "replayed" {
		t.Fatalf("replay to replica %d: HTTP %d %v %s, want 401 replayed", b.n, status, err, answer)
	}
	// And to the same one.
	status, answer, _ = c.send(a.addr, withBody(first))
	if status != http.StatusUnauthorized || problemCode(answer) != "replayed" {
		t.Fatalf("replay to replica %d: HTTP %d %s, want 401 replayed", a.n, status, answer)
	}

	// The case signed anew (the district resends it): the other replica
	// finds the first acceptance.
	status, answer, err = c.send(b.addr, withBody(signed()))
	if err != nil || status != http.StatusOK {
		t.Fatalf("resend of case %s to replica %d: HTTP %d %v %s, want 200", caseNo, b.n, status, err, answer)
	}
	var again sim.Receipt
	if err := json.Unmarshal(answer, &again); err != nil {
		t.Fatal(err)
	}
	if again.ExchangeID != receipt.ExchangeID || again.LogIndex != receipt.LogIndex || again.LeafHash != receipt.LeafHash {
		t.Errorf("resend answered %+v, first receipt %+v", again, receipt)
	}
	// One exchange entry; the delivery to Liwan may have added its
	// delivered entry, nothing else is logged.
	ctx := context.Background()
	n, err := c.inspect.LogSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	es, err := c.inspect.Entries(ctx, 0, n)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, e := range es {
		kinds[e.Kind]++
	}
	if kinds["exchange"] != 1 || len(es) != kinds["exchange"]+kinds["delivered"] {
		t.Errorf("log after one case, two replays and a resend: %v", kinds)
	}
}

func problemCode(b []byte) string {
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(b, &p)
	return p.Code
}

// TestPostgresReachable passes when the PostgreSQL suite can run, and is
// skipped (failed with TONGBAN_REQUIRE_POSTGRES=1) when it cannot; `make
// test` reports from it whether the PostgreSQL suite ran.
func TestPostgresReachable(t *testing.T) {
	pgtest.Require(t)
}
