package load

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/sim"
)

// Receivers are the two simulated district systems receiving deliveries
// in this process, on loopback, each wrapped by a [LagTracker].
//
// They run here rather than as `tongban sim` child processes so that the
// delivery lag is read on the same clock as the send time, with no log
// scraping; they cost the same CPU on the same cores either way.
type Receivers struct {
	Nanhai, Liwan       *sim.Partner
	NanhaiURL, LiwanURL string
	servers             []*http.Server
}

// StartReceivers starts both receivers with the keys of the dev PKI in
// pki; lag may be nil.
func StartReceivers(pki *certs.DevPKI, lag *LagTracker) (*Receivers, error) {
	r := &Receivers{}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, d := range []struct {
		division string
		key      *certs.Signer
		p        **sim.Partner
		url      *string
	}{
		{adapters.DivisionNanhai, pki.Nanhai, &r.Nanhai, &r.NanhaiURL},
		{adapters.DivisionLiwan, pki.Liwan, &r.Liwan, &r.LiwanURL},
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			r.Close()
			return nil, err
		}
		*d.url = "http://" + ln.Addr().String()
		p, err := sim.New(sim.Options{Division: d.division, Signer: d.key, Trust: pki.TrustStore(),
			PublicURL: *d.url, Logger: quiet, Forget: true})
		if err != nil {
			ln.Close()
			r.Close()
			return nil, err
		}
		*d.p = p
		var h http.Handler = p
		if lag != nil {
			h = lag.Wrap(p)
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		r.servers = append(r.servers, srv)
		go func() { _ = srv.Serve(ln) }()
	}
	return r, nil
}

// Close stops both receivers.
func (r *Receivers) Close() {
	for _, s := range r.servers {
		_ = s.Close()
	}
}

// LocalOptions configures [StartLocal].
type LocalOptions struct {
	// Binary is the tongban executable to run as `tongban serve`.
	Binary string
	// Serve, instead of Binary, runs the gateway in this process (for
	// profiling the whole path in one process): it must serve the
	// configuration file until ctx ends.
	Serve func(ctx context.Context, configFile string) error
	// Dir is the gateway's data directory; empty means a fresh temporary
	// one, removed by Close.
	Dir string
	// Lag, when set, tracks deliveries to the receivers.
	Lag *LagTracker
	// Connections sizes the client's connection pool.
	Connections int
	// ExtraConfig is appended to the generated YAML configuration. The
	// generated one lifts the per-partner rate and concurrency limits out
	// of the way (a load run measures the pipeline, not the limiter) and
	// lets 128 deliveries per partner be in flight, so that deliveries keep
	// pace with what the gateway accepts as fast as it goes on loopback
	// (the default 16 fell behind in the fourth round, and 64 in the
	// seventh, once a case cost one commit: docs/performance.md); without
	// ExtraConfig it says "delivery: {concurrency: 128}".
	ExtraConfig string
	// ServeArgs are appended to the `tongban serve` command line of the
	// child gateway (e.g. --cpuprofile FILE).
	ServeArgs []string
}

// Local is a gateway running as a child process (`tongban serve`) on a free
// loopback port with a fresh data directory, delivering to [Receivers] in
// this process.
type Local struct {
	Dir       string
	URL       string // the gateway's base URL
	PKI       *certs.DevPKI
	Receivers *Receivers
	Client    *http.Client // trusts the gateway's dev TLS certificate
	LogFile   string       // the gateway's stdout and stderr

	cmd     *exec.Cmd
	stop    context.CancelFunc // of an in-process gateway
	exited  chan error
	tempDir bool
}

// StartLocal makes the dev PKI, starts the receivers and the gateway, and
// waits until the gateway is ready.
func StartLocal(ctx context.Context, o LocalOptions) (_ *Local, err error) {
	if o.Binary == "" && o.Serve == nil {
		return nil, fmt.Errorf("%w: the tongban binary is required", ErrOptions)
	}
	l := &Local{Dir: o.Dir}
	if l.Dir == "" {
		if l.Dir, err = os.MkdirTemp("", "tongban-load-"); err != nil {
			return nil, err
		}
		l.tempDir = true
	}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	certDir := filepath.Join(l.Dir, "certs")
	if err = certs.InitDevPKI(certDir); err != nil {
		return nil, err
	}
	if l.PKI, err = certs.LoadDevPKI(certDir); err != nil {
		return nil, err
	}
	if l.Receivers, err = StartReceivers(l.PKI, o.Lag); err != nil {
		return nil, err
	}
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	l.URL = "https://" + addr
	if o.ExtraConfig == "" {
		o.ExtraConfig = "delivery: {concurrency: 128}\n"
	}
	cfg := fmt.Sprintf(`listen: %q
data: %q
partners:
  - {id: nanhai, division: %q, endpoint: %q, certificates: [%q]}
  - {id: liwan, division: %q, endpoint: %q, certificates: [%q]}
limits: {rate_per_s: 1000000, concurrency: 100000}
%s`, addr, l.Dir,
		adapters.DivisionNanhai, l.Receivers.NanhaiURL, filepath.Join(certDir, "nanhai.pem"),
		adapters.DivisionLiwan, l.Receivers.LiwanURL, filepath.Join(certDir, "liwan.pem"), o.ExtraConfig)
	cfgPath := filepath.Join(l.Dir, "load.yaml")
	if err = os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	l.exited = make(chan error, 1)
	if o.Serve != nil {
		var serveCtx context.Context
		serveCtx, l.stop = context.WithCancel(context.Background())
		go func() { l.exited <- o.Serve(serveCtx, cfgPath) }()
	} else {
		l.LogFile = filepath.Join(l.Dir, "serve.log")
		logf, err := os.Create(l.LogFile)
		if err != nil {
			return nil, err
		}
		defer logf.Close()
		l.cmd = exec.Command(o.Binary, append([]string{"serve", "--config", cfgPath}, o.ServeArgs...)...)
		l.cmd.Stdout, l.cmd.Stderr = logf, logf
		if err = l.cmd.Start(); err != nil {
			return nil, err
		}
		go func() { l.exited <- l.cmd.Wait() }()
	}
	if l.Client, err = TLSClient(l.PKI.TLSCert, o.Connections); err != nil {
		return nil, err
	}
	if err = l.waitReady(ctx, 60*time.Second); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *Local) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.URL+"/readyz", nil)
		if err != nil {
			return err
		}
		if resp, err := l.Client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-l.exited:
			l.exited <- err
			return fmt.Errorf("load: tongban serve exited before it was ready (%v); its log: %s%s", err, l.LogFile, tail(l.LogFile))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("load: tongban serve not ready after %s; its log: %s%s", limit, l.LogFile, tail(l.LogFile))
		}
	}
}

// Pid is the gateway process's id (this process's for an in-process
// gateway).
func (l *Local) Pid() int {
	if l.cmd == nil {
		return os.Getpid()
	}
	return l.cmd.Process.Pid
}

// RSS is the gateway process's resident set size in bytes (Linux).
func (l *Local) RSS() (int64, error) { return ProcessRSS(l.Pid()) }

// Close stops the gateway (SIGTERM, then SIGKILL after 30 s) and the
// receivers, and removes a temporary data directory.
func (l *Local) Close() error {
	var err error
	if l.stop != nil {
		l.stop()
		err = <-l.exited
	}
	if l.cmd != nil && l.cmd.Process != nil {
		_ = l.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err = <-l.exited:
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				err = fmt.Errorf("load: tongban serve: %w", err)
			}
		case <-time.After(30 * time.Second):
			_ = l.cmd.Process.Kill()
			err = errors.New("load: tongban serve did not stop in 30 s; killed")
		}
	}
	if l.Receivers != nil {
		l.Receivers.Close()
	}
	if l.tempDir {
		os.RemoveAll(l.Dir)
	}
	return err
}

// TLSClient is an HTTP/1.1 client trusting the certificate in the PEM file
// certFile, keeping up to conns connections to a host.
func TLSClient(certFile string, conns int) (*http.Client, error) {
	pem, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("load: no certificate in %s", certFile)
	}
	if conns <= 0 {
		conns = 64
	}
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
	}}, nil
}

// ProcessRSS reads VmRSS of process pid from /proc (Linux).
func ProcessRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("load: no VmRSS")
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// tail is the last lines of a log file, for an error message.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return "\n" + string(b)
}
