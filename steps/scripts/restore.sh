# restore.sh, the body of the restore.sh kplay writes into every backup: it
# restores $kd (pki, *.conf, manifests) from the backup in $b, byte for
# byte. Files that differ (content, mode or owner) are replaced atomically,
# files that did not exist at backup time are removed, and the result is
# verified. kplay puts kd= and b= (quoted) in front of it.
set -eu
: "${kd:?}" "${b:?}"
[ -f "$b/COMPLETE" ] || { echo "backup $b is incomplete; not restoring" >&2; exit 3; }
if grep -q '^[\]' "$b/SHA256SUMS"; then echo "backup $b has unusual file names; restore by hand with cp -a from $b/files" >&2; exit 3; fi
(cd "$b/files" && sha256sum -c --quiet --strict "$b/SHA256SUMS") >&2 || { echo "backup $b fails its checksums; not restoring" >&2; exit 3; }
mkdir -p "$kd"
while read -r sum p; do
  src="$b/files/$p"; dst="$kd/$p"
  if [ -f "$dst" ] && [ ! -L "$dst" ] && [ "$(sha256sum < "$dst" | cut -d' ' -f1)" = "$sum" ] &&
     [ "$(stat -c %a:%u:%g "$dst")" = "$(stat -c %a:%u:%g "$src")" ]; then continue; fi
  dd=$(dirname "$dst"); tmp="$dd/.$(basename "$dst").kplay-restore"
  mkdir -p "$dd"
  cp -a "$src" "$tmp"
  mv -f "$tmp" "$dst"
  echo "restored $p"
done < "$b/SHA256SUMS"
list=$(mktemp); trap 'rm -f "$list"' EXIT
cut -c67- "$b/SHA256SUMS" > "$list"
cd "$kd"
for d in pki manifests; do
  [ -d "$d" ] || continue
  find "$d" -type f | while IFS= read -r f; do
    if ! grep -qxF -- "$f" "$list"; then rm -f -- "$f"; echo "removed $f"; fi
  done
done
for f in *.conf; do
  if [ -f "$f" ] && ! grep -qxF -- "$f" "$list"; then rm -f -- "$f"; echo "removed $f"; fi
done
sha256sum -c --quiet --strict "$b/SHA256SUMS" >&2
echo "verified: $kd matches backup $b"
