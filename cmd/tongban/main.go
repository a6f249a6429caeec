// Command tongban is the one binary of the gateway: serve, translate,
// policy, audit, certs, sim, demo (../../../shared/contracts/cli.md).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand: its one-line summary and its body. run returns
// the exit code; errors it prints itself (stderr, one line a problem).
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

var commands = map[string]command{
	"serve":     {"run the gateway", runServe},
	"translate": {"decode, decide and translate a record without signing, storing or sending", runTranslate},
	"policy":    {"evaluate, test and administer the cross-district policy", runPolicy},
	"audit":     {"verify an exported log or evidence bundle offline", runAudit},
	"certs":     {"make a dev PKI (SM2)", runCerts},
	"sim":       {"run a simulated district approval system", runSim},
	"demo":      {"run a gateway and both simulated districts and show the whole path", runDemo},
	"console":   {"sign in to the web console with an administrator's or auditor's key", runConsole},
	"load":      {"drive a gateway with signed cases and report throughput, latency and the floor", runLoad},
	"bench":     {"measure the floor: the unavoidable cryptography and policy of one exchange", runBench},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "tongban: unknown command %q (see tongban --help)\n", args[0])
		return 2
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "tongban — the cross-district interoperability gateway (通办)")
	fmt.Fprintln(w, "\nusage: tongban <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'tongban <command> --help' for a command's flags.")
}

// newFlags makes a flag set that prints its usage to stderr and reports
// errors instead of exiting.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: tongban %s\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags; ok is false when the command should exit with code.
func parse(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(interleave(fs, args)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	return 0, true
}

// interleave moves flags after positional arguments to the front, so that
// `tongban translate FILE --from nanhai` works as well.
func interleave(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if f := fs.Lookup(name); f != nil {
			if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
				continue
			}
			if i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		}
	}
	return append(flags, pos...)
}

func fail(stderr io.Writer, format string, args ...any) int {
	fmt.Fprintf(stderr, "tongban: "+format+"\n", args...)
	return 1
}
