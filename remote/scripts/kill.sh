# kill.sh TAG: kill every process whose environment holds KPLAY_CMD=TAG,
# including children that left the command's session or process group
# (setsid, nohup, double forks): they inherit the environment. Each pass
# first stops what it finds, so nothing can fork a new child between the
# scan and the kill, and passes repeat (at most 20) until one finds nothing.
# One grep per pass reads every environment (a grep per process takes
# seconds on a busy host); -z -x -F matches one whole NAME=VALUE entry.
t="KPLAY_CMD=$1"
n=0
while [ "$n" -lt 20 ]; do
	n=$((n + 1))
	found=
	# shellcheck disable=SC2013 # /proc/PID/environ paths hold no white space
	for f in $(grep -lzxF -- "$t" /proc/[0-9]*/environ 2>/dev/null); do
		p=${f#/proc/}
		p=${p%/environ}
		kill -STOP "$p" 2>/dev/null && found="$found $p"
	done
	[ -n "$found" ] || break
	# shellcheck disable=SC2086 # one word per pid
	kill -KILL $found 2>/dev/null
done
true
