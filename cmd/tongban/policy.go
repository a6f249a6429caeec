package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

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
		fmt.Fprintln(stderr, "  push DIR                    upload a bundle directory as a draft (administrator key)")
		fmt.Fprintln(stderr, "  validate ID | simulate ID | activate ID | history | rollback REVISION")
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
	d, err := engine.Decide(ctx, in)
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
