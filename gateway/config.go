package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tongban/tongban/adapters"
)

// Config is `tongban serve`'s configuration file (YAML). Every field has a
// default; with no file at all the gateway runs on its embedded defaults:
// SQLite and a dev PKI under ./var, the pilot policies, 127.0.0.1:8443.
type Config struct {
	// Listen is the TLS listener address.
	Listen string `yaml:"listen"`
	// PublicURL is the base URL partners sign against (@target-uri); all
	// replicas behind one load balancer share it.
	PublicURL string `yaml:"public_url"`
	// Data is the data directory: SQLite file, dev PKI (certs/).
	Data string `yaml:"data"`
	// Policies is a bundle directory; empty means the embedded pilot bundle.
	Policies string      `yaml:"policies"`
	Store    StoreConfig `yaml:"store"`
	TLS      KeyPair     `yaml:"tls"`
	Keys     KeysConfig  `yaml:"keys"`
	// TrustAnchors are CA certificates (PEM) every identity must chain to.
	TrustAnchors []string        `yaml:"trust_anchors"`
	Partners     []PartnerConfig `yaml:"partners"`
	// Admins and Auditors are certificate files (PEM) of those roles.
	Admins   []string       `yaml:"admins"`
	Auditors []string       `yaml:"auditors"`
	Log      LogConfig      `yaml:"log"`
	Delivery DeliveryConfig `yaml:"delivery"`
	// MaxBodyBytes limits request bodies (default 16 MiB).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// TLCP is the optional second listener speaking TLCP (GB/T 38636).
	TLCP TLCPConfig `yaml:"tlcp"`
	// RevocationFile lists revoked certificates (ParseRevocationList); it is
	// read at start and again whenever it changes.
	RevocationFile string `yaml:"revocation_file"`
	// RevocationReload is how often RevocationFile is checked (default 2 s).
	RevocationReload time.Duration `yaml:"revocation_reload"`
	// Limits are every partner's request limits; a partner's own limits
	// override them field by field.
	Limits LimitsConfig `yaml:"limits"`
	// HTTP bounds the listener: header size and timeouts.
	HTTP HTTPConfig `yaml:"http"`
}

// TLCPConfig is the optional TLCP listener (package gateway/tlcp): its
// address (empty: none) and its double SM2 certificates, by default
// tlcp-sign.pem/.key and tlcp-enc.pem/.key of the dev PKI, issued by the
// dev CA on first run.
type TLCPConfig struct {
	Listen   string `yaml:"listen"`
	SignCert string `yaml:"sign_cert"`
	SignKey  string `yaml:"sign_key"`
	EncCert  string `yaml:"enc_cert"`
	EncKey   string `yaml:"enc_key"`
}

// HTTPConfig bounds what any client, signed or not, may hold of the
// listener.
type HTTPConfig struct {
	// MaxHeaderBytes limits the request line and headers (default 64 KiB;
	// more is 431).
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// ReadHeaderTimeout bounds reading the headers (default 10 s).
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request (default 60 s).
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds serving a request, from the end of its headers
	// to the end of the answer (default 60 s).
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout closes idle keep-alive connections (default 120 s).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
}

// StoreConfig chooses the store backend.
type StoreConfig struct {
	Driver string `yaml:"driver"` // sqlite (default) or postgres
	DSN    string `yaml:"dsn"`    // file path for sqlite, URL for postgres
	// MaxConns bounds this replica's connection pool (PostgreSQL
	// connections, or SQLite readers); default 10. With several replicas,
	// their sum plus one leader session each must stay under the server's
	// max_connections.
	MaxConns int `yaml:"max_conns"`
	// CommitInterval (SQLite) is the least time between the starts of two
	// group commits while writers are concurrent (default
	// store.DefaultCommitInterval, 5 ms; 0: commit as soon as the previous
	// commit finished). Writes arriving meanwhile share the next commit:
	// at most that much latency for far less CPU per write at moderate
	// load; a lone writer is not held back. At most one second.
	CommitInterval *time.Duration `yaml:"commit_interval"`
	// Encrypt seals the payload columns (requests, translated records,
	// outbox) with SM4-GCM. The key (32 hex digits) is read from the
	// environment variable PayloadKeyEnv, or else from PayloadKeyFile
	// (default DATA/payload.key, made on first use, mode 0600). Keep the key
	// file apart from the database in production.
	Encrypt        bool   `yaml:"encrypt"`
	PayloadKeyEnv  string `yaml:"payload_key_env"`
	PayloadKeyFile string `yaml:"payload_key_file"`
}

// KeyPair is a certificate and its private key (PEM files).
type KeyPair struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// KeysConfig holds the gateway's own keys.
type KeysConfig struct {
	Gateway KeyPair `yaml:"gateway"`
	Log     KeyPair `yaml:"log"`
	// PassphraseEnv names an environment variable holding the passphrase of
	// encrypted PKCS#8 keys; PassphraseFile a file holding it.
	PassphraseEnv  string `yaml:"passphrase_env"`
	PassphraseFile string `yaml:"passphrase_file"`
	// RetiredDir holds the certificates (and keys) `tongban certs rotate`
	// rotated out, still trusted for what they signed (default retired/
	// beside the log certificate).
	RetiredDir string `yaml:"retired_dir"`
}

// PartnerConfig is one district system.
type PartnerConfig struct {
	ID           string   `yaml:"id"`
	Division     string   `yaml:"division"`
	Endpoint     string   `yaml:"endpoint"`
	Certificates []string `yaml:"certificates"`
	// Limits override the top-level limits for this partner.
	Limits LimitsConfig `yaml:"limits"`
}

// LogConfig configures the signed exchange log.
type LogConfig struct {
	Origin             string        `yaml:"origin"`
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
}

// DeliveryConfig configures the outbox worker.
type DeliveryConfig struct {
	MaxAttempts    int           `yaml:"max_attempts"`
	InitialBackoff time.Duration `yaml:"initial_backoff"`
	MaxBackoff     time.Duration `yaml:"max_backoff"`
	// Concurrency is the number of deliveries in flight per partner
	// (default 16).
	Concurrency int `yaml:"concurrency"`
	// Timeout bounds one HTTP attempt.
	Timeout time.Duration `yaml:"timeout"`
	// Lease is how long a delivery claimed by a replica stays with it; if
	// that replica dies mid-attempt, another takes the delivery over once
	// the lease ends (default Timeout + 30 s).
	Lease time.Duration `yaml:"lease"`
}

// Default partner endpoints: where `tongban sim nanhai|liwan` listen by
// default.
const (
	DefaultNanhaiEndpoint = "http://127.0.0.1:9605"
	DefaultLiwanEndpoint  = "http://127.0.0.1:9103"
	DefaultListen         = "127.0.0.1:8443"
	DefaultOrigin         = "tongban/guangfo"
)

// LoadConfig reads a YAML file; an empty path gives the defaults.
func LoadConfig(path string) (*Config, error) {
	c := &Config{}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(c); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	}
	return c, nil
}

// DevCertsDir is where the dev PKI lives under the data directory.
func (c *Config) DevCertsDir() string { return filepath.Join(c.Data, "certs") }

// ApplyDefaults fills every unset field. Key and certificate paths default
// to the dev PKI under DATA/certs/ (made on first run by the caller).
func (c *Config) ApplyDefaults() error {
	if c.Data == "" {
		c.Data = "var"
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.PublicURL == "" {
		host, _, err := net.SplitHostPort(c.Listen)
		if err != nil {
			return fmt.Errorf("listen %q: %w", c.Listen, err)
		}
		if host == "" || host == "0.0.0.0" || host == "::" {
			return errors.New("public_url (or --public-url) is required when listening on all interfaces")
		}
		c.PublicURL = "https://" + c.Listen
	}
	u, err := url.Parse(c.PublicURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return fmt.Errorf("public_url %q is not an absolute URL", c.PublicURL)
	}
	dev := c.DevCertsDir()
	def := func(p *string, name string) {
		if *p == "" {
			*p = filepath.Join(dev, name)
		}
	}
	def(&c.TLS.Cert, "tls.pem")
	def(&c.TLS.Key, "tls.key")
	def(&c.Keys.Gateway.Cert, "gateway.pem")
	def(&c.Keys.Gateway.Key, "gateway.key")
	def(&c.Keys.Log.Cert, "log.pem")
	def(&c.Keys.Log.Key, "log.key")
	def(&c.TLCP.SignCert, "tlcp-sign.pem")
	def(&c.TLCP.SignKey, "tlcp-sign.key")
	def(&c.TLCP.EncCert, "tlcp-enc.pem")
	def(&c.TLCP.EncKey, "tlcp-enc.key")
	if len(c.TrustAnchors) == 0 {
		c.TrustAnchors = []string{filepath.Join(dev, "ca.pem")}
	}
	if len(c.Partners) == 0 {
		c.Partners = []PartnerConfig{
			{ID: "nanhai", Division: adapters.DivisionNanhai, Endpoint: DefaultNanhaiEndpoint, Certificates: []string{filepath.Join(dev, "nanhai.pem")}},
			{ID: "liwan", Division: adapters.DivisionLiwan, Endpoint: DefaultLiwanEndpoint, Certificates: []string{filepath.Join(dev, "liwan.pem")}},
		}
	}
	if c.Admins == nil {
		c.Admins = []string{filepath.Join(dev, "admin.pem")}
	}
	if c.Auditors == nil {
		c.Auditors = []string{filepath.Join(dev, "auditor.pem")}
	}
	if c.Store.Driver == "" {
		c.Store.Driver = "sqlite"
	}
	if c.Store.Driver == "sqlite" && c.Store.DSN == "" {
		c.Store.DSN = filepath.Join(c.Data, "tongban.db")
	}
	if ci := c.Store.CommitInterval; ci != nil && (*ci < 0 || *ci > time.Second) {
		return fmt.Errorf("store.commit_interval %s: want between 0 and 1s", *ci)
	}
	if c.Log.Origin == "" {
		c.Log.Origin = DefaultOrigin
	}
	if c.Log.CheckpointInterval == 0 {
		c.Log.CheckpointInterval = time.Second
	}
	d := &c.Delivery
	if d.MaxAttempts == 0 {
		d.MaxAttempts = 12
	}
	if d.InitialBackoff == 0 {
		d.InitialBackoff = time.Second
	}
	if d.MaxBackoff == 0 {
		d.MaxBackoff = 10 * time.Minute
	}
	if d.Concurrency == 0 {
		d.Concurrency = 16 // delivery.DefaultConcurrency
	}
	if d.Timeout == 0 {
		d.Timeout = 30 * time.Second
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 16 << 20
	}
	c.Limits = c.Limits.withDefaults(LimitsConfig{})
	for i := range c.Partners {
		c.Partners[i].Limits = c.Partners[i].Limits.withDefaults(c.Limits)
	}
	if c.RevocationReload == 0 {
		c.RevocationReload = 2 * time.Second
	}
	h := &c.HTTP
	setDuration := func(p *time.Duration, d time.Duration) {
		if *p == 0 {
			*p = d
		}
	}
	if h.MaxHeaderBytes == 0 {
		h.MaxHeaderBytes = 64 << 10
	}
	setDuration(&h.ReadHeaderTimeout, 10*time.Second)
	setDuration(&h.ReadTimeout, 60*time.Second)
	setDuration(&h.WriteTimeout, 60*time.Second)
	setDuration(&h.IdleTimeout, 120*time.Second)
	for _, p := range c.Partners {
		if p.ID == "" || len(p.Division) != 6 || p.Endpoint == "" || len(p.Certificates) == 0 {
			return fmt.Errorf("partner %q: id, a 6-digit division, endpoint and certificates are required", p.ID)
		}
	}
	return nil
}
