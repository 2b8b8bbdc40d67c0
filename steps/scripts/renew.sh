# renew.sh B KD KUBEADM CONFIG CERTDIR NAME...: renew kubeadm certificates
# NAME (all, apiserver, ...) in KD, only once the backup B is complete and
# verified. CONFIG (kubeadm --config) and CERTDIR (--cert-dir) are passed
# when not empty. Then it records the tree it leaves in B/AFTER, so that
# restore.sh can tell a later change from its own.
# Exit 96: no kubeadm; 97: no verified backup (in both, nothing changed).
# with_parts and sums come from tree_lib.sh, sent in front.
set -eu
b=$1 kd=$2 k=$3 config=$4 certdir=$5
shift 5
command -v "$k" >/dev/null 2>&1 || { echo "kubeadm not found on the host ($k)" >&2; exit 96; }
if [ ! -f "$b/COMPLETE" ] || ! (cd "$b/files" && sha256sum -c --quiet --strict "$b/SHA256SUMS") >/dev/null 2>&1; then
  echo "backup $b is missing or fails its checksums; not renewing" >&2
  exit 97
fi
# renew NAME: kubeadm certs renew NAME, with the options given.
renew() {
  set -- certs renew "$1"
  if [ -n "$config" ]; then set -- "$@" --config "$config"; fi
  if [ -n "$certdir" ]; then set -- "$@" --cert-dir "$certdir"; fi
  "$k" "$@"
}
for name do
  renew "$name"
done
cd "$kd"
umask 077
with_parts sums > "$b/AFTER.tmp" || true
mv -f "$b/AFTER.tmp" "$b/AFTER"
