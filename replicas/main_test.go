package replicas

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"testing"

	"github.com/tongban/tongban/gateway"
)

// Environment of a replica process.
const (
	envReplicaConfig = "TONGBAN_REPLICA_CONFIG"
	// envReplicaProfile, when set, makes the replica write a CPU profile
	// there until it is stopped with SIGTERM.
	envReplicaProfile = "TONGBAN_REPLICA_CPUPROFILE"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(envReplicaConfig); path != "" {
		os.Exit(serveReplica(path))
	}
	code := m.Run()
	closeBenchClusters()
	os.Exit(code)
}

// serveReplica is `tongban serve --config path` (cmd/tongban/serve.go),
// printing "listening ADDR" once the listener is open.
func serveReplica(path string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if prof := os.Getenv(envReplicaProfile); prof != "" {
		f, err := os.Create(prof)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "replica: profile:", err)
			return 1
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	cfg, err := gateway.LoadConfig(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "replica:", err)
		return 1
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	srv, err := gateway.NewServer(ctx, cfg, logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, "replica:", err)
		return 1
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		srv.Close()
		fmt.Fprintln(os.Stderr, "replica:", err)
		return 1
	}
	fmt.Printf("listening %s\n", ln.Addr())
	if err := srv.Run(ctx, ln); err != nil {
		fmt.Fprintln(os.Stderr, "replica:", err)
		return 1
	}
	return 0
}
