package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/gateway/console"
	"github.com/tongban/tongban/httpsig"
)

func runConsole(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "login" {
		fmt.Fprintln(stderr, "usage: tongban console login [--gateway URL] [--cert FILE] [--key FILE] [--tls-ca FILE] CHALLENGE")
		fmt.Fprintln(stderr, "  login   sign the console's sign-in challenge with an administrator's or auditor's key and print the one-time link")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return 0
		}
		return 2
	}
	return consoleLogin(ctx, args[1:], stdout, stderr)
}

// consoleLogin signs the challenge the console shows: a POST of
// {"challenge": …} to /console/login, signed like every API request
// (RFC 9421, SM2-SM3), so the private key never reaches the browser.
func consoleLogin(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("console login", "console login [--gateway URL] [--cert FILE] [--key FILE] [--tls-ca FILE] CHALLENGE", stderr)
	gw := fs.String("gateway", "https://127.0.0.1:8443", "the gateway's public base URL (what the console's sign-in page shows)")
	certPath := fs.String("cert", filepath.Join("var", "certs", "admin.pem"), "your certificate (administrator or auditor)")
	keyPath := fs.String("key", filepath.Join("var", "certs", "admin.key"), "your SM2 private key (PKCS#8 PEM)")
	tlsCA := fs.String("tls-ca", filepath.Join("var", "certs", "tls.pem"), "the certificate that the gateway's TLS certificate is checked against (the dev tls.pem); empty or missing: the system roots")
	passEnv := fs.String("passphrase-env", "", "environment variable holding the key's passphrase (encrypted PKCS#8)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	challenge := strings.TrimSpace(fs.Arg(0))
	var pass []byte
	if *passEnv != "" {
		v, ok := os.LookupEnv(*passEnv)
		if !ok {
			return fail(stderr, "passphrase: environment variable %s is not set", *passEnv)
		}
		pass = []byte(v)
	}
	signer, err := certs.LoadSigner(*certPath, *keyPath, pass)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	client, err := consoleClient(*tlsCA)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	base, err := httpsig.NormalizeBaseURL(*gw)
	if err != nil {
		return fail(stderr, "--gateway: %v", err)
	}
	body, _ := json.Marshal(console.SignInRequest{Challenge: challenge})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+console.SignInPath, nil)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if _, err := httpsig.SignRequest(req, body, signer); err != nil {
		return fail(stderr, "sign: %v", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fail(stderr, "%v", err)
	}
	if resp.StatusCode != http.StatusCreated {
		var p struct{ Code, Detail string }
		_ = json.Unmarshal(b, &p)
		if p.Code == "" {
			return fail(stderr, "sign-in refused: HTTP %d", resp.StatusCode)
		}
		return fail(stderr, "sign-in refused: %s: %s", p.Code, p.Detail)
	}
	var out console.SignInResponse
	if err := json.Unmarshal(b, &out); err != nil {
		return fail(stderr, "unexpected answer: %v", err)
	}
	fmt.Fprintf(stderr, "signed in as %s (key %s); open this link in the browser that shows the challenge, before %s:\n",
		out.Role, out.KeyID, out.Expires.In(time.FixedZone("CST", 8*3600)).Format("15:04:05"))
	fmt.Fprintln(stdout, out.Link)
	return 0
}

// consoleClient trusts tlsCA when that file exists, the system roots
// otherwise.
func consoleClient(tlsCA string) (*http.Client, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if tlsCA != "" {
		pem, err := os.ReadFile(tlsCA)
		switch {
		case err == nil:
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("%s: no certificate", tlsCA)
			}
			cfg.RootCAs = pool
		case !os.IsNotExist(err):
			return nil, err
		}
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}, nil
}
