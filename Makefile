# Cortex — make help lists the targets.
GO        ?= go
BIN       := bin
LDFLAGS   := -s -w
PKGS      := ./...

.PHONY: help deps build cross run test test-short bench fuzz lint clean install

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-11s %s\n", $$1, $$2}'

deps: ## install Debian packages and Go modules the build and tests need
	./scripts/deps.sh

build: ## build bin/cortex, bin/cortexd and the bin/cortex-ops symlink
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/cortex ./cmd/cortexd
	ln -sf cortex $(BIN)/cortex-ops

cross: ## cross-build the CLI for macOS and Windows, where it is a client of a remote cortexd
	GOOS=darwin GOARCH=arm64 $(GO) build -o /dev/null ./cmd/cortex
	GOOS=windows GOARCH=amd64 $(GO) build -o /dev/null ./cmd/cortex

run: deps build ## run the example swarm on the embedded default daemon
	./$(BIN)/cortex run examples/swarm

test: deps cross ## run every test (root: real namespaces, cgroups, seccomp, landlock) and the cross-builds
	CORTEX_TEST_PRIVILEGED=1 $(GO) test -race -count=1 -timeout 25m $(PKGS)

test-short: ## run the tests that need no root and no kernel feature (as any user)
	$(GO) test -short -count=1 $(PKGS)

bench: deps build ## run the benchmarks (cold start, daemon memory, bus, LLM gateway, ...)
	CORTEX_TEST_PRIVILEGED=1 $(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./bench/...

fuzz: ## fuzz the parsers for a minute each
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 60s ./internal/manifest
	$(GO) test -run '^$$' -fuzz FuzzOpen -fuzztime 60s ./internal/bundle
	$(GO) test -run '^$$' -fuzz FuzzAppend -fuzztime 60s ./internal/jsonstr

lint: ## gofmt and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet $(PKGS)

install: build ## install into /usr/bin and the systemd unit
	install -m 0755 $(BIN)/cortex /usr/bin/cortex
	install -m 0755 $(BIN)/cortexd /usr/bin/cortexd
	ln -sf cortex /usr/bin/cortex-ops
	install -m 0644 packaging/cortexd.service /lib/systemd/system/cortexd.service

clean: ## remove build output
	rm -rf $(BIN)
