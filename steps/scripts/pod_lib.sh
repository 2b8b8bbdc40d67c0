#!/bin/sh
# kplay: shell functions shared by pods.sh and restart_pods.sh; kplay sends
# this file in front of either script.

# podpid COMM MATCH: the newest process named COMM started with MATCH
# (an exact argument, or "-" for any).
podpid() {
  for p in $(pgrep -x -- "$1" 2>/dev/null | sort -rn); do
    if [ "$2" = - ] || tr '\0' '\n' < "/proc/$p/cmdline" 2>/dev/null | grep -qxF -- "$2"; then
      echo "$p"
      return 0
    fi
  done
  return 1
}
