#!/bin/sh
# kplay: shell functions shared by pods.sh, restart_pods.sh and unpark.sh;
# kplay sends this file in front of each of them.

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

# unpark SRC DST: put the parked manifest SRC back as DST atomically (a
# hidden temp file beside DST, then rename), unless DST exists: then exit
# status 3, and SRC stays where it is. Nothing to do when SRC is gone.
unpark() {
  [ -f "$1" ] || return 0
  if [ -e "$2" ]; then
    echo "$2 exists; leaving the parked copy $1" >&2
    return 3
  fi
  tmp="$(dirname "$2")/.$(basename "$2").kplay-tmp"
  cp -a "$1" "$tmp" && mv -f "$tmp" "$2" && rm -f "$1"
}
