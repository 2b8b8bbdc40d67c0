#!/usr/bin/env bash
# make demo: start 3 local kubeadm control-plane test hosts whose
# certificates expire in 48h, show that `kplay check` catches it, renew them
# with the shipped playbook, and show the check passing. Tears down at exit.
set -euo pipefail
dir=${1:-/tmp/kplay-demo}
cd "$(dirname "$0")/.."
kplay=$PWD/bin/kplay
tb() { go run ./testbed/cmd/kplay-testbed "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

tb clean >/dev/null 2>&1 || true
tb down --dir "$dir" >/dev/null 2>&1 || true
trap 'step "tearing down the test hosts"; tb down --dir "$dir"' EXIT

step "starting 3 kubeadm control-plane test hosts (certificates valid 48h)"
inv=$(tb up --dir "$dir" --hosts 3 --kube --cert-validity 48h)
echo "inventory: $inv"
# The demo fetches admin.conf into its own home, not yours.
export HOME=$dir/home
mkdir -p "$HOME"

step "kplay check -i $inv --within 30d   (a CI gate: exit 3 means renew now)"
set +e; "$kplay" check -i "$inv" --within 30d; rc=$?; set -e
echo "exit code: $rc"
[ "$rc" = 3 ] || { echo "demo: expected exit 3 from kplay check" >&2; exit 1; }

step "kplay run playbooks/renew.yaml -i $inv --dry-run   (changes nothing)"
"$kplay" run playbooks/renew.yaml -i "$inv" --dry-run

step "kplay run playbooks/renew.yaml -i $inv"
"$kplay" run playbooks/renew.yaml -i "$inv"

step "kplay check -i $inv --within 30d"
"$kplay" check -i "$inv" --within 30d | tail -4
ls -l "$HOME/.kube/config"
echo
echo "demo: renewed every control-plane certificate on 3 hosts, one at a time; ~/.kube/config (demo home) is fresh."
