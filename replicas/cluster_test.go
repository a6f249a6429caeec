package replicas

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"gopkg.in/yaml.v3"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/gateway"
	"github.com/tongban/tongban/gateway/store"
	"github.com/tongban/tongban/httpsig"
	"github.com/tongban/tongban/internal/pgtest"
	"github.com/tongban/tongban/sim"
)

// publicURL is the one base URL every replica is configured with, as
// behind a load balancer: partners sign @target-uri against it, whichever
// replica the balancer picks.
const publicURL = "https://tongban.test"

type clusterOptions struct {
	replicas int
	// maxConns is each replica's store pool (0: the default).
	maxConns int
	// forget makes the simulated districts keep no record of what they
	// received (long benchmark runs).
	forget bool
	// profileDir, when set, makes each replica write a CPU profile there.
	profileDir string
}

// cluster is one PostgreSQL schema, one dev PKI, both simulated districts,
// a balancer, and replica processes.
type cluster struct {
	o      clusterOptions
	dir    string // removed by close
	dsn    string // with search_path set to the cluster's schema
	schema string
	admin  *pgx.Conn
	pki    *certs.DevPKI
	pool   *x509.CertPool // trusts the replicas' TLS certificate

	nanhai, liwan *sim.Partner
	simServers    []*http.Server
	lb            *balancer

	mu       sync.Mutex
	replicas []*replica // every replica started, live or not
	inspect  store.Store
}

// replica is one gateway process.
type replica struct {
	n       int
	addr    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	err     error // Wait's, once exited is closed
}

func (r *replica) alive() bool {
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

// newCluster starts a cluster for a test; it is closed when the test ends.
func newCluster(t *testing.T, o clusterOptions) *cluster {
	t.Helper()
	dsn := pgtest.Require(t)
	c, err := startCluster(dsn, o)
	if c != nil {
		t.Cleanup(func() {
			if t.Failed() {
				c.dumpLogs(t)
			}
			if err := c.close(); err != nil {
				t.Errorf("closing the cluster: %v", err)
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func startCluster(dsn string, o clusterOptions) (c *cluster, err error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "tongban-replicas-")
	if err != nil {
		return nil, err
	}
	c = &cluster{o: o, dir: dir}
	if c.admin, err = pgx.Connect(ctx, dsn); err != nil {
		return c, err
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	c.schema = "tongban_replicas_" + hex.EncodeToString(b[:])
	if _, err := c.admin.Exec(ctx, "CREATE SCHEMA "+c.schema); err != nil {
		return c, err
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return c, fmt.Errorf("TONGBAN_TEST_POSTGRES must be a URL here: %w", err)
	}
	q := u.Query()
	q.Set("search_path", c.schema)
	u.RawQuery = q.Encode()
	c.dsn = u.String()

	// One dev PKI for all: every replica signs with the same gateway and
	// log keys and serves the same TLS certificate.
	pkiDir := filepath.Join(dir, "pki")
	if err := certs.InitDevPKI(pkiDir); err != nil {
		return c, err
	}
	if c.pki, err = certs.LoadDevPKI(pkiDir); err != nil {
		return c, err
	}
	pem, err := os.ReadFile(c.pki.TLSCert)
	if err != nil {
		return c, err
	}
	c.pool = x509.NewCertPool()
	c.pool.AppendCertsFromPEM(pem)
	c.lb = newBalancer(c.pool)

	endpoints := map[string]string{}
	for _, p := range []struct {
		dst    **sim.Partner
		div    string
		signer *certs.Signer
	}{{&c.nanhai, adapters.DivisionNanhai, c.pki.Nanhai}, {&c.liwan, adapters.DivisionLiwan, c.pki.Liwan}} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return c, err
		}
		endpoints[p.div] = "http://" + ln.Addr().String()
		if *p.dst, err = sim.New(sim.Options{
			Division: p.div, Signer: p.signer, Trust: c.pki.TrustStore(), PublicURL: endpoints[p.div],
			HTTPClient: &http.Client{Transport: c.lb, Timeout: 30 * time.Second}, Forget: o.forget,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		}); err != nil {
			ln.Close()
			return c, err
		}
		srv := &http.Server{Handler: *p.dst, ReadHeaderTimeout: 10 * time.Second}
		c.simServers = append(c.simServers, srv)
		go func() { _ = srv.Serve(ln) }()
	}
	for i := range o.replicas {
		if err := c.writeConfig(i, endpoints); err != nil {
			return c, err
		}
	}
	// Start one first, so that it migrates the schema alone and leads;
	// then the others together.
	if _, err := c.start(0); err != nil {
		return c, err
	}
	errs := make(chan error, o.replicas)
	for i := 1; i < o.replicas; i++ {
		go func() { _, err := c.start(i); errs <- err }()
	}
	for i := 1; i < o.replicas; i++ {
		err = errors.Join(err, <-errs)
	}
	if err != nil {
		return c, err
	}
	if c.inspect, err = store.OpenPostgres(ctx, c.dsn, store.WithMaxConns(4)); err != nil {
		return c, err
	}
	return c, nil
}

// writeConfig writes replica i's configuration: its own data directory and
// port, everything else shared (database, PKI, public URL, partners).
func (c *cluster) writeConfig(i int, endpoints map[string]string) error {
	pki := func(name string) string { return filepath.Join(c.pki.Dir, name) }
	cfg := gateway.Config{
		Listen:    "127.0.0.1:0",
		PublicURL: publicURL,
		Data:      filepath.Join(c.dir, fmt.Sprintf("replica-%d", i)),
		Store:     gateway.StoreConfig{Driver: "postgres", DSN: c.dsn, MaxConns: c.o.maxConns},
		TLS:       gateway.KeyPair{Cert: pki("tls.pem"), Key: pki("tls.key")},
		Keys: gateway.KeysConfig{
			Gateway: gateway.KeyPair{Cert: pki("gateway.pem"), Key: pki("gateway.key")},
			Log:     gateway.KeyPair{Cert: pki("log.pem"), Key: pki("log.key")},
		},
		TrustAnchors: []string{pki("ca.pem")},
		Partners: []gateway.PartnerConfig{
			{ID: "nanhai", Division: adapters.DivisionNanhai, Endpoint: endpoints[adapters.DivisionNanhai], Certificates: []string{pki("nanhai.pem")}},
			{ID: "liwan", Division: adapters.DivisionLiwan, Endpoint: endpoints[adapters.DivisionLiwan], Certificates: []string{pki("liwan.pem")}},
		},
		Admins:   []string{pki("admin.pem")},
		Auditors: []string{pki("auditor.pem")},
		Log:      gateway.LogConfig{CheckpointInterval: 500 * time.Millisecond},
		// A killed replica's claimed deliveries are taken over after the
		// lease: short here, so the test does not wait half a minute.
		Delivery: gateway.DeliveryConfig{InitialBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second, Timeout: 5 * time.Second, Lease: 8 * time.Second, Concurrency: 8},
		// Limits are per replica; the load here is the test's, not abuse.
		Limits: gateway.LimitsConfig{RatePerS: 1e6, Concurrency: 1024},
	}
	b, err := yaml.Marshal(&cfg)
	if err != nil {
		return err
	}
	return os.WriteFile(c.configPath(i), b, 0o600)
}

func (c *cluster) configPath(i int) string {
	return filepath.Join(c.dir, fmt.Sprintf("replica-%d.yaml", i))
}

// start runs replica i (again, after a kill) and adds it to the balancer
// once it is ready.
func (c *cluster) start(i int) (*replica, error) {
	r := &replica{n: i, exited: make(chan struct{}), logPath: filepath.Join(c.dir, fmt.Sprintf("replica-%d.log", i))}
	logFile, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	r.cmd = exec.Command(os.Args[0], "-test.run=^$")
	r.cmd.Env = append(os.Environ(), envReplicaConfig+"="+c.configPath(i))
	if c.o.profileDir != "" {
		r.cmd.Env = append(r.cmd.Env, envReplicaProfile+"="+filepath.Join(c.o.profileDir, fmt.Sprintf("replica-%d.pprof", i)))
	}
	r.cmd.Stderr = logFile
	// Die with the test process, whatever kills it.
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := r.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := r.cmd.Start(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.replicas = append(c.replicas, r)
	c.mu.Unlock()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				addr <- a
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() { r.err = r.cmd.Wait(); close(r.exited) }()
	select {
	case r.addr = <-addr:
	case <-r.exited:
		return r, fmt.Errorf("replica %d exited at start (%v); log %s", i, r.err, r.logPath)
	case <-time.After(60 * time.Second):
		return r, fmt.Errorf("replica %d did not start in time; log %s", i, r.logPath)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, _, err := c.get(r.addr, "/readyz", nil)
		if err == nil && status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			return r, fmt.Errorf("replica %d not ready: HTTP %d %v", i, status, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.lb.add(r.addr)
	return r, nil
}

// kill ends a replica with SIGKILL, like a crash: no graceful shutdown, no
// final checkpoint, its claimed deliveries left leased; the balancer stops
// sending to it (its health check noticed).
func (c *cluster) kill(r *replica) {
	_ = r.cmd.Process.Kill()
	<-r.exited
	c.lb.remove(r.addr)
}

// live returns the replicas running.
func (c *cluster) live() []*replica {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*replica
	for _, r := range c.replicas {
		if r.alive() {
			out = append(out, r)
		}
	}
	return out
}

// leaders returns the live replicas whose /metrics say they lead.
func (c *cluster) leaders() ([]*replica, error) {
	var out []*replica
	for _, r := range c.live() {
		status, body, err := c.get(r.addr, "/metrics", nil)
		if err != nil || status != http.StatusOK {
			return nil, fmt.Errorf("replica %d metrics: HTTP %d %v", r.n, status, err)
		}
		if strings.Contains(string(body), "\ntongban_log_leader 1\n") {
			out = append(out, r)
		}
	}
	return out, nil
}

// oneLeader waits until exactly one live replica leads and returns it.
func (c *cluster) oneLeader(within time.Duration) (*replica, error) {
	deadline := time.Now().Add(within)
	for {
		ls, err := c.leaders()
		if err == nil && len(ls) == 1 {
			return ls[0], nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d leaders (%v) after %s", len(ls), err, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// get sends GET path to one replica, signed by signer when not nil.
func (c *cluster) get(addr, path string, signer *certs.Signer) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, publicURL+path, nil)
	if err != nil {
		return 0, nil, err
	}
	if signer != nil {
		if _, err := httpsig.SignRequest(req, nil, signer); err != nil {
			return 0, nil, err
		}
	}
	return c.send(addr, req)
}

// send sends req (addressed to the public URL) to the replica at addr.
func (c *cluster) send(addr string, req *http.Request) (int, []byte, error) {
	req.URL.Host = addr
	resp, err := c.lb.transport.RoundTrip(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// close stops every replica (SIGTERM, then SIGKILL), the districts, and
// drops the schema.
func (c *cluster) close() error {
	var errs []error
	for _, r := range c.live() {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
	}
	c.mu.Lock()
	all := append([]*replica(nil), c.replicas...)
	c.mu.Unlock()
	for _, r := range all {
		select {
		case <-r.exited:
		case <-time.After(40 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.exited
			errs = append(errs, fmt.Errorf("replica %d did not stop on SIGTERM", r.n))
		}
	}
	for _, s := range c.simServers {
		s.Close()
	}
	if c.lb != nil {
		c.lb.transport.CloseIdleConnections()
	}
	if c.inspect != nil {
		errs = append(errs, c.inspect.Close())
	}
	if c.admin != nil {
		ctx := context.Background()
		if c.schema != "" {
			if _, err := c.admin.Exec(ctx, "DROP SCHEMA "+c.schema+" CASCADE"); err != nil {
				errs = append(errs, err)
			}
		}
		errs = append(errs, c.admin.Close(ctx))
	}
	errs = append(errs, os.RemoveAll(c.dir))
	return errors.Join(errs...)
}

// dumpLogs shows the end of each replica's process log.
func (c *cluster) dumpLogs(tb testing.TB) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.replicas {
		b, _ := os.ReadFile(r.logPath)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		var errLines []string
		for _, l := range lines {
			if strings.Contains(l, `"level":"ERROR"`) || strings.Contains(l, `"level":"WARN"`) || !strings.HasPrefix(l, "{") {
				errLines = append(errLines, l)
			}
		}
		if len(errLines) > 20 {
			errLines = errLines[len(errLines)-20:]
		}
		tb.Logf("replica %d (%s, alive %v), warnings and errors:\n%s", r.n, r.addr, r.alive(), strings.Join(errLines, "\n"))
	}
}

// balancer is the load balancer in front of the replicas: each request to
// the public URL goes to the next replica in turn.
type balancer struct {
	transport *http.Transport
	mu        sync.Mutex
	backends  []string
	next      int
	served    map[string]int
}

func newBalancer(pool *x509.CertPool) *balancer {
	return &balancer{
		transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
		},
		served: map[string]int{},
	}
}

func (b *balancer) add(addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.backends = append(b.backends, addr)
}

func (b *balancer) remove(addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, a := range b.backends {
		if a == addr {
			b.backends = append(b.backends[:i], b.backends[i+1:]...)
			return
		}
	}
}

// servedBy is how many requests went to addr.
func (b *balancer) servedBy(addr string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.served[addr]
}

var errNoBackend = errors.New("balancer: no replica in rotation")

// RoundTrip sends req to the next replica (req is not modified).
func (b *balancer) RoundTrip(req *http.Request) (*http.Response, error) {
	b.mu.Lock()
	if len(b.backends) == 0 {
		b.mu.Unlock()
		return nil, errNoBackend
	}
	addr := b.backends[b.next%len(b.backends)]
	b.next++
	b.served[addr]++
	b.mu.Unlock()
	out := req.Clone(req.Context())
	out.URL.Host = addr
	return b.transport.RoundTrip(out)
}

// submission is one case a district sends, until the gateway accepts it.
type submission struct {
	from     *sim.Partner
	body     []byte
	caseNo   string
	receipt  *sim.Receipt
	status   int // of the answer that accepted it: 202, or 200 for a resend already accepted
	attempts int
}

// cases prepares n new cases, alternately from Nanhai and Liwan.
func (c *cluster) cases(n int) ([]*submission, error) {
	out := make([]*submission, n)
	for i := range out {
		p := c.nanhai
		if i%2 == 1 {
			p = c.liwan
		}
		body, no, err := p.NextCase(sim.SampleOptions{})
		if err != nil {
			return nil, err
		}
		out[i] = &submission{from: p, body: body, caseNo: no}
	}
	return out, nil
}

// submitAll sends every case through the balancer with the given number of
// concurrent senders. A case without an answer (its replica died, no
// replica in rotation) or with a 429/5xx is sent again, signed anew, as a
// district's system does; the gateway answers a resend of an accepted case
// with 200 and the same receipt. accepted counts the cases accepted so far.
func submitAll(ctx context.Context, subs []*submission, workers int, accepted *atomic.Int64) error {
	var next atomic.Int64
	errs := make(chan error, workers)
	for range workers {
		go func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(subs) || ctx.Err() != nil {
					errs <- ctx.Err()
					return
				}
				if err := submit(ctx, subs[i]); err != nil {
					errs <- err
					return
				}
				accepted.Add(1)
			}
		}()
	}
	var err error
	for range workers {
		err = errors.Join(err, <-errs)
	}
	return err
}

func submit(ctx context.Context, s *submission) error {
	var last string
	for s.attempts < 200 {
		s.attempts++
		resp, err := s.from.SendCase(ctx, publicURL, s.body)
		switch {
		case err == nil && (resp.Status == http.StatusAccepted || resp.Status == http.StatusOK):
			s.receipt, s.status = resp.Receipt, resp.Status
			return nil
		case err != nil && resp != nil:
			return fmt.Errorf("case %s: %w", s.caseNo, err) // an answer whose receipt did not verify
		case err != nil:
			last = err.Error()
		case resp.Status == http.StatusTooManyRequests || resp.Status >= 500:
			last = fmt.Sprintf("HTTP %d %s", resp.Status, resp.Body)
		default:
			return fmt.Errorf("case %s refused: HTTP %d %s", s.caseNo, resp.Status, resp.Body)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("case %s not accepted after %d attempts; last: %s", s.caseNo, s.attempts, last)
}
