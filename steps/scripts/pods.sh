#!/bin/sh
# kplay: what static pods run on this host, since when, and how old the files
# they read at start are. Read-only.
#
# Usage: pods.sh [COMM MATCH]... -- FILE...
#   COMM   a process name as /proc/PID/comm shows it (at most 15 bytes)
#   MATCH  an argument the process must have been started with, exactly
#          (the pod's port flag, so another process of that name is not
#          taken for it), or "-"
#   FILE   a file whose modification time is wanted
# Prints, one per line:
#   pod COMM PID START   the newest process named COMM and when it started
#   pod COMM - -         no such process
#   file MTIME FILE      FILE's modification time ("-" if absent)
#   now NOW              the host's clock
# Times are seconds since the epoch, with a fraction.
set -u
# The boot time to 10 ms: the clock now less /proc/uptime. /proc/stat's
# btime is whole seconds, which made a process started just after its files
# changed look older than them.
boot=$(awk -v now="$(date +%s.%N)" '{printf "%.3f", now - $1; exit}' /proc/uptime 2>/dev/null) ||
  boot=$(awk '/^btime/ {print $2}' /proc/stat)
hz=$(getconf CLK_TCK 2>/dev/null || echo 100)
# podpid comes from pod_lib.sh, sent in front of this script.
while [ $# -gt 1 ] && [ "$1" != -- ]; do
  comm=$1 match=$2
  shift 2
  pid=$(podpid "$comm" "$match") || pid=
  start=
  if [ -n "$pid" ] && [ -r "/proc/$pid/stat" ]; then
    # Field 22 of /proc/PID/stat, counted after the ") " that ends comm.
    start=$(sed 's/.*) //' "/proc/$pid/stat" | awk -v b="$boot" -v hz="$hz" '{printf "%.2f", b + $20 / hz}')
  fi
  printf 'pod %s %s %s\n' "$comm" "${pid:--}" "${start:--}"
done
[ $# -gt 0 ] && shift
for f in "$@"; do
  m=$(stat -c %.9Y -- "$f" 2>/dev/null) || m=-
  printf 'file %s %s\n' "$m" "$f"
done
printf 'now %s\n' "$(date +%s.%N)"
