# tongban — make targets. `make test` is what CI (.ci/run) and the README run.
GO        ?= go
PKGS      := ./...
FUZZTIME  ?= 3s
BIN       := bin/tongban

.PHONY: all build run test vet lint opa-check unit pg-status fuzz-short fuzz bench replicas replicas-bench clean reliability chaos

all: build

build:
	$(GO) build -o $(BIN) ./cmd/tongban

# The README's run command: the whole round trip on loopback.
run: build
	./$(BIN) demo

test: vet lint opa-check unit reliability pg-status fuzz-short
	@echo "make test: all checks passed"

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet $(PKGS)

lint:
	$(GO) tool staticcheck $(PKGS)

# The real opa CLI, pinned as a Go tool (go.mod), on the policy bundle.
opa-check:
	$(GO) tool opa check --strict --bundle policies/
	$(GO) tool opa fmt --fail --diff policies/tongban/
	$(GO) tool opa test --bundle policies/

unit:
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

# Says plainly whether the PostgreSQL suite ran: without a reachable
# PostgreSQL (TONGBAN_TEST_POSTGRES, default 127.0.0.1:5432) its tests are
# skipped, not failed, unless TONGBAN_REQUIRE_POSTGRES=1 (as .ci/run sets).
pg-status:
	@if $(GO) test -count=1 -run '^TestPostgresReachable$$' -v ./replicas/ 2>&1 | grep -q -- '--- PASS'; then \
		echo "make test: the PostgreSQL suite ran (store conformance on PostgreSQL, log leader election, several replicas)"; \
	else \
		echo "make test: PostgreSQL is NOT reachable, so the PostgreSQL suite was NOT run: only the SQLite store was tested."; \
		echo "           Start PostgreSQL on 127.0.0.1:5432 (trust auth, database test) or set TONGBAN_TEST_POSTGRES; .ci/run starts or installs it."; \
	fi

# Several replicas at full size: three gateway processes on one PostgreSQL,
# 5,000 cases round-robin, the leader killed once; the export it writes is
# then checked by `tongban audit verify`.
replicas: build
	@mkdir -p var/replicas
	TONGBAN_REQUIRE_POSTGRES=1 TONGBAN_REPLICAS_CASES=5000 TONGBAN_REPLICAS_EXPORT=$(CURDIR)/var/replicas/export.tar \
		$(GO) test -count=1 -timeout 30m -run '^TestThreeReplicasLeaderKilled$$' -v ./replicas/
	./$(BIN) audit verify --log-key var/replicas/export.tar.log.pem var/replicas/export.tar

# Accepted exchanges per second with 1, 2 and 3 replicas on one PostgreSQL.
replicas-bench:
	TONGBAN_REQUIRE_POSTGRES=1 $(GO) test -count=1 -run '^$$' -bench . -benchtime 1500x -timeout 30m ./replicas/

# Every fuzz target for a short budget; `make fuzz FUZZTIME=5m` for longer.
fuzz-short:
	@./scripts/fuzz.sh $(FUZZTIME)

fuzz:
	@./scripts/fuzz.sh $(if $(filter 3s,$(FUZZTIME)),2m,$(FUZZTIME))

# Go benchmarks, then a short end-to-end load run (gateway as a child
# process, both simulated receivers, loopback) that prints throughput,
# latency, delivery lag and the ratio to the floor measured in the same run
# (docs/performance.md). LOADTIME=60s for a longer run.
LOADTIME  ?= 10s
BENCHTIME ?= 1s
bench: build
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $(PKGS)
	./$(BIN) load --local --duration $(LOADTIME) --json | tail -n 1

clean:
	rm -rf bin var

# Timing tests that the race detector would distort (unit runs with -race):
# one partner flooding at 10x its rate limit while the other's p99 stays
# within 2x of idle. The short crash-safety run (go test ./chaos) is in unit.
reliability:
	$(GO) test -count=1 -run 'TestFloodIsolation' ./gateway/

# The long crash-safety run (docs/reliability.md): the real binary killed
# with SIGKILL CHAOS_KILLS times under load; figures in var/chaos-report.json.
CHAOS_KILLS ?= 25
chaos:
	@mkdir -p var
	TONGBAN_CHAOS=long TONGBAN_CHAOS_KILLS=$(CHAOS_KILLS) TONGBAN_CHAOS_REPORT=$(CURDIR)/var/chaos-report.json \
		$(GO) test -count=1 -v -timeout 60m -run 'TestChaos' ./chaos/
	$(GO) test -count=1 -v -run 'TestFloodIsolation' ./gateway/
