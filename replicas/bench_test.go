package replicas

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tongban/tongban/gateway/store"
	"github.com/tongban/tongban/internal/pgtest"
)

// benchWorkers is how many cases are in flight at once.
const benchWorkers = 24

var (
	benchMu      sync.Mutex
	benchCluster *cluster // the one running (a benchmark function runs more than once)
)

func closeBenchClusters() {
	benchMu.Lock()
	defer benchMu.Unlock()
	if benchCluster != nil {
		if err := benchCluster.close(); err != nil {
			fmt.Fprintln(os.Stderr, "closing the benchmark cluster:", err)
		}
		benchCluster = nil
	}
}

// clusterOf returns a running cluster of n replicas, stopping one of
// another size first (so that it does not take CPU from this one).
func clusterOf(b *testing.B, n int) *cluster {
	b.Helper()
	dsn := pgtest.Require(b)
	benchMu.Lock()
	c := benchCluster
	benchMu.Unlock()
	if c != nil && c.o.replicas == n {
		return c
	}
	closeBenchClusters()
	u, err := url.Parse(dsn)
	if err != nil {
		b.Fatal(err)
	}
	// Named, so that the benchmark can find its PostgreSQL backends.
	q := u.Query()
	q.Set("application_name", fmt.Sprintf("tongban-bench-%d", os.Getpid()))
	u.RawQuery = q.Encode()
	o := clusterOptions{replicas: n, forget: true}
	if dir := os.Getenv("TONGBAN_BENCH_PROFILE"); dir != "" {
		o.profileDir = fmt.Sprintf("%s/replicas-%d", dir, n)
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	c, err = startCluster(u.String(), o)
	if err != nil {
		if c != nil {
			c.close()
		}
		b.Fatal(err)
	}
	benchMu.Lock()
	benchCluster = c
	benchMu.Unlock()
	return c
}

// BenchmarkAcceptedExchanges measures accepted exchanges per second through
// 1, 2 and 3 replicas on one PostgreSQL, 24 cases in flight, deliveries to
// both districts running meanwhile. Besides exchanges/s it reports the time
// until the last case was delivered (delivered/s) and the CPU each side
// spent per exchange: the gateway replicas, PostgreSQL (this benchmark's
// backends and the server's own processes), and this process (the two
// districts: signing cases, checking receipts, verifying and
// acknowledging deliveries). Run it with a fixed count, e.g.
// -benchtime=2000x: Nanhai numbers at most 9,999 cases a day.
func BenchmarkAcceptedExchanges(b *testing.B) {
	for _, n := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			c := clusterOf(b, n)
			ctx := context.Background()
			if err := waitDrained(ctx, c); err != nil {
				b.Fatal(err)
			}
			subs, err := c.cases(b.N)
			if err != nil {
				b.Fatalf("%v (use a fixed -benchtime such as 2000x)", err)
			}
			before, err := c.cpu(ctx)
			if err != nil {
				b.Fatal(err)
			}
			var accepted atomic.Int64
			b.ResetTimer()
			start := time.Now()
			if err := submitAll(ctx, subs, benchWorkers, &accepted); err != nil {
				b.Fatal(err)
			}
			acceptedIn := time.Since(start)
			b.StopTimer()
			if err := waitDrained(ctx, c); err != nil {
				b.Fatal(err)
			}
			deliveredIn := time.Since(start)
			after, err := c.cpu(ctx)
			if err != nil {
				b.Fatal(err)
			}
			perOp := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
			b.ReportMetric(float64(b.N)/acceptedIn.Seconds(), "exchanges/s")
			b.ReportMetric(float64(b.N)/deliveredIn.Seconds(), "delivered/s")
			b.ReportMetric(perOp(after.gateway-before.gateway), "gw-cpu-ms/op")
			b.ReportMetric(perOp(after.postgres-before.postgres), "pg-cpu-ms/op")
			b.ReportMetric(perOp(after.districts-before.districts), "districts-cpu-ms/op")
		})
	}
}

// waitDrained waits until every delivery queued is delivered.
func waitDrained(ctx context.Context, c *cluster) error {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var left int
		for _, state := range []string{store.StateQueued, store.StateDelivering, store.StateRetrying} {
			ds, err := c.inspect.Deliveries(ctx, state, 1)
			if err != nil {
				return err
			}
			left += len(ds)
		}
		if left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("deliveries not drained in time")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cpuTimes is CPU time (user + system) spent so far by each side.
type cpuTimes struct{ gateway, postgres, districts time.Duration }

func (c *cluster) cpu(ctx context.Context) (cpuTimes, error) {
	var t cpuTimes
	for _, r := range c.live() {
		d, err := procCPU(r.cmd.Process.Pid)
		if err != nil {
			return t, err
		}
		t.gateway += d
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return t, err
	}
	t.districts = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	// This benchmark's backends (by application_name) and the server's
	// own processes (WAL writer, checkpointer, …). Backends that ended are
	// missed; pools keep theirs for minutes.
	rows, err := c.admin.Query(ctx, `SELECT pid FROM pg_stat_activity
		WHERE application_name = $1 OR backend_type <> 'client backend'`, fmt.Sprintf("tongban-bench-%d", os.Getpid()))
	if err != nil {
		return t, err
	}
	defer rows.Close()
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			return t, err
		}
		if d, err := procCPU(pid); err == nil { // a server elsewhere: not counted
			t.postgres += d
		}
	}
	return t, rows.Err()
}

// procCPU reads utime + stime of a process from /proc (clock ticks of
// 1/100 s on Linux).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}
