#!/usr/bin/env bash
# Installs the system packages kplay's tests use, if any is missing.
# CI may run on a fresh machine: apt-get update first.
set -euo pipefail
need=()
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
command -v nsenter >/dev/null 2>&1 || need+=(util-linux)
command -v pgrep >/dev/null 2>&1 || need+=(procps)
command -v sudo >/dev/null 2>&1 || need+=(sudo)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
# make e2e runs the hand-written Ansible playbook (bench/anchor/renew.yml)
# beside kplay, and make bench compares with ansible-playbook: always needed.
command -v ansible-playbook >/dev/null 2>&1 || need+=(ansible-core)
if [ "${KPLAY_BENCH:-}" = 1 ]; then
  [ -x /usr/bin/time ] || need+=(time)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "deps: missing ${need[*]}; run as root or install them" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
