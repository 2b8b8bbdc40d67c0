#!/bin/sh
# kplay: restart static pods by moving their manifests out of the kubelet's
# manifest directory and back, all at once, each put back as soon as its
# old process is gone.
#
# Usage: restart_pods.sh PARKDIR DOWN_TIMEOUT UP_TIMEOUT [NAME COMM MANIFEST OLDPID PORT MATCH]...
#   PARKDIR   where manifests wait while moved out (made if missing)
#   *_TIMEOUT whole seconds: how long the kubelet may take to stop a pod,
#             and to start it again once its manifest is back
#   NAME      the pod (etcd, kube-apiserver, ...); its manifest is parked
#             as PARKDIR/NAME.yaml
#   COMM      its process name; OLDPID its running process ("-" if none
#             was found: then its PORT closing and opening tell instead);
#             MATCH an argument its process is started with ("-": none)
# No argument may hold white space (the caller checks): the pods' fields are
# kept in one word-split list, with globbing off.
# Prints one line per event, with the host's clock (seconds since the epoch):
#   parked NAME T | down NAME T | back NAME T | up NAME T PID
# Exit 0 when every pod is up again; 3 on a timeout (the events say where).
# Whatever happens, every manifest it parked is put back before it exits.
set -uf
park=$1 down_timeout=$2 up_timeout=$3
shift 3
now() { date +%s.%N; }
# listening PORT: whether something listens on TCP PORT.
listening() {
  awk -v p="$(printf ':%04X' "$1")" '$4 == "0A" && substr($2, length($2) - 4) == p { f = 1 } END { exit !f }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
n=$(($# / 6))
# podpid and unpark come from pod_lib.sh, sent in front of this script.
unpark_all() {
  # shellcheck disable=SC2086 # word splitting is the point
  set -- $pods
  while [ $# -ge 6 ]; do
    unpark "$park/$1.yaml" "$3" || true
    shift 6
  done
  if rmdir "$park" 2>/dev/null; then rmdir "$(dirname "$park")" 2>/dev/null || true; fi
}
# waiting PHASE: the pods not yet past PHASE (down or up), for messages.
waiting() {
  w=
  # shellcheck disable=SC2086
  set -- $pods
  while [ $# -ge 6 ]; do
    case " $state " in *" $1:$phase "*) ;; *) w="$w $1" ;; esac
    shift 6
  done
  echo "${w# }"
}
pods="$*"
trap unpark_all EXIT
trap 'exit 130' INT TERM HUP
# A lost SSH connection closes stdout: keep going, so that every manifest
# still goes back (kplay also reconnects to make sure).
trap '' PIPE
mkdir -p "$park"
# shellcheck disable=SC2086
set -- $pods
while [ $# -ge 6 ]; do
  dst="$park/$1.yaml"
  if [ -e "$dst" ]; then
    echo "$dst already exists; not overwriting it" >&2
    exit 3
  fi
  mv "$3" "$dst"
  echo "parked $1 $(now)"
  shift 6
done
# down_pod NAME COMM MANIFEST OLDPID PORT MATCH: if the pod's old process
# is gone (or, with no OLDPID, its port closed), put its manifest back.
down_pod() {
  if [ "$4" != - ]; then
    [ ! -e "/proc/$4" ] || return 1
  elif listening "$5"; then
    return 1
  fi
  echo "down $1 $(now)"
  unpark "$park/$1.yaml" "$3" || exit 3
  echo "back $1 $(now)"
}
# up_pod NAME COMM MANIFEST OLDPID PORT MATCH: whether the pod's new process
# runs (or, with no OLDPID, its port listens).
up_pod() {
  pid=
  if [ "$4" != - ]; then
    pid=$(podpid "$2" "$6") || pid=
    [ "$pid" = "$4" ] && pid=
  elif listening "$5"; then
    pid=-
  fi
  [ -n "$pid" ] || return 1
  echo "up $1 $(now) $pid"
}
# await PHASE TIMEOUT: poll PHASE_pod for every pod not yet past PHASE
# (down or up), every 0.1 s, until all are (status 0) or TIMEOUT seconds
# pass (status 3).
await() {
  phase=$1 left=$n
  deadline=$(($(date +%s) + $2))
  while :; do
    # shellcheck disable=SC2086
    set -- $pods
    while [ $# -ge 6 ]; do
      case " $state " in
      *" $1:$phase "*) ;;
      *) if "${phase}_pod" "$@"; then state="$state $1:$phase"; left=$((left - 1)); fi ;;
      esac
      shift 6
    done
    [ "$left" -gt 0 ] || return 0
    [ "$(date +%s)" -lt "$deadline" ] || return 3
    sleep 0.1
  done
}
# Wait for each pod to stop, and put it back at once; then for each new process.
state=
if ! await down "$down_timeout"; then
  echo "timed out after ${down_timeout}s waiting for the kubelet to stop $(waiting)" >&2
  exit 3
fi
if ! await up "$up_timeout"; then
  echo "timed out after ${up_timeout}s waiting for the kubelet to start $(waiting) again" >&2
  exit 3
fi
