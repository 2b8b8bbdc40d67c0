# lock_break.sh DIR OLD MINE: clear the stale lock DIR, but only if its
# holder file still has the line OLD (run_id=ID of the holder judged stale;
# "run_id=" for a lock without a holder file). MINE (this run's id) names the
# directory it is moved to before removal, so no other run can see it half
# removed.
set -u
d=$1 old=$2 mine=$3
if [ -f "$d/holder" ]; then
	grep -qxF -- "$old" "$d/holder" || exit 0
elif [ "$old" != run_id= ]; then
	exit 0
fi
mv "$d" "$d.broken.$mine" && rm -rf "$d.broken.$mine"
