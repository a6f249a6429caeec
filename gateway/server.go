package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	kitprom "github.com/go-kit/kit/metrics/prometheus"
	stdprom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/adapters/liwan"
	"github.com/tongban/tongban/adapters/nanhai"
	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/gateway/delivery"
	"github.com/tongban/tongban/gateway/exchangelog"
	"github.com/tongban/tongban/gateway/store"
	"github.com/tongban/tongban/gateway/tlcp"
	"github.com/tongban/tongban/httpsig"
	"github.com/tongban/tongban/policies"
)

// Server is a whole running gateway: store, policy, signed log, delivery
// worker and HTTP handler, wired from a Config.
type Server struct {
	Config   *Config
	Store    store.Store
	Log      *exchangelog.Log
	Policy   *policies.Switch
	Trust    *certs.TrustStore
	Gateway  *certs.Signer // signs deliveries and receipts
	LogKey   *certs.Signer // signs checkpoints
	Partners Partners
	Worker   *delivery.Worker
	Service  Service
	Handler  http.Handler
	// Metrics is this server's Prometheus registry, served at /metrics.
	Metrics *stdprom.Registry
	// Limiter holds every partner's rate and concurrency limits.
	Limiter *Limiter
	// Leader says whether this replica signs checkpoints (always, with
	// SQLite; the holder of an advisory lock, with PostgreSQL).
	Leader *Leader
	core   *service
	// revocation reloads the revocation list file (nil without one).
	revocation *revocationWatcher
	logger     *slog.Logger
	// activating serialises this server's policy activations, so that the
	// "previous" revision each one records is always right.
	activating sync.Mutex
}

// codecs by partner id; a third district adds one line here and one folder
// under adapters/.
var codecs = map[string]adapters.Codec{"nanhai": nanhai.Codec, "liwan": liwan.Codec}

// NewServer opens everything cfg names (creating the dev PKI on first run
// when the default key paths are used) and wires the gateway.
func NewServer(ctx context.Context, cfg *Config, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if err := cfg.ApplyDefaults(); err != nil {
		return nil, err
	}
	s := &Server{Config: cfg, logger: logger}
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return nil, err
	}
	pass, err := cfg.passphrase()
	if err != nil {
		return nil, err
	}
	// The dev PKI is made (or completed) on first run; encrypted keys are
	// an operator's own and left alone.
	if pass == nil && strings.HasPrefix(cfg.Keys.Gateway.Key, cfg.DevCertsDir()+string(filepath.Separator)) {
		if err := certs.InitDevPKI(cfg.DevCertsDir()); err != nil {
			return nil, fmt.Errorf("dev PKI: %w", err)
		}
	}
	if cfg.TLCP.Listen != "" && pass == nil && strings.HasPrefix(cfg.TLCP.SignKey, cfg.DevCertsDir()+string(filepath.Separator)) {
		host, _, _ := net.SplitHostPort(cfg.TLCP.Listen)
		dev := cfg.DevCertsDir()
		if err := tlcp.IssueDev(dev, filepath.Join(dev, "ca.pem"), filepath.Join(dev, "ca.key"), []string{host, "127.0.0.1", "localhost"}); err != nil {
			return nil, fmt.Errorf("dev TLCP certificates: %w", err)
		}
	}
	for _, key := range []string{cfg.Keys.Gateway.Key, cfg.Keys.Log.Key, cfg.TLS.Key} {
		if err := checkPrivateKeyFile(key); err != nil {
			return nil, err
		}
	}
	if s.Gateway, err = certs.LoadSigner(cfg.Keys.Gateway.Cert, cfg.Keys.Gateway.Key, pass); err != nil {
		return nil, fmt.Errorf("gateway key: %w", err)
	}
	if s.LogKey, err = certs.LoadSigner(cfg.Keys.Log.Cert, cfg.Keys.Log.Key, pass); err != nil {
		return nil, fmt.Errorf("log key: %w", err)
	}
	if err := s.loadTrust(); err != nil {
		return nil, err
	}
	retiredLog, err := s.loadRetired()
	if err != nil {
		return nil, err
	}
	if cfg.RevocationFile != "" {
		s.revocation = &revocationWatcher{path: cfg.RevocationFile, trust: s.Trust, log: logger}
		if _, err := s.revocation.load(); err != nil {
			return nil, err
		}
	}

	storeOpts := []store.Option{store.WithMaxConns(cfg.Store.MaxConns)}
	if cfg.Store.CommitInterval != nil {
		storeOpts = append(storeOpts, store.WithCommitInterval(*cfg.Store.CommitInterval))
	}
	if cfg.Store.Encrypt {
		sealer, err := cfg.payloadCipher()
		if err != nil {
			return nil, fmt.Errorf("store.encrypt: %w", err)
		}
		storeOpts = append(storeOpts, store.WithPayloadSealer(sealer))
	}
	if s.Store, err = store.Open(ctx, cfg.Store.Driver, cfg.Store.DSN, storeOpts...); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := s.loadPolicy(ctx); err != nil {
		s.Store.Close()
		return nil, err
	}
	if s.Leader, err = newLeader(cfg, logger); err != nil {
		s.Store.Close()
		return nil, err
	}
	logOpts := exchangelog.NewOptions().WithOrigin(cfg.Log.Origin).WithSigner(s.LogKey).
		WithLogCertificates(append([]*certs.Certificate{s.LogKey.Certificate()}, retiredLog...)...).WithInterval(cfg.Log.CheckpointInterval).WithLogger(logger).
		WithLeader(s.Leader.IsLeader)
	if s.Log, err = exchangelog.Open(ctx, logStore{s.Store}, logOpts); err != nil {
		s.Store.Close()
		return nil, fmt.Errorf("exchange log: %w", err)
	}

	if err := s.releaseClaims(ctx); err != nil {
		s.Store.Close()
		return nil, fmt.Errorf("outbox: %w", err)
	}
	s.Worker, err = delivery.New(delivery.Options{
		Store: s.Store, Signer: s.Gateway, Trust: s.Trust, Partners: s.deliveryPartners(),
		MaxAttempts: cfg.Delivery.MaxAttempts, InitialBackoff: cfg.Delivery.InitialBackoff,
		MaxBackoff: cfg.Delivery.MaxBackoff, Concurrency: cfg.Delivery.Concurrency,
		AttemptTimeout: cfg.Delivery.Timeout, Lease: cfg.Delivery.Lease, Logger: logger,
	})
	if err != nil {
		s.Store.Close()
		return nil, fmt.Errorf("delivery: %w", err)
	}

	// A registry per server, not the process-wide default: several servers
	// in one process (tests, the demo) would otherwise collide.
	s.Metrics = stdprom.NewRegistry()
	s.Metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), s.Leader.gauge())
	requestsVec := stdprom.NewCounterVec(stdprom.CounterOpts{Namespace: "tongban", Name: "requests_total", Help: "Partner requests by method and outcome code."}, []string{"method", "code"})
	latencyVec := stdprom.NewHistogramVec(stdprom.HistogramOpts{Namespace: "tongban", Name: "request_seconds", Help: "Partner request latency.", Buckets: stdprom.DefBuckets}, []string{"method"})
	limitedVec := stdprom.NewCounterVec(stdprom.CounterOpts{Namespace: "tongban", Name: "rate_limited_total", Help: "Partner requests refused by the rate or concurrency limit."}, []string{"division", "limit"})
	unauthVec := stdprom.NewCounterVec(stdprom.CounterOpts{Namespace: "tongban", Name: "unauthenticated_refusals_total", Help: "Requests refused before their signature verified, by problem code."}, []string{"code"})
	s.Metrics.MustRegister(requestsVec, latencyVec, limitedVec, unauthVec)
	s.Metrics.MustRegister(s.decisionCounter("remembered"), s.decisionCounter("evaluated"))
	requests, latency := kitprom.NewCounter(requestsVec), kitprom.NewHistogram(latencyVec)
	limits := map[string]LimitsConfig{}
	for _, pc := range cfg.Partners {
		limits[pc.Division] = pc.Limits
	}
	s.Limiter = NewLimiter(LimiterOptions{Partners: limits, Refused: kitprom.NewCounter(limitedVec), Logger: logger})
	s.core = newService(Options{Store: s.Store, Policy: s.Policy, Partners: s.Partners, Logger: logger, OnAccepted: s.Worker.Kick})
	svc := LoggingMiddleware(logger)(s.core)
	svc = MetricsMiddleware(requests, latency)(svc)
	s.Service = svc

	nonces, err := newStoreNonces(ctx, s.Store, cfg.Store.Driver)
	if err != nil {
		s.Store.Close()
		return nil, err
	}
	verifier := &httpsig.Verifier{Trust: s.Trust, Nonces: nonces, PublicURL: cfg.PublicURL, MaxBody: cfg.MaxBodyBytes,
		Defer: writesWithEntry}
	routes := map[string]http.Handler{}
	s.adminRoutes(routes)
	s.auditRoutes(routes)
	consoleHandler, err := s.newConsole(verifier)
	if err != nil {
		s.Store.Close()
		return nil, err
	}
	s.Handler = NewHTTPHandler(MakeEndpoints(svc, s.Limiter.Middleware()), HTTPOptions{
		Verifier: verifier, Signer: s.Gateway, PublicURL: cfg.PublicURL, Logger: logger,
		Routes: routes, Ready: s.Ready, Metrics: promhttp.HandlerFor(s.Metrics, promhttp.HandlerOpts{}),
		Unauthenticated: kitprom.NewCounter(unauthVec), Console: consoleHandler, Deny: s.core.deny,
	})
	return s, nil
}

func (c *Config) passphrase() ([]byte, error) {
	switch {
	case c.Keys.PassphraseEnv != "":
		v, ok := os.LookupEnv(c.Keys.PassphraseEnv)
		if !ok {
			return nil, fmt.Errorf("passphrase: environment variable %s is not set", c.Keys.PassphraseEnv)
		}
		return []byte(v), nil
	case c.Keys.PassphraseFile != "":
		b, err := os.ReadFile(c.Keys.PassphraseFile)
		if err != nil {
			return nil, fmt.Errorf("passphrase: %w", err)
		}
		return []byte(strings.TrimRight(string(b), "\r\n")), nil
	}
	return nil, nil
}

// loadTrust builds the trust store of every identity that may sign to us,
// and the partner registry.
func (s *Server) loadTrust() error {
	cfg := s.Config
	var anchors []*certs.Certificate
	for _, p := range cfg.TrustAnchors {
		cs, err := certs.LoadCertificates(p)
		if err != nil {
			return fmt.Errorf("trust anchor %s: %w", p, err)
		}
		anchors = append(anchors, cs...)
	}
	s.Trust = certs.NewTrustStore(anchors)
	add := func(path string, id certs.Identity) error {
		cs, err := certs.LoadCertificates(path)
		if err != nil {
			return fmt.Errorf("certificate %s: %w", path, err)
		}
		for _, c := range cs {
			if err := s.Trust.Add(c, id); err != nil {
				return fmt.Errorf("certificate %s: %w", path, err)
			}
		}
		return nil
	}
	s.Partners = Partners{}
	for _, pc := range cfg.Partners {
		codec, ok := codecs[pc.ID]
		if !ok {
			return fmt.Errorf("partner %q: no codec (known: nanhai, liwan)", pc.ID)
		}
		p := &Partner{ID: pc.ID, Division: pc.Division, Endpoint: strings.TrimRight(pc.Endpoint, "/"), Codec: codec}
		s.Partners[p.Division] = p
		for _, path := range pc.Certificates {
			if err := add(path, certs.Identity{Role: certs.RolePartner, Partner: pc.ID, Division: pc.Division, Name: pc.ID}); err != nil {
				return err
			}
		}
	}
	for _, path := range cfg.Admins {
		if err := add(path, certs.Identity{Role: certs.RoleAdmin, Name: "admin"}); err != nil {
			return err
		}
	}
	for _, path := range cfg.Auditors {
		if err := add(path, certs.Identity{Role: certs.RoleAuditor, Name: "auditor"}); err != nil {
			return err
		}
	}
	if err := s.Trust.Add(s.Gateway.Certificate(), certs.Identity{Role: certs.RoleGateway, Name: "gateway"}); err != nil {
		return fmt.Errorf("gateway certificate: %w", err)
	}
	if err := s.Trust.Add(s.LogKey.Certificate(), certs.Identity{Role: certs.RoleLog, Name: "log"}); err != nil {
		return fmt.Errorf("log certificate: %w", err)
	}
	return nil
}

// loadPolicy activates the newest recorded activation, or else the
// configured (or embedded pilot) bundle.
func (s *Server) loadPolicy(ctx context.Context) error {
	acts, err := s.Store.Activations(ctx)
	if err != nil {
		return err
	}
	var b *policies.Bundle
	switch {
	case len(acts) > 0:
		b, err = policies.BundleFromTar(strings.NewReader(string(acts[0].Bundle)), maxBundleBytes)
	case s.Config.Policies != "":
		b, err = policies.LoadBundle(s.Config.Policies)
	default:
		b = policies.Pilot()
	}
	if err != nil {
		return fmt.Errorf("policy bundle: %w", err)
	}
	e, err := policies.Compile(ctx, b)
	if err != nil {
		return fmt.Errorf("policy bundle: %w", err)
	}
	s.Policy = policies.NewSwitch(e)
	return nil
}

func (s *Server) deliveryPartners() []delivery.Partner {
	var out []delivery.Partner
	for div, p := range s.Partners {
		out = append(out, delivery.Partner{Division: div, Endpoint: p.Endpoint, Codec: p.Codec})
	}
	return out
}

// decisionCounter exposes the active policy engine's decisions at /metrics
// as tongban_policy_decisions_total{source="remembered"|"evaluated"}. The
// counts are the engine's: they start again from zero when another policy
// is activated, which Prometheus reads as a counter reset.
func (s *Server) decisionCounter(source string) stdprom.Collector {
	return stdprom.NewCounterFunc(stdprom.CounterOpts{
		Namespace: "tongban", Name: "policy_decisions_total",
		Help:        "Policy decisions of the active policy revision, remembered for the day or evaluated.",
		ConstLabels: stdprom.Labels{"source": source},
	}, func() float64 {
		remembered, evaluated := s.Policy.Load().DecideCounts()
		if source == "remembered" {
			return float64(remembered)
		}
		return float64(evaluated)
	})
}

// storeNonces keeps the signature nonces in the store, so a request replayed
// to another replica is refused too: the store's unique key is the atomic
// check. What this process recorded is also kept in memory (recent), which
// answers the replay check before the body is read (Seen) without a query.
// With one gateway on SQLite the memory, loaded with the store's live
// nonces at start, is all there is to see; with replicas sharing
// PostgreSQL a nonce the memory does not hold is looked up. A replay the
// check misses (another process on the same SQLite file) is still refused
// (401 replayed) when its nonce is recorded.
type storeNonces struct {
	s      store.Store
	recent *httpsig.MemoryNonces
	shared bool // replicas may share the store: look up what memory misses
}

func newStoreNonces(ctx context.Context, s store.Store, driver string) (*storeNonces, error) {
	n := &storeNonces{s: s, recent: httpsig.NewMemoryNonces(0), shared: driver != store.DriverSQLite && driver != "sqlite3"}
	if n.shared {
		return n, nil
	}
	if err := s.LiveNonces(ctx, n.Note); err != nil {
		return nil, fmt.Errorf("load the signature nonces: %w", err)
	}
	return n, nil
}

func (n *storeNonces) Remember(ctx context.Context, keyID, nonce string, until time.Time) (bool, error) {
	fresh, err := n.s.RememberNonce(ctx, keyID, nonce, until)
	if err == nil {
		n.Note(keyID, nonce, until)
	}
	return fresh, err
}

// Note implements httpsig.NonceNoter. A full memory only makes Seen miss.
func (n *storeNonces) Note(keyID, nonce string, until time.Time) {
	n.recent.Remember(context.Background(), keyID, nonce, until)
}

// Seen implements httpsig.NonceChecker.
func (n *storeNonces) Seen(ctx context.Context, keyID, nonce string) (bool, error) {
	if seen, _ := n.recent.Seen(ctx, keyID, nonce); seen || !n.shared {
		return seen, nil
	}
	return n.s.NonceSeen(ctx, keyID, nonce)
}

// Ready reports whether the gateway may serve: store reachable, signing key
// loaded, policy active, log consistent with its signed checkpoint.
func (s *Server) Ready(ctx context.Context) error {
	if err := s.Store.Ping(ctx); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if s.Gateway == nil || s.Policy.Load() == nil {
		return errors.New("no signing key or policy")
	}
	if err := s.Log.Err(); err != nil {
		return fmt.Errorf("exchange log: %w", err)
	}
	return nil
}

// Run serves until ctx ends, then shuts down gracefully: in-flight requests
// finish, the worker stops claiming, the log publishes a last checkpoint and
// the store closes.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	cert, err := tls.LoadX509KeyPair(s.Config.TLS.Cert, s.Config.TLS.Key)
	if err != nil {
		return fmt.Errorf("TLS certificate: %w", err)
	}
	srv := &http.Server{
		Handler:           s.Handler,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: s.Config.HTTP.ReadHeaderTimeout,
		ReadTimeout:       s.Config.HTTP.ReadTimeout,
		WriteTimeout:      s.Config.HTTP.WriteTimeout,
		IdleTimeout:       s.Config.HTTP.IdleTimeout,
		MaxHeaderBytes:    s.Config.HTTP.MaxHeaderBytes,
	}
	bg, stop := context.WithCancel(context.Background())
	defer stop()
	// The leadership outlives the log's Run, so the last checkpoint below
	// is still signed by the leader; it is released after it.
	leading, release := context.WithCancel(context.Background())
	defer release()
	led := make(chan struct{})
	go func() { _ = s.Leader.Run(leading); close(led) }()
	done := make(chan struct{}, 3)
	if s.revocation != nil {
		go s.revocation.run(bg, s.Config.RevocationReload)
	}
	go func() { _ = s.Log.Run(bg); done <- struct{}{} }()
	go func() { _ = s.Worker.Run(bg); done <- struct{}{} }()
	go func() { s.followPolicy(bg); done <- struct{}{} }()

	errc := make(chan error, 2)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	var tlcpSrv *http.Server
	if s.Config.TLCP.Listen != "" {
		if tlcpSrv, err = s.serveTLCP(srv, errc); err != nil {
			_ = srv.Close()
		}
	}
	if err == nil {
		select {
		case err = <-errc:
		case <-ctx.Done():
			shutdown, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err = srv.Shutdown(shutdown)
			if tlcpSrv != nil {
				if terr := tlcpSrv.Shutdown(shutdown); err == nil {
					err = terr
				}
			}
			cancel()
		}
	}
	// Whichever listener ended first, neither serves on.
	_ = srv.Close()
	if tlcpSrv != nil {
		_ = tlcpSrv.Close()
	}
	stop()
	<-done
	<-done
	<-done
	if serr := s.Log.Sync(context.Background()); serr != nil {
		s.logger.Warn("final checkpoint", "err", serr)
	}
	release()
	<-led
	if cerr := s.Store.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// serveTLCP starts the TLCP listener (gateway/tlcp) with the same handler
// and limits as the TLS one; its end is sent to errc.
func (s *Server) serveTLCP(like *http.Server, errc chan<- error) (*http.Server, error) {
	c := s.Config.TLCP
	cfg, err := tlcp.ServerConfig(c.SignCert, c.SignKey, c.EncCert, c.EncKey)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return nil, fmt.Errorf("TLCP: %w", err)
	}
	srv := &http.Server{
		Handler: like.Handler, ReadHeaderTimeout: like.ReadHeaderTimeout, ReadTimeout: like.ReadTimeout,
		WriteTimeout: like.WriteTimeout, IdleTimeout: like.IdleTimeout, MaxHeaderBytes: like.MaxHeaderBytes,
	}
	go func() { errc <- srv.Serve(tlcp.NewListener(ln, cfg)) }()
	s.logger.Info("TLCP listener", "addr", ln.Addr().String(), "suite", "ECC_SM4_CBC_SM3")
	return srv, nil
}

// Close releases the store (for a server that was never Run).
func (s *Server) Close() error { return s.Store.Close() }

// followPolicy takes up, within a second, an activation another replica
// stored (replicas share the store; each holds its own engine). With SQLite
// there is one process, which activated it itself.
func (s *Server) followPolicy(ctx context.Context) {
	if s.Config.Store.Driver == store.DriverSQLite {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if changed, err := s.SyncPolicy(ctx); err != nil {
				s.logger.Warn("policy sync", "err", err)
			} else if changed {
				s.logger.Info("policy taken up from another replica", "revision", s.Policy.Load().Revision())
			}
		}
	}
}

// releaseClaims makes deliveries a crashed predecessor left in flight due
// again at once. Only with SQLite, where one process owns the outbox; with
// several replicas a claim's lease says when another may take it over.
// The partner deduplicates by Idempotency-Key, so an attempt that did reach
// it before the crash is answered with its first acknowledgement.
func (s *Server) releaseClaims(ctx context.Context) error {
	if s.Config.Store.Driver != store.DriverSQLite {
		return nil
	}
	ds, err := s.Store.Deliveries(ctx, store.StateDelivering, 1<<20)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, d := range ds {
		out := store.DeliveryOutcome{State: store.StateRetrying, Attempts: d.Attempts, NextAttempt: now,
			LastError: "the gateway stopped during this attempt"}
		if err := s.Store.FinishDelivery(ctx, d.ID, out); err != nil && !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	if len(ds) > 0 {
		s.logger.Info("deliveries left in flight by the previous run are due again", "count", len(ds))
	}
	return nil
}

// payloadCipher is the SM4-GCM cipher of the payloads at rest.
func (c *Config) payloadCipher() (*certs.PayloadCipher, error) {
	var key []byte
	var err error
	switch {
	case c.Store.PayloadKeyEnv != "":
		v, ok := os.LookupEnv(c.Store.PayloadKeyEnv)
		if !ok {
			return nil, fmt.Errorf("environment variable %s is not set", c.Store.PayloadKeyEnv)
		}
		key, err = certs.ParsePayloadKey(v)
	default:
		path := c.Store.PayloadKeyFile
		if path == "" {
			path = filepath.Join(c.Data, "payload.key")
		}
		if err := checkPrivateKeyFile(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		key, err = certs.LoadOrCreatePayloadKey(path)
	}
	if err != nil {
		return nil, err
	}
	return certs.NewPayloadCipher(key)
}
