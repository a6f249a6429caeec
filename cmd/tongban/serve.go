package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/pprof"

	"github.com/tongban/tongban/gateway"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("serve", "serve [--config FILE] [--listen ADDR] [--public-url URL] [--data DIR] [--policies DIR]", stderr)
	config := fs.String("config", "", "YAML configuration file (default: embedded defaults)")
	listen := fs.String("listen", "", "listen address (default 127.0.0.1:8443)")
	publicURL := fs.String("public-url", "", "public base URL partners sign against (default https:// + listen)")
	data := fs.String("data", "", "data directory: SQLite store and dev PKI (default ./var)")
	pols := fs.String("policies", "", "policy bundle directory (default: the embedded pilot bundle)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the gateway to this file until it stops (for `go tool pprof`)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	defer stopProfile()
	cfg, err := gateway.LoadConfig(*config)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&cfg.Listen, *listen)
	set(&cfg.PublicURL, *publicURL)
	set(&cfg.Data, *data)
	set(&cfg.Policies, *pols)
	gogc, limit := applyGCPolicy(os.Getenv)
	slog.New(slog.NewJSONHandler(stderr, nil)).Info("collector", "gogc", gogc, "gomemlimit", limit)
	return serve(ctx, cfg, stdout, stderr, nil)
}

// serve runs a gateway until ctx ends; ready, when set, receives the
// listener's address once it accepts connections.
func serve(ctx context.Context, cfg *gateway.Config, stdout, stderr io.Writer, ready func(*gateway.Server, string)) int {
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	srv, err := gateway.NewServer(ctx, cfg, logger)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		srv.Close()
		return fail(stderr, "%v", err)
	}
	if ready != nil {
		ready(srv, ln.Addr().String())
	} else {
		fmt.Fprintf(stdout, "tongban gateway listening on https://%s (public URL %s, data %s)\n", ln.Addr(), cfg.PublicURL, cfg.Data)
	}
	if err := srv.Run(ctx, ln); err != nil {
		return fail(stderr, "%v", err)
	}
	return 0
}

// startCPUProfile writes a CPU profile of this process to path until stop
// is called; with an empty path it does nothing.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
