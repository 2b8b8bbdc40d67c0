#!/usr/bin/env bash
# Builds a Kubernetes command (kubeadm by default) from the Go module proxy
# and caches the binary. Usage: k8s.sh [CMD] -> prints the binary's path.
#
# k8s.io/kubernetes points every k8s.io/* staging module at ./staging/...,
# which the module proxy does not serve, so a throwaway module requires
# k8s.io/kubernetes and replaces each staging module with its published
# v0.X.Y twin.
set -euo pipefail
cmd=${1:-kubeadm}
K8S_VERSION=${K8S_VERSION:-v1.34.4}
STAGING_VERSION=v0.${K8S_VERSION#v1.}
cache=${KPLAY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kplay}
out="$cache/bin/$cmd-$K8S_VERSION"
if [ -x "$out" ]; then echo "$out"; exit 0; fi
mkdir -p "$cache/bin"
# Parallel test packages may all ask for the binary at once: build it once.
exec 9>"$out.lock"
flock 9
if [ -x "$out" ]; then echo "$out"; exit 0; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
go mod init kplay.local/k8sbuild >/dev/null 2>&1
staging="api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api
cri-client csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms
kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics
mount-utils pod-security-admission sample-apiserver sample-cli-plugin sample-controller"
{
  echo "require k8s.io/kubernetes $K8S_VERSION"
  echo "replace ("
  for m in $staging; do echo "  k8s.io/$m => k8s.io/$m $STAGING_VERSION"; done
  echo ")"
} >> go.mod
printf 'package main\nimport _ "k8s.io/kubernetes/cmd/%s"\n' "$cmd" > tools.go
GOFLAGS=-mod=mod go mod tidy >&2 2>&1 || true
GOFLAGS=-mod=mod go get "k8s.io/kubernetes/cmd/$cmd@$K8S_VERSION" >&2
CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath \
  -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION" \
  -o "$out.tmp" "k8s.io/kubernetes/cmd/$cmd" >&2
mv "$out.tmp" "$out"
echo "$out"
