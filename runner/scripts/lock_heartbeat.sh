# lock_heartbeat.sh DIR WANT: refresh the lock's time stamp while its holder
# file has the line WANT (run_id=ID of this run).
d=$1 want=$2
grep -qxF -- "$want" "$d/holder" && touch -c "$d/holder"
