#!/bin/sh
# kplay: put a parked static pod manifest back (unpark, from pod_lib.sh,
# sent in front of this script), then remove the park directory and its
# parent if they are empty.
#
# Usage: unpark.sh PARKED MANIFEST
# Prints "moved-back" if it moved the manifest; nothing if none was parked.
# Exit 3 if MANIFEST exists (the parked copy is left where it is).
set -eu
src=$1 dst=$2
[ -f "$src" ] || exit 0
unpark "$src" "$dst" || exit "$?"
if rmdir "$(dirname "$src")" 2>/dev/null; then rmdir "$(dirname "$(dirname "$src")")" 2>/dev/null || true; fi
echo moved-back
