# Cortex — make help lists the targets.
GO        ?= go
BIN       := bin
LDFLAGS   := -s -w
PKGS      := ./...

.PHONY: help deps build cross run test test-kube kube-apiserver test-short bench fuzz lint clean install

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

test: deps cross ## run every test (root: real namespaces, cgroups, seccomp, landlock), the cross-builds, then test-kube
	CORTEX_TEST_PRIVILEGED=1 $(GO) test -race -count=1 -timeout 25m $(PKGS)
	$(MAKE) test-kube

# e2e/kube is its own module (k8s.io/kubernetes never enters go.mod).
test-kube: kube-apiserver ## Kubernetes tests: cortex deploy and the Helm chart against a real kube-apiserver + etcd
	cd e2e/kube && CORTEX_TEST_PRIVILEGED=1 $(GO) test -count=1 -timeout 10m ./...

kube-apiserver: ## build the kube-apiserver the Kubernetes tests run, once per version, into ~/.cache/cortex-test
	@cd e2e/kube && v=$$($(GO) list -m -f '{{.Version}}' k8s.io/kubernetes) && \
	  out=$${XDG_CACHE_HOME:-$$HOME/.cache}/cortex-test/kube-apiserver-$$v && \
	  if [ ! -x "$$out" ]; then \
	    echo "building kube-apiserver $$v (about 25 minutes on 2 cores the first time)"; \
	    mkdir -p "$$(dirname $$out)" && \
	    $(GO) build -trimpath -ldflags "-X k8s.io/component-base/version.gitVersion=$$v" -o "$$out.tmp" k8s.io/kubernetes/cmd/kube-apiserver && \
	    mv "$$out.tmp" "$$out"; \
	  fi

test-short: ## run the tests that need no root and no kernel feature (as any user)
	$(GO) test -short -count=1 $(PKGS)

bench: deps build ## run the benchmarks (cold start, daemon memory, bus, LLM gateway, ...)
	CORTEX_TEST_PRIVILEGED=1 $(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./bench/...

fuzz: ## fuzz the parsers for a minute each
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 60s ./internal/manifest
	$(GO) test -run '^$$' -fuzz FuzzOpen -fuzztime 60s ./internal/bundle
	$(GO) test -run '^$$' -fuzz FuzzParseConfig -fuzztime 60s ./internal/kube
	$(GO) test -run '^$$' -fuzz FuzzParseReference -fuzztime 60s ./internal/oci
	$(GO) test -run '^$$' -fuzz FuzzAppend -fuzztime 60s ./internal/jsonstr
	$(GO) test -run '^$$' -fuzz FuzzAuthorize -fuzztime 60s ./internal/auth
	$(GO) test -run '^$$' -fuzz FuzzPathValues -fuzztime 60s ./internal/auth
	$(GO) test -run '^$$' -fuzz FuzzParsePluginOutput -fuzztime 60s ./internal/doctor
	$(GO) test -run '^$$' -fuzz FuzzParseSums -fuzztime 60s ./internal/update
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 60s ./internal/llm/cassette
	$(GO) test -run '^$$' -fuzz FuzzPatch -fuzztime 60s ./internal/learn
	$(GO) test -run '^$$' -fuzz FuzzParseRecord -fuzztime 60s ./internal/kaudit
	$(GO) test -run '^$$' -fuzz FuzzParseMeta -fuzztime 60s ./internal/deps

lint: ## gofmt and go vet (both modules)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet $(PKGS)
	cd e2e/kube && $(GO) vet ./...

install: build ## install into /usr/bin and the systemd unit
	install -m 0755 $(BIN)/cortex /usr/bin/cortex
	install -m 0755 $(BIN)/cortexd /usr/bin/cortexd
	ln -sf cortex /usr/bin/cortex-ops
	install -m 0644 packaging/cortexd.service /lib/systemd/system/cortexd.service

clean: ## remove build output
	rm -rf $(BIN)
