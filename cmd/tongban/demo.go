package main

import (
	"bytes"
	"context"
	"encoding/json"
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
	"github.com/tongban/tongban/gateway/exchangelog"
	"github.com/tongban/tongban/httpsig"
	"github.com/tongban/tongban/sim"
)

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("demo", "demo [--keep DIR]", stderr)
	keep := fs.String("keep", "", "keep the gateway's data directory (store, certs/) in DIR and write the log export to DIR/export.tar")
	verbose := fs.Bool("v", false, "show the gateway's and the simulators' process logs")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	dir := *keep
	if dir == "" {
		tmp, err := os.MkdirTemp("", "tongban-demo-")
		if err != nil {
			return fail(stderr, "%v", err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	logOut := io.Discard
	if *verbose {
		logOut = stderr
	}
	d := &demo{out: stdout, dir: dir, keep: *keep != "", logger: slog.New(slog.NewTextHandler(logOut, nil))}
	if err := d.run(ctx); err != nil {
		fmt.Fprintf(stdout, "\n✗ demo failed: %v\n", err)
		return 1
	}
	return 0
}

type demo struct {
	out    io.Writer
	dir    string
	keep   bool // write the export to dir/export.tar
	logger *slog.Logger
	gwURL  string
	nanhai *sim.Partner
	liwan  *sim.Partner
	pki    *certs.DevPKI
	client *http.Client
	step   int
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, format+"\n", args...) }

func (d *demo) section(title string) {
	d.step++
	d.say("\n%d. %s", d.step, title)
}

func (d *demo) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	certDir := filepath.Join(d.dir, "certs")
	d.section("Starting a gateway and both simulated districts on loopback")
	if err := certs.InitDevPKI(certDir); err != nil {
		return err
	}
	var err error
	if d.pki, err = certs.LoadDevPKI(certDir); err != nil {
		return err
	}
	if d.client, err = gatewayClient(certDir); err != nil {
		return err
	}
	nanhaiLn, nanhaiURL, err := listen()
	if err != nil {
		return err
	}
	liwanLn, liwanURL, err := listen()
	if err != nil {
		return err
	}
	if d.nanhai, err = newSimPartner(certDir, "nanhai", nanhaiURL, d.logger); err != nil {
		return err
	}
	if d.liwan, err = newSimPartner(certDir, "liwan", liwanURL, d.logger); err != nil {
		return err
	}
	for _, s := range []struct {
		ln net.Listener
		h  http.Handler
	}{{nanhaiLn, d.nanhai}, {liwanLn, d.liwan}} {
		srv := &http.Server{Handler: s.h, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(s.ln) }()
		defer srv.Close()
	}

	gwLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	cfg := &gateway.Config{Data: d.dir, Listen: gwLn.Addr().String()}
	cfg.Delivery.InitialBackoff = 200 * time.Millisecond
	cfg.Log.CheckpointInterval = 200 * time.Millisecond
	if err := cfg.ApplyDefaults(); err != nil {
		return err
	}
	cfg.Partners[0].Endpoint, cfg.Partners[1].Endpoint = nanhaiURL, liwanURL
	srv, err := gateway.NewServer(ctx, cfg, d.logger)
	if err != nil {
		return err
	}
	d.gwURL = cfg.PublicURL
	served := make(chan error, 1)
	go func() { served <- srv.Run(ctx, gwLn) }()
	defer func() { cancel(); <-served }()
	d.say("   gateway  %s  (data %s)", d.gwURL, d.dir)
	d.say("   南海 Nanhai approval system (simulated)  %s", nanhaiURL)
	d.say("   荔湾 Liwan approval system (simulated)   %s", liwanURL)

	d.section("Nanhai sends a company set-up (内资有限责任公司设立登记), owned by Liwan")
	nhCase, nhNo, err := d.nanhai.NextCase(sim.SampleOptions{})
	if err != nil {
		return err
	}
	nhRc, err := d.submit(ctx, d.nanhai, nhCase, http.StatusAccepted)
	if err != nil {
		return err
	}
	d.say("   accepted: exchange %s, log index %d, mode %s", nhRc.ExchangeID, nhRc.LogIndex, nhRc.Decision.Mode)

	d.section("Liwan sends a physician registration (医师执业注册), owned by Nanhai")
	lwCase, lwNo, err := d.liwan.NextCase(sim.SampleOptions{})
	if err != nil {
		return err
	}
	lwRc, err := d.submit(ctx, d.liwan, lwCase, http.StatusAccepted)
	if err != nil {
		return err
	}
	d.say("   accepted: exchange %s, log index %d, mode %s", lwRc.ExchangeID, lwRc.LogIndex, lwRc.Decision.Mode)

	d.section("Nanhai sends a household move (户口迁移): not a cross-district item")
	denied, err := d.variant(d.nanhai, func(c *adapters.Case) {
		c.CaseNo = nhNo[:len(nhNo)-4] + "9001"
		c.Item = adapters.Item{BasicCode: "000102003000", ImplCode: "11440605MB2C35050F000102003000", Name: "户口迁移"}
		c.Applicant = c.Contact
		c.Applicant.Kind, c.Applicant.Mobile = adapters.Person, ""
	})
	if err != nil {
		return err
	}
	if _, err := d.submit(ctx, d.nanhai, denied, http.StatusForbidden); err != nil {
		return err
	}

	d.section("Liwan sends a case with a wrong ID check digit and a material whose SM3 does not match")
	invalid, err := d.variant(d.liwan, func(c *adapters.Case) {
		c.CaseNo = lwNo[:len(lwNo)-5] + "90001"
		id := []byte(c.Applicant.IDNumber)
		id[len(id)-1] = map[byte]byte{'X': '0'}[id[len(id)-1]] | '0' + (id[len(id)-1]-'0'+1)%10
		c.Applicant.IDNumber = string(id)
		if len(c.Materials) > 0 {
			c.Materials[0].SM3 = certs.SM3Hex([]byte("something else"))
		}
	})
	if err != nil {
		return err
	}
	if _, err := d.submit(ctx, d.liwan, invalid, http.StatusUnprocessableEntity); err != nil {
		return err
	}

	d.section("Deliveries: each owning district receives its case, signed, exactly once")
	nhView, err := d.waitDelivered(ctx, d.nanhai, nhNo)
	if err != nil {
		return err
	}
	d.say("   Liwan acknowledged Nanhai's %s as %s", nhNo, nhView.To.CaseNo)
	lwView, err := d.waitDelivered(ctx, d.liwan, lwNo)
	if err != nil {
		return err
	}
	nanhaiNo := lwView.To.CaseNo
	d.say("   Nanhai acknowledged Liwan's %s as %s", lwNo, nanhaiNo)

	d.section("Nanhai handles the physician registration: 窗口受理 → 部门受理 → 办结(通过)")
	for _, st := range []adapters.State{adapters.Accepted, adapters.InReview, adapters.Approved} {
		body, err := d.nanhai.SampleStatus(nanhaiNo, st, time.Time{})
		if err != nil {
			return err
		}
		resp, err := d.nanhai.SendStatus(ctx, d.gwURL, body)
		if err != nil {
			return err
		}
		if resp.Status != http.StatusAccepted {
			return fmt.Errorf("status %s: HTTP %d %s", st, resp.Status, resp.Body)
		}
		info, _ := st.Info()
		d.say("   %-9s %s (%d) accepted, log index %d", st, info.Name, info.Code, resp.Receipt.LogIndex)
	}
	late, err := d.nanhai.SampleStatus(nanhaiNo, adapters.InReview, time.Now().Add(time.Hour))
	if err != nil {
		return err
	}
	resp, err := d.nanhai.SendStatus(ctx, d.gwURL, late)
	if err != nil {
		return err
	}
	d.say("   a status after 办结 is refused: HTTP %d %s", resp.Status, problemCode(resp.Body))
	if resp.Status != http.StatusConflict {
		return fmt.Errorf("a status after a terminal one was answered %d", resp.Status)
	}

	d.section("The applicant asks \"where is my case?\" in either district, by either number")
	var final *gateway.ExchangeView
	deadline := time.Now().Add(20 * time.Second)
	for {
		if final, err = d.track(ctx, d.liwan, lwNo); err != nil {
			return err
		}
		if n := len(final.Statuses); n == 3 && final.Statuses[n-1].Delivery == "delivered" || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	byNanhai, err := d.track(ctx, d.nanhai, nanhaiNo)
	if err != nil {
		return err
	}
	if byNanhai.ExchangeID != final.ExchangeID {
		return fmt.Errorf("the two numbers found different exchanges")
	}
	d.say("   Liwan's %s and Nanhai's %s are the same exchange %s", lwNo, nanhaiNo, final.ExchangeID)
	for _, st := range final.Statuses {
		d.say("   %d. %-9s %-10s delivered to Liwan: %s", st.Seq, st.State, st.NanhaiName, st.Delivery)
	}
	if n := len(final.Statuses); n != 3 || final.Statuses[n-1].Delivery != "delivered" {
		return fmt.Errorf("status updates were not all delivered in time")
	}
	got := d.liwan.Received()
	d.say("   Liwan's system holds %d record(s) from tongban; duplicates at either side: %d", len(got), len(d.liwan.Duplicates())+len(d.nanhai.Duplicates()))

	d.section("An auditor exports the signed exchange log and verifies it offline")
	time.Sleep(300 * time.Millisecond)
	tarball, err := d.auditorGet(ctx, "/audit/v1/export?from=0&to="+fmt.Sprint(time.Now().Add(time.Minute).Unix()))
	if err != nil {
		return err
	}
	if d.keep {
		path := filepath.Join(d.dir, "export.tar")
		if err := os.WriteFile(path, tarball, 0o644); err != nil {
			return err
		}
		d.say("   export written to %s (check it with: tongban audit verify %s)", path, path)
	}
	sum, err := exchangelog.VerifyBundle(bytes.NewReader(tarball), exchangelog.NewVerifyOptions().WithLogCertificates(d.pki.Log.Certificate()))
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	d.say("   verified with the log key given out of band:")
	for _, line := range bytes.Split(bytes.TrimSpace([]byte(sum.String())), []byte("\n")) {
		d.say("     %s", line)
	}
	d.say("\n✓ demo complete: every accepted case delivered once, the denied and the invalid ones refused and logged, the log verified.")
	return nil
}

func listen() (net.Listener, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	return ln, "http://" + ln.Addr().String(), nil
}

// variant re-encodes the partner's next sample case after changing it.
func (d *demo) variant(p *sim.Partner, change func(*adapters.Case)) ([]byte, error) {
	body, _, err := p.NextCase(sim.SampleOptions{})
	if err != nil {
		return nil, err
	}
	c, err := p.Codec().DecodeCase(body)
	if err != nil {
		return nil, err
	}
	change(c)
	return p.Codec().EncodeCase(c)
}

func (d *demo) submit(ctx context.Context, p *sim.Partner, body []byte, want int) (*sim.Receipt, error) {
	resp, err := p.SendCase(ctx, d.gwURL, body)
	if err != nil {
		return nil, err
	}
	if resp.Status != want {
		return nil, fmt.Errorf("expected HTTP %d, got %d: %s", want, resp.Status, resp.Body)
	}
	if resp.Status >= 400 {
		var prob struct {
			Code     string `json:"code"`
			Errors   []adapters.FieldError
			Decision *struct {
				Reasons []struct{ Code, Message string }
			}
		}
		_ = json.Unmarshal(resp.Body, &prob)
		d.say("   refused: HTTP %d %s", resp.Status, prob.Code)
		for _, e := range prob.Errors {
			d.say("     %s: %s", e.Field, e.Message)
		}
		if prob.Decision != nil {
			for _, r := range prob.Decision.Reasons {
				d.say("     %s: %s", r.Code, r.Message)
			}
		}
		d.say("   (the refusal is a signed 'denied' entry in the exchange log; nothing is delivered)")
		return nil, nil
	}
	return resp.Receipt, nil
}

func (d *demo) track(ctx context.Context, p *sim.Partner, caseNo string) (*gateway.ExchangeView, error) {
	resp, err := p.Track(ctx, d.gwURL, caseNo)
	if err != nil {
		return nil, err
	}
	if resp.Status != http.StatusOK {
		return nil, fmt.Errorf("track %s: HTTP %d %s", caseNo, resp.Status, resp.Body)
	}
	var v gateway.ExchangeView
	if err := json.Unmarshal(resp.Body, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

func (d *demo) waitDelivered(ctx context.Context, p *sim.Partner, caseNo string) (*gateway.ExchangeView, error) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		v, err := d.track(ctx, p, caseNo)
		if err != nil {
			return nil, err
		}
		if v.Delivery.State == "delivered" {
			return v, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("case %s not delivered in time (state %s)", caseNo, v.Delivery.State)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (d *demo) auditorGet(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.gwURL+path, nil)
	if err != nil {
		return nil, err
	}
	if _, err := httpsig.SignRequest(req, nil, d.pki.Auditor); err != nil {
		return nil, err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d %s", path, resp.StatusCode, b)
	}
	return b, nil
}

func problemCode(b []byte) string {
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(b, &p)
	return p.Code
}
