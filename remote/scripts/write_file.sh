# write_file.sh PATH MODE: write stdin to PATH atomically: a temp file in
# the same directory, created 0600, given MODE (octal), then renamed over
# PATH. On failure the temp file is removed and PATH is untouched.
set -e
umask 077
p=$1 mode=$2
t=$(mktemp "$(dirname -- "$p")/.kplay.XXXXXX")
trap 'rm -f "$t"' EXIT
cat >"$t"
chmod "$mode" "$t"
mv -f "$t" "$p"
trap - EXIT
