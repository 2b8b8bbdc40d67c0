# kplay: shell functions shared by backup.sh, renew.sh and restore.sh; kplay
# sends this file in front of each of them. They work in the current
# directory, a kubernetes dir.

# with_parts CMD [ARG]...: run CMD ARG... PART..., where the PARTs are what
# kplay backs up: pki, *.conf, manifests (those that exist). Status 3 when
# there are none.
with_parts() {
  n=$#
  if [ -d pki ]; then set -- "$@" pki; fi
  for f in *.conf; do
    if [ -f "$f" ]; then set -- "$@" "$f"; fi
  done
  if [ -d manifests ]; then set -- "$@" manifests; fi
  [ $# -gt "$n" ] || return 3
  "$@"
}

# sums PATH...: sha256sum lines, sorted by name, for every file under PATHs.
sums() {
  find "$@" -type f -print0 | sort -z | xargs -0 -r sha256sum --
}

# count_files PATH...: how many files there are under PATHs.
count_files() {
  find "$@" -type f | wc -l
}
