package main

import (
	"context"
	"fmt"
	"io"

	"github.com/tongban/tongban/certs"
)

func runCerts(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "rotate" {
		return runCertsRotate(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "init" {
		fmt.Fprintln(stderr, "usage: tongban certs init [--dir DIR] | tongban certs rotate --role gateway|log [flags]")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return 0
		}
		return 2
	}
	fs := newFlags("certs init", "certs init [--dir DIR]", stderr)
	dir := fs.String("dir", "var/certs", "directory for the dev PKI (existing keys are never overwritten)")
	if code, ok := parse(fs, args[1:]); !ok {
		return code
	}
	if err := certs.InitDevPKI(*dir); err != nil {
		return fail(stderr, "%v", err)
	}
	fmt.Fprintf(stdout, "dev PKI in %s\n", *dir)
	return 0
}
