# tongban — make targets. `make test` is what CI (.ci/run) and the README run.
GO        ?= go
PKGS      := ./...
FUZZTIME  ?= 3s
BIN       := bin/tongban

.PHONY: all build run test vet lint opa-check unit fuzz-short fuzz bench clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/tongban

# The README's run command: the whole round trip on loopback.
run: build
	./$(BIN) demo

test: vet lint opa-check unit fuzz-short
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
