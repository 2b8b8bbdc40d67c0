#!/usr/bin/env bash
# Builds the etcd server binary from the Go module proxy and caches it.
# Usage: etcd.sh -> prints the binary's path.
#
# go.etcd.io/etcd/server/v3's root package is etcd's main. Its go.mod
# replaces the other etcd modules with ../ paths, which only work inside the
# etcd repository, so `go install ...@version` refuses it: a throwaway module
# requires it instead and takes the versions its go.mod pins.
#
# v3.6.5 is the etcd kubeadm v1.34 deploys (constants.DefaultEtcdVersion
# "3.6.5-0"); set ETCD_VERSION for another.
set -euo pipefail
ETCD_VERSION=${ETCD_VERSION:-v3.6.5}
cache=${KPLAY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kplay}
out="$cache/bin/etcd-$ETCD_VERSION"
if [ -x "$out" ]; then echo "$out"; exit 0; fi
mkdir -p "$cache/bin"
# Parallel test packages may all ask for the binary at once: build it once.
exec 9>"$out.lock"
flock 9
if [ -x "$out" ]; then echo "$out"; exit 0; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
go mod init kplay.local/etcdbuild >/dev/null 2>&1
GOFLAGS=-mod=mod go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" \
  -o "$out.tmp" go.etcd.io/etcd/server/v3 >&2
mv "$out.tmp" "$out"
echo "$out"
