// Command harness runs a seeded gateway with both simulated districts for
// the console's browser tests (console-tests/tests): it prints one JSON line
// describing it (URL, certificate directory, numbers the seed made, a draft
// that disables an item), then serves a small loopback control endpoint
// until its standard input closes.
//
//	POST /submit?from=nanhai&item=000105002000 → {"status": 403, "caseNo": "…"}
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/tongban/tongban/gateway/console/consoletest"
)

// Info is the line the harness prints once ready.
type Info struct {
	URL     string              `json:"url"`
	Certs   string              `json:"certs"`
	Draft   string              `json:"draft"` // a bundle tar disabling DisabledItem
	Item    string              `json:"disabledItem"`
	Control string              `json:"control"`
	Seed    *consoletest.Seeded `json:"seed"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		os.Exit(1)
	}
}

func run() error {
	dir, err := os.MkdirTemp("", "console-harness-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("HARNESS_VERBOSE") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	env, err := consoletest.Start(ctx, dir, logger)
	if err != nil {
		return err
	}
	defer env.Close()
	seed, err := env.Seed(ctx)
	if err != nil {
		return err
	}
	tar, err := consoletest.DisableItem(consoletest.ItemCompanyChange)
	if err != nil {
		return err
	}
	draft := filepath.Join(dir, "disable-company-change.tar")
	if err := os.WriteFile(draft, tar, 0o644); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /submit", func(w http.ResponseWriter, r *http.Request) {
		status, no, body, err := env.SubmitStatus(r.Context(), r.URL.Query().Get("from"), r.URL.Query().Get("item"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"status": status, "caseNo": no, "body": string(body)})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	line, _ := json.Marshal(Info{URL: env.URL, Certs: filepath.Join(dir, "certs"), Draft: draft, Item: consoletest.ItemCompanyChange,
		Control: "http://" + ln.Addr().String(), Seed: seed})
	fmt.Println(string(line))
	_, _ = io.Copy(io.Discard, os.Stdin) // until the test closes stdin
	return nil
}
