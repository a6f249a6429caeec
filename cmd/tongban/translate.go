package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/tongban/tongban/gateway"
	"github.com/tongban/tongban/policies"
)

// Exit codes of `tongban translate` (cli.md).
const (
	exitInvalid = 2
	exitDenied  = 3
)

func runTranslate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("translate", "translate --from nanhai|liwan [--status --case-no NO] [--bundle DIR] FILE", stderr)
	from := fs.String("from", "", "the sending district: nanhai or liwan")
	status := fs.Bool("status", false, "FILE is a status update, not a new case")
	caseNo := fs.String("case-no", "", "with --status: the receiving district's number of the case")
	bundle := fs.String("bundle", "", "policy bundle directory (default: the embedded pilot bundle)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	partners := gateway.PilotPartners()
	src := partners.ByID(*from)
	if src == nil {
		return fail(stderr, "--from must be nanhai or liwan, not %q", *from)
	}
	if *status && *caseNo == "" {
		return fail(stderr, "--status needs --case-no")
	}
	body, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return fail(stderr, "%v", err)
	}
	var out []byte
	if *status {
		out, err = gateway.TranslateStatus(src, partners.Other(src), body, *caseNo)
	} else {
		out, err = translateCase(ctx, partners, src, body, *bundle)
	}
	if err != nil {
		status, doc := gateway.ProblemDocument(err, fs.Arg(0))
		if status >= 500 {
			return fail(stderr, "%v", err)
		}
		b, _ := json.Marshal(doc)
		fmt.Fprintln(stdout, string(b))
		if doc["code"] == gateway.CodePolicyDenied {
			return exitDenied
		}
		return exitInvalid
	}
	_, _ = stdout.Write(out)
	return 0
}

func translateCase(ctx context.Context, partners gateway.Partners, src *gateway.Partner, body []byte, bundleDir string) ([]byte, error) {
	engine, err := loadEngine(ctx, bundleDir)
	if err != nil {
		return nil, err
	}
	c, err := src.Codec.DecodeCase(body)
	if err != nil {
		return nil, err
	}
	t, err := gateway.TranslateCase(ctx, engine, partners, src, c)
	if err != nil {
		return nil, err
	}
	return t.Record, nil
}

func loadEngine(ctx context.Context, dir string) (*policies.Engine, error) {
	b := policies.Pilot()
	if dir != "" {
		var err error
		if b, err = policies.LoadBundle(dir); err != nil {
			return nil, err
		}
	}
	return policies.Compile(ctx, b)
}
