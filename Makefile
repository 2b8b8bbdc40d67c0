# kplay: everything a fresh machine needs goes through these targets.
#   make test   every test: lint, unit, and integration tests on real sshd hosts, then e2e
#   make e2e    renew 3 real control-plane nodes (real etcd + kube-apiserver), API polled
#   make demo   start 3 local kubeadm test hosts and renew their certificates
#   make bench  kplay vs ansible-playbook vs plain OpenSSH on 3, 30, 100 test hosts; kplay alone on 300
#   make bench-e2e  kplay vs the hand-written Ansible playbook on 3 real control-plane nodes
#   make fuzz   run the fuzzers for FUZZTIME each (default 30s), one of them over SSH
SHELL   := /bin/bash
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
DEMO_DIR ?= /tmp/kplay-demo

.PHONY: all build test lint unit e2e fuzz deps demo demo-down bench bench-e2e clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/kplay ./cmd/kplay

## deps: system packages the tests need (root; Debian).
deps:
	@bash .ci/deps.sh

## lint: gofmt, go vet, staticcheck, a tidy go.mod, shellcheck on every
## shell script (the embedded step scripts are POSIX sh, the rest bash), no
## function over 80 lines outside tests and testbed, and no
## InsecureIgnoreHostKey outside tests.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	shellcheck -s sh steps/scripts/*.sh runner/scripts/*.sh remote/scripts/*.sh
	shellcheck -s bash testbed/build/*.sh testbed/demo.sh .ci/deps.sh .ci/run
	$(GO) run ./internal/lint/funclen -max 80 cmd runner steps remote internal inventory
	@if git grep -n 'InsecureIgnoreHostKey' -- '*.go' ':!*_test.go'; then \
		echo "InsecureIgnoreHostKey outside tests: host keys must always be verified"; exit 1; fi

## unit: every Go test under the race detector. Integration tests need root
## and sshd; they skip without them, except under CI=true where they fail.
unit:
	$(GO) test -race -count=1 -p 1 -timeout 60m ./...

## e2e: kplay renews three real control-plane nodes (real etcd and
## kube-apiserver, built from the Go module proxy and cached in
## ~/.cache/kplay/bin) while the API is polled; prints the downtime figures.
## Behind the e2e build tag, so lint it here too.
E2E_FLAGS := -tags e2e
e2e:
	$(GO) vet $(E2E_FLAGS) ./integration
	$(GO) run $(STATICCHECK) $(E2E_FLAGS) ./integration
	$(GO) test $(E2E_FLAGS) -race -count=1 -timeout 80m -v -run '^TestE2E' ./integration

## fuzz: run each fuzzer for FUZZTIME (default 30s): shell quoting against a
## local sh, then variables through the transport to a real test host over
## SSH, as root and through sudo (needs root, like the integration tests).
## make unit runs only their seed inputs.
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzQuote$$' -fuzztime $(FUZZTIME) ./internal/shellquote
	$(GO) test -run '^$$' -fuzz '^FuzzQuoteOnHost$$' -fuzztime $(FUZZTIME) ./integration

## test: what CI runs.
test: deps lint unit e2e

demo: deps build
	@bash testbed/demo.sh $(DEMO_DIR)

demo-down:
	$(GO) run ./testbed/cmd/kplay-testbed down --dir $(DEMO_DIR)

## bench: kplay against ansible-playbook and plain OpenSSH on 3, 30 and 100
## local test hosts, the same three on 30 hosts behind one bastion (issue 11:
## OpenSSH with ProxyJump + ControlMaster; connections and authentications
## counted at the bastion and at the hosts), and kplay alone on 300 (its
## controller CPU and peak RSS per host, issue 12); prints the ratios and
## writes bench/RESULTS.md. Long (tens of minutes), so not part of make test.
## Installs ansible-core and GNU time if missing. BENCH_FLAGS go to
## bench/cmd/kplay-bench, e.g.
## make bench BENCH_FLAGS='-n 3,30 -kplay-only-n 300 -bastion-n 30 -runs 3'
## (-bastion-n 0: no bastion bed).
## Run it under flock /tmp/kplay-e2e.lock when others share the machine.
BENCH_FLAGS ?=
bench: build
	@KPLAY_BENCH=1 bash .ci/deps.sh
	$(GO) run ./bench/cmd/kplay-bench -kplay bin/kplay -out bench/RESULTS.md $(BENCH_FLAGS)

## bench-e2e: issue 12 side by side on 3 real control-plane nodes (etcd,
## kube-apiserver, controller-manager, scheduler): the hand-written Ansible
## playbook bench/anchor/renew.yml and playbooks/renew.yaml, alternating,
## with the API polled; prints "E2E SPEED" lines (wall time, unready time
## per host, kplay's per-step times, the ratio). Also part of make e2e.
## Figures: written to bench/RESULTS-e2e.md (linked from bench/RESULTS.md).
bench-e2e: deps
	KPLAY_BENCH_E2E_OUT=$(CURDIR)/bench/RESULTS-e2e.md $(GO) test $(E2E_FLAGS) -count=1 -timeout 80m -v -run '^TestE2ESpeedAgainstAnchor' ./integration

clean:
	rm -rf bin
