#!/bin/sh
# kplay: put a parked static pod manifest back, atomically (a hidden temp
# file beside it, then rename), unless a manifest of that name is already in
# place. Then remove the park directory if it is empty.
#
# Usage: unpark.sh PARKED MANIFEST
# Prints "moved-back" if it moved the manifest; nothing if none was parked.
# Exit 3 if MANIFEST exists (the parked copy is left where it is).
set -eu
src=$1 dst=$2
[ -f "$src" ] || exit 0
if [ -e "$dst" ]; then
  echo "$dst exists; leaving the parked copy $src" >&2
  exit 3
fi
tmp="$(dirname "$dst")/.$(basename "$dst").kplay-tmp"
cp -a "$src" "$tmp"
mv -f "$tmp" "$dst"
rm -f "$src"
if rmdir "$(dirname "$src")" 2>/dev/null; then rmdir "$(dirname "$(dirname "$src")")" 2>/dev/null || true; fi
echo moved-back
