# gatectl — see README.md. Two commands set up a fresh machine:
#   make demo   run the gateway on its embedded defaults with a throwaway PostgreSQL
#   make test   install what the tests need, then run them
GO      ?= go
BIN     := bin/gatectl
PKGS    := ./...
# Debian packages the tests, the demo and the benchmarks use.
DEB_PKGS := postgresql postgresql-client pgbouncer git
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all build test cross demo bench docs lint deps fuzz clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/gatectl

# deps installs the Debian packages that are missing (and nothing else).
deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  for s in postgresql pgbouncer; do $(SUDO) systemctl disable --now $$s >/dev/null 2>&1 || true; done; \
	else echo "deps: all of $(DEB_PKGS) installed"; fi

# test also runs the classifier without cgo: the cross-compiled release
# builds use the WebAssembly build of the parser.
test: deps
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout 12m $(PKGS)
	CGO_ENABLED=0 $(GO) test -count=1 ./pkg/sqlclass/
	$(GO) test -race -count=1 ./pkg/gateway/ ./pkg/audit/ ./pkg/proxy/postgres/
	$(MAKE) cross

# cross type-checks the package with raw system calls for the release
# targets of .goreleaser.yaml other than linux/amd64, whose syscall numbers
# differ (arm64 has no epoll_wait, for one).
cross:
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) vet ./pkg/proxy/postgres/
	CGO_ENABLED=0 GOOS=darwin GOARCH=arm64 $(GO) vet ./pkg/proxy/postgres/

# demo runs the built binary, so that the walkthrough's `gatectl` commands
# can run the same one (it prints the PATH to set when they would not).
demo: deps build
	./$(BIN) demo

bench: deps build
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./pkg/proxy/postgres/ ./pkg/sqlclass/ ./pkg/audit/ ./pkg/store/sqlite/
	$(GO) run ./cmd/gatectl-bench $(BENCH_FLAGS)

# fuzz runs every fuzz target for FUZZTIME each (the corpus lives in testdata/fuzz).
FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./pkg/...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

# docs regenerates the checked-in completions and man pages from the binary.
docs: export SOURCE_DATE_EPOCH = $(shell git log -1 --format=%ct 2>/dev/null)
docs:
	mkdir -p completions man
	$(GO) run ./cmd/gatectl completion bash > completions/gatectl.bash
	$(GO) run ./cmd/gatectl completion zsh > completions/_gatectl
	$(GO) run ./cmd/gatectl completion fish > completions/gatectl.fish
	rm -f man/*.1
	$(GO) run ./cmd/gatectl man man

lint:
	@test -z "$$(gofmt -l cmd pkg)" || { gofmt -l cmd pkg; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet $(PKGS)
	@if command -v staticcheck >/dev/null; then staticcheck $(PKGS); fi

clean:
	rm -rf bin dist
