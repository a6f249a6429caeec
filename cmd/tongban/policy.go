package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/gateway"
	"github.com/tongban/tongban/httpsig"
	"github.com/tongban/tongban/policies"
)

func runPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sub := map[string]func(context.Context, []string, io.Writer, io.Writer) int{
		"eval": policyEval, "test": policyTest,
		"push": policyPush, "validate": policyValidate, "simulate": policySimulate,
		"activate": policyActivate, "history": policyHistory, "rollback": policyRollback,
	}
	if len(args) == 0 || sub[args[0]] == nil {
		fmt.Fprintln(stderr, "usage: tongban policy eval|test|push|validate|simulate|activate|history|rollback [flags]")
		fmt.Fprintln(stderr, "  eval [--bundle DIR] FILE    evaluate the decision for an input document")
		fmt.Fprintln(stderr, "  test [--bundle DIR]         compile the bundle and run its Rego tests")
		fmt.Fprintln(stderr, "  push DIR|FILE.tar           upload a bundle (its root: .manifest and tongban/) as a draft")
		fmt.Fprintln(stderr, "  validate DRAFT              compile strictly, check opa fmt, run the Rego tests, check the catalog schema")
		fmt.Fprintln(stderr, "  simulate [--n N] DRAFT      decide the last N logged cases with the draft; show what would change")
		fmt.Fprintln(stderr, "  activate DRAFT              make a validated draft the active policy (logged)")
		fmt.Fprintln(stderr, "  history                     the activations, newest first")
		fmt.Fprintln(stderr, "  rollback REVISION           activate an earlier revision again (logged)")
		fmt.Fprintln(stderr, "The administration commands sign with the administrator key (--certs DIR, or --key/--cert;")
		fmt.Fprintln(stderr, "default var/certs/admin.{key,pem}) and talk to --gateway URL (default https://127.0.0.1:8443).")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return 0
		}
		return 2
	}
	return sub[args[0]](ctx, args[1:], stdout, stderr)
}

func policyEval(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("policy eval", "policy eval [--bundle DIR] FILE", stderr)
	bundle := fs.String("bundle", "", "policy bundle directory (default: the embedded pilot bundle)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	b, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return fail(stderr, "%v", err)
	}
	var in policies.Input
	if err := json.Unmarshal(b, &in); err != nil {
		return fail(stderr, "%s: %v", fs.Arg(0), err)
	}
	engine, err := loadEngine(ctx, *bundle)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	d, err := engine.Evaluate(ctx, in)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	out, _ := json.MarshalIndent(d, "", "  ")
	fmt.Fprintln(stdout, string(out))
	return 0
}

func policyTest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("policy test", "policy test [--bundle DIR]", stderr)
	dir := fs.String("bundle", "", "policy bundle directory (default: the embedded pilot bundle)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	b := policies.Pilot()
	if *dir != "" {
		var err error
		if b, err = policies.LoadBundle(*dir); err != nil {
			return fail(stderr, "%v", err)
		}
	}
	rep, err := b.Validate(ctx)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	printReport(stdout, rep)
	if !rep.OK {
		return 1
	}
	return 0
}

func printReport(w io.Writer, rep *policies.Report) {
	fmt.Fprintf(w, "revision %s\n", rep.Revision)
	fmt.Fprintf(w, "tests: %d passed, %d failed\n", rep.Tests.Passed, rep.Tests.Failed)
	for _, p := range rep.Problems {
		if p.Line > 0 {
			fmt.Fprintf(w, "  %s:%d: %s\n", p.File, p.Line, p.Message)
		} else if p.File != "" {
			fmt.Fprintf(w, "  %s: %s\n", p.File, p.Message)
		} else {
			fmt.Fprintf(w, "  %s\n", p.Message)
		}
	}
	if rep.OK {
		fmt.Fprintln(w, "PASS")
	} else {
		fmt.Fprintln(w, "FAIL")
	}
}

// adminFlags are the flags every administration command shares: where the
// gateway is, which administrator key signs, which TLS certificate to
// trust.
type adminFlags struct {
	gateway, certDir, key, cert, ca, config, passEnv *string
	jsonOut                                          *bool
}

func addAdminFlags(fs *flag.FlagSet) *adminFlags {
	return &adminFlags{
		gateway: fs.String("gateway", "", "the gateway's base URL (default: public_url of --config, else https://"+gateway.DefaultListen+")"),
		certDir: fs.String("certs", "", "dev PKI directory holding admin.pem, admin.key and tls.pem (default: DATA/certs of --config, else var/certs)"),
		key:     fs.String("key", "", "the administrator's SM2 private key, PKCS#8 PEM (default: CERTS/admin.key)"),
		cert:    fs.String("cert", "", "the administrator's certificate, PEM (default: CERTS/admin.pem)"),
		ca:      fs.String("ca", "", "the certificate the gateway's TLS certificate must chain to (default: tls.cert of --config, else CERTS/tls.pem if present, else the system roots)"),
		config:  fs.String("config", "", "the gateway's YAML configuration (tongban serve --config), for the defaults above"),
		passEnv: fs.String("passphrase-env", "", "environment variable holding the passphrase of an encrypted key"),
		jsonOut: fs.Bool("json", false, "print the gateway's JSON answer instead of the summary"),
	}
}

// adminClient calls the administrator API, every request signed with the
// administrator's key (signing.md).
type adminClient struct {
	base   string
	http   *http.Client
	signer *certs.Signer
	json   bool
}

// client resolves the flags, the configuration file and the defaults.
func (f *adminFlags) client() (*adminClient, error) {
	base, certDir, ca := *f.gateway, *f.certDir, *f.ca
	if *f.config != "" {
		cfg, err := gateway.LoadConfig(*f.config)
		if err != nil {
			return nil, err
		}
		tlsCert := cfg.TLS.Cert
		if err := cfg.ApplyDefaults(); err != nil {
			return nil, fmt.Errorf("config %s: %w", *f.config, err)
		}
		if base == "" {
			base = cfg.PublicURL
		}
		if certDir == "" {
			certDir = cfg.DevCertsDir()
		}
		if ca == "" && tlsCert != "" {
			ca = tlsCert
		}
	}
	if base == "" {
		base = "https://" + gateway.DefaultListen
	}
	if certDir == "" {
		certDir = filepath.Join("var", "certs")
	}
	keyPath, certPath := *f.key, *f.cert
	if keyPath == "" {
		keyPath = filepath.Join(certDir, "admin.key")
	}
	if certPath == "" {
		certPath = filepath.Join(certDir, "admin.pem")
	}
	var pass []byte
	if *f.passEnv != "" {
		v, ok := os.LookupEnv(*f.passEnv)
		if !ok {
			return nil, fmt.Errorf("environment variable %s is not set", *f.passEnv)
		}
		pass = []byte(v)
	}
	signer, err := certs.LoadSigner(certPath, keyPath, pass)
	if err != nil {
		return nil, fmt.Errorf("administrator key: %w", err)
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca == "" {
		if p := filepath.Join(certDir, "tls.pem"); fileExists(p) {
			ca = p
		}
	}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no certificate", ca)
		}
		tlsConf.RootCAs = pool
	}
	return &adminClient{
		base:   strings.TrimRight(base, "/"),
		http:   &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{TLSClientConfig: tlsConf}},
		signer: signer, json: *f.jsonOut,
	}, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// call sends a signed request; an answer of 400 or more is an error naming
// the problem's code and detail.
func (c *adminClient) call(ctx context.Context, method, path, contentType string, body []byte, out any) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	if method == http.MethodPost {
		if contentType == "" {
			contentType = "application/json"
		}
		req.Header.Set("Content-Type", contentType)
	}
	if _, err := httpsig.SignRequest(req, body, c.signer); err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 400 {
		var p struct{ Code, Detail string }
		if json.Unmarshal(b, &p) == nil && p.Code != "" {
			if p.Detail != "" {
				return b, fmt.Errorf("%s %s: HTTP %d %s: %s", method, path, resp.StatusCode, p.Code, p.Detail)
			}
			return b, fmt.Errorf("%s %s: HTTP %d %s", method, path, resp.StatusCode, p.Code)
		}
		return b, fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return b, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return b, nil
}

// adminCommand parses the shared flags plus any own ones, checks the number
// of arguments, and runs body with a client.
func adminCommand(ctx context.Context, name, synopsis string, nargs int, args []string, stdout, stderr io.Writer,
	own func(*flag.FlagSet), body func(ctx context.Context, c *adminClient, args []string) error) int {
	fs := newFlags("policy "+name, "policy "+synopsis, stderr)
	af := addAdminFlags(fs)
	if own != nil {
		own(fs)
	}
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if fs.NArg() != nargs {
		fs.Usage()
		return 2
	}
	c, err := af.client()
	if err != nil {
		return fail(stderr, "%v", err)
	}
	if err := body(ctx, c, fs.Args()); err != nil {
		return fail(stderr, "%v", err)
	}
	return 0
}

// printJSON prints an answer as indented JSON.
func printJSON(w io.Writer, b []byte) {
	fmt.Fprintln(w, indentJSON(b))
}

func policyPush(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return adminCommand(ctx, "push", "push [flags] DIR|FILE.tar", 1, args, stdout, stderr, nil, func(ctx context.Context, c *adminClient, args []string) error {
		body, contentType, err := draftBody(args[0])
		if err != nil {
			return err
		}
		var d gateway.DraftView
		raw, err := c.call(ctx, http.MethodPost, "/admin/v1/policy/drafts", contentType, body, &d)
		if err != nil {
			return err
		}
		if c.json {
			printJSON(stdout, raw)
			return nil
		}
		fmt.Fprintf(stdout, "draft     %s\nrevision  %s\nfiles     %s\nuploaded  by %s at %s\n",
			d.ID, d.Revision, strings.Join(d.Files, ", "), d.UploadedBy, d.UploadedAt.Format(time.RFC3339))
		fmt.Fprintf(stdout, "next: tongban policy validate %s\n", d.ID)
		return nil
	})
}

// draftBody is a bundle directory as a tar (.manifest and tongban/**, the
// way the gateway reads it), or a tar file as it is.
func draftBody(path string) ([]byte, string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, "", err
	}
	if !st.IsDir() {
		b, err := os.ReadFile(path)
		return b, "application/x-tar", err
	}
	if !fileExists(filepath.Join(path, policies.Root)) {
		return nil, "", fmt.Errorf("%s: no %s/ directory: give the bundle root (the directory that holds .manifest and %s/)", path, policies.Root, policies.Root)
	}
	b, err := policies.LoadBundle(path)
	if err != nil {
		return nil, "", err
	}
	return b.Tar(), "application/x-tar", nil
}

func policyValidate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	failed := false
	code := adminCommand(ctx, "validate", "validate [flags] DRAFT", 1, args, stdout, stderr, nil, func(ctx context.Context, c *adminClient, args []string) error {
		var rep policies.Report
		raw, err := c.call(ctx, http.MethodPost, "/admin/v1/policy/drafts/"+url.PathEscape(args[0])+"/validate", "", nil, &rep)
		if err != nil {
			return err
		}
		failed = !rep.OK
		if c.json {
			printJSON(stdout, raw)
			return nil
		}
		fmt.Fprintf(stdout, "draft %s\n", args[0])
		printReport(stdout, &rep)
		if rep.OK {
			fmt.Fprintf(stdout, "next: tongban policy simulate %s\n", args[0])
		}
		return nil
	})
	if code == 0 && failed {
		return 1
	}
	return code
}

func policySimulate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var n *int
	return adminCommand(ctx, "simulate", "simulate [flags] [--n N] DRAFT", 1, args, stdout, stderr,
		func(fs *flag.FlagSet) {
			n = fs.Int("n", 1000, "how many of the latest logged decisions to evaluate again")
		},
		func(ctx context.Context, c *adminClient, args []string) error {
			var rep gateway.SimulationReport
			raw, err := c.call(ctx, http.MethodPost, fmt.Sprintf("/admin/v1/policy/drafts/%s/simulate?n=%d", url.PathEscape(args[0]), *n), "", nil, &rep)
			if err != nil {
				return err
			}
			if c.json {
				printJSON(stdout, raw)
				return nil
			}
			printSimulation(stdout, &rep)
			fmt.Fprintf(stdout, "next: tongban policy activate %s\n", args[0])
			return nil
		})
}

func printSimulation(w io.Writer, rep *gateway.SimulationReport) {
	fmt.Fprintf(w, "draft %s (revision %s)\nagainst the active revision %s\n", rep.Draft, rep.Revision, rep.Active)
	fmt.Fprintf(w, "evaluated %d past decisions: %d would change (%d allow → deny, %d deny → allow, %d other)\n",
		rep.Evaluated, rep.Changed, rep.AllowToDeny, rep.DenyToAllow, rep.Other)
	if len(rep.Changes) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LOG\tEXCHANGE\tITEM\tFROM → TO\tCHANNEL\tRECEIVED\tBEFORE\tAFTER")
	for _, ch := range rep.Changes {
		exchange := ch.Exchange
		if exchange == "" {
			exchange = "(refused)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s → %s\t%s\t%s\t%s\t%s\n", ch.LogIndex, exchange, ch.Input.BasicCode,
			ch.Input.From, ch.Input.To, ch.Input.Channel, ch.Input.Time.Format("2006-01-02 15:04"),
			decisionSummary(ch.Before), decisionSummary(ch.After))
	}
	tw.Flush()
}

// decisionSummary is "allow MODE (N days)" or "deny code, code (missing …)".
func decisionSummary(d policies.Decision) string {
	if d.Allow {
		return fmt.Sprintf("allow %s %dd", d.Mode, d.PromisedDays)
	}
	s := "deny " + strings.Join(d.ReasonCodes(), ",")
	if len(d.MissingMaterials) > 0 {
		s += " (missing " + strings.Join(d.MissingMaterials, ",") + ")"
	}
	return s
}

func policyActivate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return adminCommand(ctx, "activate", "activate [flags] DRAFT", 1, args, stdout, stderr, nil, func(ctx context.Context, c *adminClient, args []string) error {
		return activation(ctx, c, stdout, "/admin/v1/policy/drafts/"+url.PathEscape(args[0])+"/activate")
	})
}

func activation(ctx context.Context, c *adminClient, stdout io.Writer, path string) error {
	var a gateway.ActivationView
	raw, err := c.call(ctx, http.MethodPost, path, "", nil, &a)
	if err != nil {
		return err
	}
	if c.json {
		printJSON(stdout, raw)
		return nil
	}
	fmt.Fprintf(stdout, "active    %s\nprevious  %s\nby        %s at %s\nlogged    policy_activated, log index %d\n",
		a.Revision, a.Previous, a.ActivatedBy, a.ActivatedAt.Format(time.RFC3339), a.LogIndex)
	return nil
}

func policyHistory(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return adminCommand(ctx, "history", "history [flags]", 0, args, stdout, stderr, nil, func(ctx context.Context, c *adminClient, _ []string) error {
		var hist []gateway.HistoryItem
		raw, err := c.call(ctx, http.MethodGet, "/admin/v1/policy/history", "", nil, &hist)
		if err != nil {
			return err
		}
		if c.json {
			printJSON(stdout, raw)
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "\tREVISION\tACTIVATED\tBY\tLOG")
		for _, h := range hist {
			mark, at, by, idx := " ", "", h.By, fmt.Sprint(h.LogIndex)
			if h.Active {
				mark = "*"
			}
			if h.Initial {
				at, by, idx = "(at start-up)", "-", "-"
			} else {
				at = h.At.Format("2006-01-02 15:04:05")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", mark, h.Revision, at, by, idx)
		}
		tw.Flush()
		fmt.Fprintln(stdout, "(* active; roll back with: tongban policy rollback REVISION)")
		return nil
	})
}

func policyRollback(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return adminCommand(ctx, "rollback", "rollback [flags] REVISION", 1, args, stdout, stderr, nil, func(ctx context.Context, c *adminClient, args []string) error {
		rev, err := resolveRevision(ctx, c, args[0])
		if err != nil {
			return err
		}
		return activation(ctx, c, stdout, "/admin/v1/policy/rollback/"+rev)
	})
}

// resolveRevision completes a unique prefix (at least 6 hex digits) of a
// revision in the history.
func resolveRevision(ctx context.Context, c *adminClient, prefix string) (string, error) {
	prefix = strings.ToLower(prefix)
	if len(prefix) == 64 {
		return prefix, nil
	}
	if len(prefix) < 6 || strings.Trim(prefix, "0123456789abcdef") != "" {
		return "", fmt.Errorf("revision %q: give the revision, or at least its first 6 hex digits", prefix)
	}
	var hist []gateway.HistoryItem
	if _, err := c.call(ctx, http.MethodGet, "/admin/v1/policy/history", "", nil, &hist); err != nil {
		return "", err
	}
	var found []string
	for _, h := range hist {
		if strings.HasPrefix(h.Revision, prefix) && !slices.Contains(found, h.Revision) {
			found = append(found, h.Revision)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("no revision %s… in the history (tongban policy history)", prefix)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("revision %s… is ambiguous: %s", prefix, strings.Join(found, ", "))
}
