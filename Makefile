# kplay: everything a fresh machine needs goes through these targets.
#   make test   every test: lint, unit, and integration tests on real sshd hosts
#   make demo   start 3 local kubeadm test hosts and renew their certificates
SHELL   := /bin/bash
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
DEMO_DIR ?= /tmp/kplay-demo

.PHONY: all build test lint unit deps demo demo-down bench clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/kplay ./cmd/kplay

## deps: system packages the tests need (root; Debian).
deps:
	@bash .ci/deps.sh

## lint: gofmt, go vet, staticcheck, and no InsecureIgnoreHostKey outside tests.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	@if git grep -n 'InsecureIgnoreHostKey' -- '*.go' ':!*_test.go'; then \
		echo "InsecureIgnoreHostKey outside tests: host keys must always be verified"; exit 1; fi

## unit: every Go test under the race detector. Integration tests need root
## and sshd; they skip without them, except under CI=true where they fail.
unit:
	$(GO) test -race -count=1 -timeout 60m ./...

## test: what CI runs.
test: deps lint unit

demo: deps build
	@bash testbed/demo.sh $(DEMO_DIR)

demo-down:
	$(GO) run ./testbed/cmd/kplay-testbed down --dir $(DEMO_DIR)

clean:
	rm -rf bin
