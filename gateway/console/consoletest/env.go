// Package consoletest runs a whole gateway with both simulated districts on
// loopback, seeded with traffic a console user would look at: cases both
// ways and delivered, a status walk to APPROVED, a policy denial, a dead
// delivery. The console's Go tests and the browser tests' harness
// (console-tests/harness) use it.
package consoletest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/gateway"
	"github.com/tongban/tongban/gateway/console"
	"github.com/tongban/tongban/httpsig"
	"github.com/tongban/tongban/policies"
	"github.com/tongban/tongban/sim"
)

// Items the seed uses (the pilot catalog's codes).
const (
	ItemCompanySetup  = "000105001000" // 内资有限责任公司设立登记: Nanhai's sample
	ItemCompanyChange = "000105002000" // 内资有限责任公司变更登记: the item a draft disables
	ItemPhysician     = "000114001000" // 医师执业注册: Liwan's sample
	ItemHukou         = "000102003000" // 户口迁移: not a cross-district item
)

// Env is a running gateway and its two simulated districts.
type Env struct {
	Dir    string // data directory (store, certs/)
	URL    string // the gateway's public base URL (https)
	PKI    *certs.DevPKI
	Server *gateway.Server
	Nanhai *sim.Partner
	Liwan  *sim.Partner
	// Client trusts the gateway's dev TLS certificate.
	Client *http.Client

	stop func()
}

// Start starts a gateway with its data (and dev PKI) under dir and both
// simulated districts, all on 127.0.0.1. Deliveries give up after two
// attempts, so a dead delivery is quick to make.
func Start(ctx context.Context, dir string, logger *slog.Logger) (*Env, error) {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	certDir := filepath.Join(dir, "certs")
	if err := certs.InitDevPKI(certDir); err != nil {
		return nil, err
	}
	pki, err := certs.LoadDevPKI(certDir)
	if err != nil {
		return nil, err
	}
	client, err := tlsClient(pki.TLSCert)
	if err != nil {
		return nil, err
	}
	e := &Env{Dir: dir, PKI: pki, Client: client}
	ctx, cancel := context.WithCancel(ctx)
	var closers []func()
	e.stop = func() {
		cancel()
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	fail := func(err error) (*Env, error) {
		e.stop()
		return nil, err
	}
	partners := map[string]*sim.Partner{}
	urls := map[string]string{}
	for _, p := range []struct {
		id, division string
		signer       *certs.Signer
	}{{"nanhai", "440605", pki.Nanhai}, {"liwan", "440103", pki.Liwan}} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fail(err)
		}
		u := "http://" + ln.Addr().String()
		sp, err := sim.New(sim.Options{Division: p.division, Signer: p.signer, Trust: pki.TrustStore(), PublicURL: u, HTTPClient: client, Logger: logger})
		if err != nil {
			ln.Close()
			return fail(err)
		}
		srv := &http.Server{Handler: sp, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		closers = append(closers, func() { srv.Close() })
		partners[p.id], urls[p.id] = sp, u
	}
	e.Nanhai, e.Liwan = partners["nanhai"], partners["liwan"]

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	cfg := &gateway.Config{Data: dir, Listen: ln.Addr().String()}
	cfg.Delivery.InitialBackoff = 100 * time.Millisecond
	cfg.Delivery.MaxBackoff = 200 * time.Millisecond
	cfg.Delivery.MaxAttempts = 2
	cfg.Log.CheckpointInterval = 100 * time.Millisecond
	if err := cfg.ApplyDefaults(); err != nil {
		ln.Close()
		return fail(err)
	}
	for i := range cfg.Partners {
		cfg.Partners[i].Endpoint = urls[cfg.Partners[i].ID]
	}
	if e.Server, err = gateway.NewServer(ctx, cfg, logger); err != nil {
		ln.Close()
		return fail(err)
	}
	e.URL = cfg.PublicURL
	served := make(chan error, 1)
	go func() { served <- e.Server.Run(ctx, ln) }()
	closers = append(closers, func() { <-served })
	// Run closes the store when ctx ends; closers run after cancel.
	return e, nil
}

// Close stops the gateway and the simulators.
func (e *Env) Close() { e.stop() }

func tlsClient(caPEM string) (*http.Client, error) {
	pem, err := os.ReadFile(caPEM)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no certificate", caPEM)
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}, nil
}

// Seeded are the numbers the seed made.
type Seeded struct {
	// NanhaiCase is the company set-up Nanhai sent, and LiwanCase the
	// number Liwan gave it on acknowledging.
	NanhaiCase, LiwanCase string
	// PhysicianLiwan is the physician registration Liwan sent, and
	// PhysicianNanhai Nanhai's number of it (walked to APPROVED).
	PhysicianLiwan, PhysicianNanhai string
	// Changes are Nanhai's company changes (the item a draft disables).
	Changes []string
	// DeadDelivery is a delivery to Liwan that gave up.
	DeadDelivery string
}

// Seed sends the traffic: two company changes and a company set-up from
// Nanhai, delivered; a physician registration from Liwan, delivered, then
// walked to APPROVED by Nanhai; a household move from Nanhai, denied; and a
// company set-up whose delivery to Liwan gives up.
func (e *Env) Seed(ctx context.Context) (*Seeded, error) {
	s := &Seeded{}
	var err error
	if s.NanhaiCase, err = e.Submit(ctx, "nanhai", ItemCompanySetup, http.StatusAccepted); err != nil {
		return nil, err
	}
	for range 2 {
		no, err := e.Submit(ctx, "nanhai", ItemCompanyChange, http.StatusAccepted)
		if err != nil {
			return nil, err
		}
		s.Changes = append(s.Changes, no)
	}
	if s.PhysicianLiwan, err = e.Submit(ctx, "liwan", ItemPhysician, http.StatusAccepted); err != nil {
		return nil, err
	}
	if s.LiwanCase, err = e.waitOwnerNumber(ctx, s.NanhaiCase); err != nil {
		return nil, err
	}
	if s.PhysicianNanhai, err = e.waitOwnerNumber(ctx, s.PhysicianLiwan); err != nil {
		return nil, err
	}
	for _, st := range []adapters.State{adapters.Accepted, adapters.InReview, adapters.Approved} {
		body, err := e.Nanhai.SampleStatus(s.PhysicianNanhai, st, time.Time{})
		if err != nil {
			return nil, err
		}
		resp, err := e.Nanhai.SendStatus(ctx, e.URL, body)
		if err != nil {
			return nil, err
		}
		if resp.Status != http.StatusAccepted {
			return nil, fmt.Errorf("status %s: HTTP %d %s", st, resp.Status, resp.Body)
		}
	}
	if _, err := e.Submit(ctx, "nanhai", ItemHukou, http.StatusForbidden); err != nil {
		return nil, err
	}
	// A delivery that gives up: Liwan answers 503 to everything for a while.
	e.Liwan.FailNext(1000, http.StatusServiceUnavailable)
	dead, err := e.Submit(ctx, "nanhai", ItemCompanySetup, http.StatusAccepted)
	if err != nil {
		return nil, err
	}
	v, err := e.waitState(ctx, dead, "dead")
	e.Liwan.FailNext(0, 0)
	if err != nil {
		return nil, err
	}
	s.DeadDelivery = v.ExchangeID
	return s, nil
}

// Submit sends a sample case of item from partner ("nanhai" or "liwan"),
// expecting HTTP status want, and returns its case number.
func (e *Env) Submit(ctx context.Context, from, item string, want int) (string, error) {
	status, caseNo, body, err := e.SubmitStatus(ctx, from, item)
	if err != nil {
		return "", err
	}
	if status != want {
		return caseNo, fmt.Errorf("%s %s: HTTP %d, want %d: %s", from, item, status, want, body)
	}
	return caseNo, nil
}

// SubmitStatus sends a sample case of item from partner and returns the
// HTTP status, the case number and the answer's body.
func (e *Env) SubmitStatus(ctx context.Context, from, item string) (int, string, []byte, error) {
	p := e.Nanhai
	if from == "liwan" {
		p = e.Liwan
	}
	body, caseNo, err := p.NextCase(sim.SampleOptions{})
	if err != nil {
		return 0, "", nil, err
	}
	c, err := p.Codec().DecodeCase(body)
	if err != nil {
		return 0, "", nil, err
	}
	if c.Item.BasicCode != item {
		c.Item.ImplCode = c.Item.ImplCode[:len(c.Item.ImplCode)-len(c.Item.BasicCode)] + item
		c.Item.BasicCode = item
		switch item {
		case ItemCompanyChange:
			c.Item.Name = "内资有限责任公司变更登记"
			if len(c.Materials) > 0 {
				m := c.Materials[len(c.Materials)-1]
				m.Code, m.Title, m.FileName = "M006", "变更决议或决定", "resolution.pdf"
				m.Content = []byte("%PDF-1.4 change resolution " + caseNo)
				m.SM3, m.Size = certs.SM3Hex(m.Content), int64(len(m.Content))
				c.Materials = append(c.Materials, m)
			}
		case ItemHukou:
			c.Item.Name = "户口迁移"
			c.Applicant = c.Contact
			c.Applicant.Kind, c.Applicant.Mobile = adapters.Person, ""
		}
		if body, err = p.Codec().EncodeCase(c); err != nil {
			return 0, "", nil, err
		}
	}
	resp, err := p.SendCase(ctx, e.URL, body)
	if err != nil {
		return 0, "", nil, err
	}
	return resp.Status, caseNo, resp.Body, nil
}

// Track is the gateway's view of a case, as its sender sees it.
func (e *Env) Track(ctx context.Context, caseNo string) (*gateway.ExchangeView, error) {
	for _, p := range []*sim.Partner{e.Nanhai, e.Liwan} {
		resp, err := p.Track(ctx, e.URL, caseNo)
		if err != nil {
			return nil, err
		}
		if resp.Status == http.StatusOK {
			var v gateway.ExchangeView
			return &v, json.Unmarshal(resp.Body, &v)
		}
	}
	return nil, fmt.Errorf("case %s: not found", caseNo)
}

func (e *Env) waitState(ctx context.Context, caseNo, state string) (*gateway.ExchangeView, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, err := e.Track(ctx, caseNo)
		if err != nil {
			return nil, err
		}
		if v.Delivery.State == state {
			return v, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("case %s: delivery %s, not %s, after 30 s", caseNo, v.Delivery.State, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *Env) waitOwnerNumber(ctx context.Context, caseNo string) (string, error) {
	v, err := e.waitState(ctx, caseNo, "delivered")
	if err != nil {
		return "", err
	}
	return v.To.CaseNo, nil
}

// WaitDelivered waits for the case's delivery to be acknowledged.
func (e *Env) WaitDelivered(ctx context.Context, caseNo string) error {
	_, err := e.waitState(ctx, caseNo, "delivered")
	return err
}

// DisableItem returns the pilot bundle, as a tar, with item no longer
// crossing districts.
func DisableItem(item string) ([]byte, error) {
	files := policies.Pilot().Files()
	var cat map[string]any
	if err := json.Unmarshal(files[policies.CatalogPath], &cat); err != nil {
		return nil, err
	}
	items, _ := cat["items"].(map[string]any)
	it, ok := items[item].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("no item %s in the pilot catalog", item)
	}
	it["cross_district"] = false
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(cat); err != nil {
		return nil, err
	}
	files[policies.CatalogPath] = buf.Bytes()
	b, err := policies.BundleFromFiles(files)
	if err != nil {
		return nil, err
	}
	return b.Tar(), nil
}

// ErrRefused is a sign-in the gateway refused.
var ErrRefused = errors.New("consoletest: sign-in refused")

// SignIn signs challenge with signer as `tongban console login` does and
// returns the one-time link.
func (e *Env) SignIn(ctx context.Context, challenge string, signer *certs.Signer) (string, error) {
	body, _ := json.Marshal(console.SignInRequest{Challenge: challenge})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.URL+console.SignInPath, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	if _, err := httpsig.SignRequest(req, body, signer); err != nil {
		return "", err
	}
	resp, err := e.Client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("%w: HTTP %d %s", ErrRefused, resp.StatusCode, b)
	}
	var out console.SignInResponse
	if err := json.Unmarshal(b, &out); err != nil {
		return "", err
	}
	return out.Link, nil
}
