# lock_acquire.sh DIR PARENT HOLDER: take kplay's run lock DIR on this host.
# mkdir is atomic: the run that creates DIR holds the lock and writes HOLDER
# (key=value lines) into DIR/holder. PARENT is DIR's parent, made (and
# reported, so release can remove it again) only when missing.
# Prints "acquired" or "acquired parent"; or, when another run holds the
# lock, "held", "age=SECONDS since its last heartbeat (host clock)" and its
# holder file.
set -u
umask 077
d=$1 parent=$2 holder=$3
made=
[ -d "$parent" ] || { mkdir -p "$parent" || exit 1; made=1; }
if mkdir "$d" 2>/dev/null; then
	if ! { printf '%s' "$holder" >"$d/holder.tmp" && mv -f "$d/holder.tmp" "$d/holder"; }; then
		rm -rf "$d"
		[ -z "$made" ] || rmdir "$parent"
		echo "writing $d/holder failed" >&2
		exit 1
	fi
	echo "acquired${made:+ parent}"
	exit 0
fi
[ -d "$d" ] || { echo "cannot create $d" >&2; exit 1; }
now=$(date +%s)
m=$(stat -c %Y "$d/holder" 2>/dev/null || stat -c %Y "$d")
echo held
echo "age=$((now - m))"
cat "$d/holder" 2>/dev/null
exit 0
