package main

import (
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
	"github.com/tongban/tongban/sim"
)

// simDefaults are where each simulated district listens by default: the
// endpoints the gateway's default configuration delivers to.
var simDefaults = map[string]struct{ division, listen string }{
	"nanhai": {adapters.DivisionNanhai, "127.0.0.1:9605"},
	"liwan":  {adapters.DivisionLiwan, "127.0.0.1:9103"},
}

func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || simDefaults[args[0]].division == "" {
		fmt.Fprintln(stderr, "usage: tongban sim nanhai|liwan [--listen ADDR] [--gateway URL] [--certs DIR] [--send FILE | --send-status FILE | --track CASENO]")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return 0
		}
		return 2
	}
	which := args[0]
	def := simDefaults[which]
	fs := newFlags("sim "+which, "sim "+which+" [flags]", stderr)
	listen := fs.String("listen", def.listen, "address to receive deliveries on (plain HTTP on loopback; message signatures are the boundary)")
	gw := fs.String("gateway", "https://"+gateway.DefaultListen, "the gateway's base URL")
	certDir := fs.String("certs", filepath.Join("var", "certs"), "the dev PKI directory (tongban certs init / serve make it)")
	send := fs.String("send", "", "sign and submit this case file, print the answer and exit")
	sendStatus := fs.String("send-status", "", "sign and submit this status update file, print the answer and exit")
	track := fs.String("track", "", "look a case up by either district's number, print it and exit")
	if code, ok := parse(fs, args[1:]); !ok {
		return code
	}
	p, err := newSimPartner(*certDir, which, "http://"+*listen, slog.New(slog.NewTextHandler(stderr, nil)))
	if err != nil {
		return fail(stderr, "%v", err)
	}
	var resp *sim.Response
	switch {
	case *send != "" || *sendStatus != "":
		file := *send + *sendStatus
		body, rerr := os.ReadFile(file)
		if rerr != nil {
			return fail(stderr, "%v", rerr)
		}
		if *send != "" {
			resp, err = p.SendCase(ctx, *gw, body)
		} else {
			resp, err = p.SendStatus(ctx, *gw, body)
		}
	case *track != "":
		resp, err = p.Track(ctx, *gw, *track)
	default:
		return serveSim(ctx, p, *listen, which, stdout, stderr)
	}
	if resp != nil {
		fmt.Fprintf(stdout, "HTTP %d\n%s\n", resp.Status, indentJSON(resp.Body))
	}
	if err != nil {
		return fail(stderr, "%v", err)
	}
	if resp.Status >= 400 {
		return 1
	}
	return 0
}

func serveSim(ctx context.Context, p *sim.Partner, listen, which string, stdout, stderr io.Writer) int {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	fmt.Fprintf(stdout, "simulated %s approval system receiving deliveries on http://%s\n", which, ln.Addr())
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fail(stderr, "%v", err)
	}
	return 0
}

// newSimPartner loads a simulated district's key from the dev PKI in dir
// (making the PKI if it is not there yet) and trusts the gateway's key and
// TLS certificate from it.
func newSimPartner(dir, which, publicURL string, logger *slog.Logger) (*sim.Partner, error) {
	if err := certs.InitDevPKI(dir); err != nil {
		return nil, err
	}
	pki, err := certs.LoadDevPKI(dir)
	if err != nil {
		return nil, err
	}
	signer := pki.Nanhai
	if which == "liwan" {
		signer = pki.Liwan
	}
	client, err := gatewayClient(dir)
	if err != nil {
		return nil, err
	}
	return sim.New(sim.Options{
		Division: simDefaults[which].division, Signer: signer, Trust: pki.TrustStore(),
		PublicURL: publicURL, HTTPClient: client, Logger: logger,
	})
}

// gatewayClient trusts the gateway's dev TLS certificate.
func gatewayClient(dir string) (*http.Client, error) {
	pem, err := os.ReadFile(filepath.Join(dir, "tls.pem"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no certificate", filepath.Join(dir, "tls.pem"))
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}, nil
}

func indentJSON(b []byte) string {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return string(b)
	}
	out, _ := json.MarshalIndent(v, "", "  ")
	return string(out)
}
