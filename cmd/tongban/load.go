package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"time"

	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/gateway"
	"github.com/tongban/tongban/load"
)

// loadGCPercent is the collector setting of `tongban load` (GOGC unset).
const loadGCPercent = 400

func runLoad(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("load", "load (--local | --target URL) [--rate R | --connections N] (--duration D | --count N) [flags]", stderr)
	target := fs.String("target", "", "drive the running gateway at this base URL (its partners must deliver where you want them)")
	local := fs.Bool("local", false, "start `tongban serve` (child process, fresh data directory, free loopback port) and both simulated receivers, and stop them after")
	inProcess := fs.Bool("in-process", false, "with --local: run the gateway in this process instead (for --cpuprofile of the whole path)")
	keep := fs.String("keep", "", "with --local: use and keep this data directory")
	certDir := fs.String("certs", filepath.Join("var", "certs"), "with --target: the dev PKI directory (partner keys, tls.pem)")
	rate := fs.Float64("rate", 0, "requests per second on a fixed schedule (0: as fast as answers come back)")
	conns := fs.Int("connections", 128, "concurrent requests (with --rate: the most in flight)")
	duration := fs.Duration("duration", 0, "how long to send")
	count := fs.Int("count", 0, "how many requests to send")
	caseSize := fs.Int("case-size", 20<<10, "approximate size of a case in bytes (materials sized to reach it)")
	mixFlag := fs.String("mix", load.DefaultMix.String(), "weights of allowed, denied and invalid cases")
	presign := fs.Int("presign", -1, "requests to sign before the run (default: as many as the run should need, up to 400,000)")
	floorTime := fs.Duration("floor-time", 2*time.Second, "how long to measure the floor before the load (0: skip)")
	floorAfter := fs.Bool("floor-after", true, "measure the floor again after the load, the local gateway and receivers stopped, and report the mean of both")
	drain := fs.Duration("drain", 30*time.Second, "how long to wait after the load for deliveries still due")
	firstDay := fs.Int("first-day", 0, "case numbers start this many days before today (default 1 with --local, random with --target)")
	seed := fs.Uint64("seed", 1, "seed of the sequence of case kinds")
	extra := fs.String("gateway-config", "", "with --local: YAML appended to the gateway's generated configuration")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process during the load")
	memProfile := fs.String("memprofile", "", "write an allocation profile of this process after the load")
	gwProfile := fs.String("gateway-cpuprofile", "", "with --local: the child gateway writes its CPU profile to this file (`tongban serve --cpuprofile`)")
	asJSON := fs.Bool("json", false, "print the report as one JSON object, the last line of stdout")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if *local == (*target != "") {
		return fail(stderr, "load: give exactly one of --local and --target URL")
	}
	if *duration <= 0 && *count <= 0 {
		return fail(stderr, "load: give --duration or --count")
	}
	mix, err := load.ParseMix(*mixFlag)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	say := func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }
	if os.Getenv("GOGC") == "" {
		// The client and, with --local, the simulated receivers share the
		// cores with the gateway; collecting as often as GOGC=100 would
		// spend them on the load tool's own garbage (its pre-signed
		// requests are long-lived, its bodies short-lived). The gateway's
		// memory is what the report measures, not this process's.
		debug.SetGCPercent(loadGCPercent)
	}

	var floor *load.Floor
	if *floorTime > 0 {
		say("measuring the floor for %s…", *floorTime)
		if floor, err = load.MeasureFloor(ctx, load.FloorOptions{Duration: *floorTime, CaseSize: *caseSize}); err != nil {
			return fail(stderr, "floor: %v", err)
		}
		say("%s", floor)
	}

	lag := load.NewLagTracker()
	var (
		pki   *certs.DevPKI
		gwURL string
		l     *load.Local
	)
	closed := false
	closeLocal := func() {
		if l == nil || closed {
			return
		}
		closed = true
		if cerr := l.Close(); cerr != nil {
			say("%v", cerr)
		}
	}
	if *local {
		o := load.LocalOptions{Dir: *keep, Lag: lag, Connections: *conns, ExtraConfig: *extra}
		if *gwProfile != "" {
			if *inProcess {
				return fail(stderr, "load: --gateway-cpuprofile is for a child gateway; with --in-process use --cpuprofile")
			}
			abs, err := filepath.Abs(*gwProfile)
			if err != nil {
				return fail(stderr, "%v", err)
			}
			o.ServeArgs = []string{"--cpuprofile", abs}
		}
		if *inProcess {
			o.Serve = serveInProcess
		} else if o.Binary, err = os.Executable(); err != nil {
			return fail(stderr, "%v", err)
		}
		if *firstDay == 0 {
			*firstDay = 1
		}
		say("starting the gateway and both receivers…")
		if l, err = load.StartLocal(ctx, o); err != nil {
			return fail(stderr, "%v", err)
		}
		defer closeLocal()
		pki, gwURL = l.PKI, l.URL
		say("gateway %s (pid %d, data %s), receivers %s and %s", gwURL, l.Pid(), l.Dir, l.Receivers.NanhaiURL, l.Receivers.LiwanURL)
	} else {
		if pki, err = certs.LoadDevPKI(*certDir); err != nil {
			return fail(stderr, "%v", err)
		}
		gwURL = *target
		lag = nil
		if *firstDay == 0 {
			*firstDay = 30 + rand.IntN(3000)
		}
	}
	httpClient, err := load.TLSClient(pki.TLSCert, *conns)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	nanhai, err := newSimPartner(filepath.Dir(pki.TLSCert), "nanhai", "http://127.0.0.1:1", quiet)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	liwan, err := newSimPartner(filepath.Dir(pki.TLSCert), "liwan", "http://127.0.0.1:1", quiet)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	gen, err := load.NewGenerator(load.GeneratorOptions{Target: gwURL, Nanhai: nanhai, Liwan: liwan,
		NanhaiKey: pki.Nanhai, LiwanKey: pki.Liwan, CaseSize: *caseSize, Mix: mix, Seed: *seed, FirstDay: *firstDay})
	if err != nil {
		return fail(stderr, "%v", err)
	}
	n := *presign
	if n < 0 {
		n = expectedRequests(*count, *rate, *duration)
	}
	if n > 0 {
		say("signing %d cases ahead (materials of %d bytes, mix %s)…", n, gen.MaterialSize(), mix)
		if err := gen.Presign(n); err != nil {
			return fail(stderr, "%v", err)
		}
	}

	opts := load.Options{Generator: gen, Client: httpClient, Rate: *rate, Connections: *conns, Duration: *duration,
		Count: *count, Lag: lag, Drain: *drain, Progress: stderr}
	if l != nil {
		opts.Extra = func() string {
			rss, err := l.RSS()
			if err != nil {
				return ""
			}
			return fmt.Sprintf("gateway RSS %d MiB", rss>>20)
		}
	}
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	say("load: %s", describe(*rate, *conns, *duration, *count))
	rep, err := load.Run(ctx, opts)
	stopProfile()
	if err != nil {
		return fail(stderr, "%v", err)
	}
	if *memProfile != "" {
		f, err := os.Create(*memProfile)
		if err != nil {
			return fail(stderr, "%v", err)
		}
		_ = pprof.Lookup("allocs").WriteTo(f, 0)
		f.Close()
	}
	if l != nil {
		if rss, err := l.RSS(); err == nil {
			say("gateway RSS at the end: %d MiB", rss>>20)
		}
	}
	if floor != nil {
		perSecond := floor.PerSecond
		if *floorAfter {
			// The machine's speed drifts (by up to a quarter between runs
			// minutes apart on a shared VM): the floor measured on both
			// sides of the run is a better measure of it during the run.
			closeLocal()
			say("measuring the floor again for %s…", *floorTime)
			after, err := load.MeasureFloor(ctx, load.FloorOptions{Duration: *floorTime, CaseSize: *caseSize})
			if err != nil {
				return fail(stderr, "floor: %v", err)
			}
			say("%s", after)
			perSecond = (floor.PerSecond + after.PerSecond) / 2
			say("floor before %.0f/s, after %.0f/s: mean %.0f/s", floor.PerSecond, after.PerSecond, perSecond)
		}
		rep.SetFloor(perSecond)
	}
	fmt.Fprint(stderr, rep.Summary())
	if *asJSON {
		b, err := json.Marshal(rep)
		if err != nil {
			return fail(stderr, "%v", err)
		}
		fmt.Fprintln(stdout, string(b))
	} else {
		fmt.Fprint(stdout, rep.Summary())
	}
	return 0
}

// expectedRequests is how many requests the run should send: the count,
// or the rate times the duration, or (as fast as possible) 2,500 a second;
// at most 400,000 (about 160 MB of signatures; bodies are not kept).
func expectedRequests(count int, rate float64, d time.Duration) int {
	n := count
	if n <= 0 {
		perS := rate
		if perS <= 0 {
			perS = 2500
		}
		n = int(perS*d.Seconds()*1.02) + 64
	}
	return min(n, 400_000)
}

func describe(rate float64, conns int, d time.Duration, count int) string {
	how := fmt.Sprintf("as fast as it goes on %d connections", conns)
	if rate > 0 {
		how = fmt.Sprintf("%.0f requests/s (at most %d in flight)", rate, conns)
	}
	switch {
	case d > 0 && count > 0:
		return fmt.Sprintf("%s for %s or %d requests", how, d, count)
	case d > 0:
		return fmt.Sprintf("%s for %s", how, d)
	}
	return fmt.Sprintf("%s, %d requests", how, count)
}

// serveInProcess runs a gateway from a configuration file in this process.
func serveInProcess(ctx context.Context, configFile string) error {
	cfg, err := gateway.LoadConfig(configFile)
	if err != nil {
		return err
	}
	srv, err := gateway.NewServer(ctx, cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		srv.Close()
		return err
	}
	return srv.Run(ctx, ln)
}
