# lock_release.sh DIR WANT [PARENT]: remove the lock DIR if its holder file
# has the line WANT (run_id=ID of this run), then PARENT if given and empty.
# Shell built-ins match the line (as grep -qxF would): one process (rm)
# instead of two.
d=$1 want=$2 parent=${3-}
mine=
{ while IFS= read -r l || [ -n "$l" ]; do [ "$l" = "$want" ] && mine=1; done <"$d/holder"; } 2>/dev/null
rc=0
if [ -n "$mine" ]; then rm -rf "$d" || rc=$?; fi
if [ -n "$parent" ]; then rmdir "$parent" 2>/dev/null; fi
exit "$rc"
