# contprof: `make run` builds the otelcol-contprof distribution and runs it on
# config/default.yaml; `make test` runs vet and every test. Both first run
# scripts/setup.sh, which (as root, on Debian) installs what is missing and
# mounts tracefs, or says what is missing (CONTPROF_SKIP_SETUP=1 skips it).

SHELL       := /bin/bash
GO          ?= go
TOOLS_DIR   := $(CURDIR)/.tools
MDATAGEN    := $(TOOLS_DIR)/mdatagen
BUILDER     := $(TOOLS_DIR)/builder
COLLECTOR   := bin/otelcol-contprof
CONFIG      ?= config/default.yaml
COMPONENTS  := receiver/ebpfprocessreceiver processor/continuousprofilingprocessor extension/profilingpolicyextension
GO_SOURCES   = $(shell find . -name '*.go' -not -path './build/*' -not -path './.tools/*' -not -path './tools/*' -not -path './deploy/*') go.mod go.sum
# -p 1: the eBPF and end-to-end tests measure real processes (CPU shares,
# latencies, blocked time); packages running side by side on a small
# machine would distort each other's figures.
TEST_FLAGS  ?= -count=1 -p 1 -timeout 45m

export GOFLAGS := -buildvcs=false
export GOPROXY ?= https://proxy.golang.org,direct

.PHONY: all run test bench vet generate check-generated collector tools clean setup-run setup-test setup-generate cross manifests image fuzz soak

all: collector

# ---- tools (cached: rebuilt only when tools/go.mod changes) ----------------
tools: $(MDATAGEN) $(BUILDER)

$(MDATAGEN): tools/go.mod tools/go.sum
	cd tools && $(GO) build -o $(MDATAGEN) go.opentelemetry.io/collector/cmd/mdatagen

$(BUILDER): tools/go.mod tools/go.sum
	cd tools && $(GO) build -o $(BUILDER) go.opentelemetry.io/collector/cmd/builder

# ---- the distribution --------------------------------------------------------
collector: $(COLLECTOR)

$(COLLECTOR): $(BUILDER) builder-config.yaml $(GO_SOURCES)
	@mkdir -p build
	$(BUILDER) --config builder-config.yaml
	@mkdir -p bin
	cp build/otelcol-contprof/otelcol-contprof $(COLLECTOR)

# ---- machine setup -----------------------------------------------------------
setup-run setup-test setup-generate: setup-%:
	@GO=$(GO) scripts/setup.sh $*

run: setup-run $(COLLECTOR)
	$(COLLECTOR) --config $(CONFIG) --feature-gates=service.profilesSupport

# ---- code generation ---------------------------------------------------------
# mdatagen for each component, bpf2go for each BPF program (needs clang).
generate: setup-generate $(MDATAGEN)
	@for c in $(COMPONENTS); do (cd $$c && $(MDATAGEN) metadata.yaml) || exit 1; done
	$(GO) generate ./bpf/...

# Fails when a generated file differs from what generate produces now.
check-generated: generate
	@changed=$$(git status --porcelain -- $(COMPONENTS) bpf); \
	if [ -n "$$changed" ]; then \
		echo "Generated files are stale; run 'make generate' and commit:"; \
		echo "$$changed"; exit 1; \
	fi

# ---- checks ------------------------------------------------------------------
vet:
	$(GO) vet ./...

# Cross builds (compile only): the BPF objects exist for amd64 and arm64,
# and the module builds on darwin and windows (the receiver's Start says
# "Linux only" there).
cross:
	GOOS=linux GOARCH=arm64 $(GO) build ./...
	GOOS=linux GOARCH=arm64 $(GO) vet ./...
	GOOS=darwin GOARCH=arm64 $(GO) build ./...
	GOOS=windows GOARCH=amd64 $(GO) build ./...

test: setup-test vet cross $(COLLECTOR)
	$(GO) test $(TEST_FLAGS) ./...
	cd deploy && $(GO) vet ./... && $(GO) test $(TEST_FLAGS) ./...

# ---- deployment ------------------------------------------------------------------
# deploy/ is its own Go module (Helm and Kubernetes libraries stay out of
# the distribution's). manifests renders deploy/kubernetes/ from the chart;
# image writes the linux/amd64 + linux/arm64 OCI image layout to bin/image
# without a container daemon (push it with crane or skopeo).
manifests:
	cd deploy && $(GO) run ./cmd/render

image: $(COLLECTOR)
	cd deploy && $(GO) run ./cmd/image -src ../build/otelcol-contprof -out ../bin/image

# ---- soak --------------------------------------------------------------------
# The soak test under churn, a flapping backend, policy rewrites and API load
# (internal/e2e/soak_test.go), for SOAK (default 30m; CI: 2m). It needs the
# machine to itself, so make test does not run it.
SOAK ?= 30m
soak: setup-test $(COLLECTOR)
	CONTPROF_SOAK=$(SOAK) $(GO) test -count=1 -run '^TestSoak$$' -timeout 3h -v ./internal/e2e/

# ---- fuzzing -------------------------------------------------------------------
# Native Go fuzz targets (package:function). Their seed corpora run in every
# `make test`; `make fuzz` mutates each for FUZZTIME (CI: 20s each).
FUZZTIME     ?= 20s
FUZZ_TARGETS := ./internal/control/policy:FuzzParse ./internal/control/policy:FuzzDecode \
	./extension/profilingpolicyextension:FuzzAPIRequestBodies \
	./internal/profiler/symbolize:FuzzELF ./internal/profiler/symbolize:FuzzPerfMap \
	./internal/profiler/symbolize:FuzzKallsyms ./internal/profiler/symbolize:FuzzProcMaps \
	./internal/output/profiles:FuzzConvert

fuzz:
	GO=$(GO) scripts/fuzz.sh $(FUZZTIME) $(FUZZ_TARGETS)

bench: setup-test $(COLLECTOR)
	$(GO) test -run '^$$' -bench . -benchmem -timeout 60m ./...

clean:
	rm -rf bin build $(TOOLS_DIR)
