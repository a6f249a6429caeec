package main

import (
	"context"
	"io"
)

func policyPush(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return fail(stderr, "not yet")
}
func policyValidate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return fail(stderr, "not yet")
}
func policySimulate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return fail(stderr, "not yet")
}
func policyActivate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return fail(stderr, "not yet")
}
func policyHistory(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return fail(stderr, "not yet")
}
func policyRollback(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return fail(stderr, "not yet")
}
