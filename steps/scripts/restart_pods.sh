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
# unpark NAME MANIFEST: put the manifest back atomically, unless one is there.
unpark() {
  src="$park/$1.yaml"
  [ -f "$src" ] || return 0
  if [ -e "$2" ]; then
    echo "$2 exists; leaving the parked copy $src" >&2
    return 3
  fi
  tmp="$(dirname "$2")/.$(basename "$2").kplay-tmp"
  cp -a "$src" "$tmp" && mv -f "$tmp" "$2" && rm -f "$src"
}
n=$(($# / 6))
# podpid comes from pod_lib.sh, sent in front of this script.
unpark_all() {
  # shellcheck disable=SC2086 # word splitting is the point
  set -- $pods
  while [ $# -ge 6 ]; do
    unpark "$1" "$3" || true
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
# Wait for each pod to stop, and put it back at once.
left=$n
deadline=$(($(date +%s) + down_timeout))
state=
while [ "$left" -gt 0 ]; do
  # shellcheck disable=SC2086
  set -- $pods
  while [ $# -ge 6 ]; do
    case " $state " in *" $1:down "*) shift 6; continue ;; esac
    if [ "$4" != - ]; then gone=0; [ -e "/proc/$4" ] || gone=1
    else gone=1; listening "$5" && gone=0; fi
    if [ "$gone" = 1 ]; then
      echo "down $1 $(now)"
      unpark "$1" "$3" || exit 3
      echo "back $1 $(now)"
      state="$state $1:down"
      left=$((left - 1))
    fi
    shift 6
  done
  [ "$left" -gt 0 ] || break
  if [ "$(date +%s)" -ge "$deadline" ]; then
    phase=down
    echo "timed out after ${down_timeout}s waiting for the kubelet to stop $(waiting)" >&2
    exit 3
  fi
  sleep 0.1
done
# Wait for each pod's new process.
left=$n
deadline=$(($(date +%s) + up_timeout))
while [ "$left" -gt 0 ]; do
  # shellcheck disable=SC2086
  set -- $pods
  while [ $# -ge 6 ]; do
    case " $state " in *" $1:up "*) shift 6; continue ;; esac
    pid=
    if [ "$4" != - ]; then
      pid=$(podpid "$2" "$6") || pid=
      [ "$pid" = "$4" ] && pid=
    elif listening "$5"; then pid=-
    fi
    if [ -n "$pid" ]; then
      echo "up $1 $(now) $pid"
      state="$state $1:up"
      left=$((left - 1))
    fi
    shift 6
  done
  [ "$left" -gt 0 ] || break
  if [ "$(date +%s)" -ge "$deadline" ]; then
    phase=up
    echo "timed out after ${up_timeout}s waiting for the kubelet to start $(waiting) again" >&2
    exit 3
  fi
  sleep 0.1
done
