package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/gateway/exchangelog"
)

func runAudit(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "verify" {
		fmt.Fprintln(stderr, "usage: tongban audit verify [--log-key CERT] BUNDLE")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return 0
		}
		return 2
	}
	fs := newFlags("audit verify", "audit verify [--log-key CERT] BUNDLE", stderr)
	logKey := fs.String("log-key", "", "the log's certificate(s), PEM, obtained out of band (default: trust the bundle's)")
	if code, ok := parse(fs, args[1:]); !ok {
		return code
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	return auditVerify(fs.Arg(0), *logKey, stdout, stderr)
}

func auditVerify(path, logKey string, stdout, stderr io.Writer) int {
	opts := exchangelog.NewVerifyOptions()
	if logKey != "" {
		cs, err := certs.LoadCertificates(logKey)
		if err != nil {
			return fail(stderr, "--log-key: %v", err)
		}
		opts = opts.WithLogCertificates(cs...)
	}
	f, err := os.Open(path)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	defer f.Close()
	sum, err := exchangelog.VerifyBundle(f, opts)
	if err != nil {
		fmt.Fprintf(stderr, "tongban: %s: FAILED: %v\n", path, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: OK\n%s", path, sum)
	return 0
}
