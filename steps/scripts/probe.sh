# shellcheck shell=sh
# probe.sh reads every certificate kubeadm manages on a host in one round
# trip: PEM certificate blocks only (never a private key), and kubeconfigs
# with their secrets dropped by an awk filter. Each section of the output
# starts with a line "MARKER WORD ARGS…"; the marker is random for each run,
# so no file content can pose as a section line. Parsed by parseProbe.
#
# Run as: sh -c "$script" sh KUBE_DIR KUBELET_PKI MARKER KEY_DIGESTS CONFIG FILTER
#   KUBE_DIR     the kubernetes dir (pki/, *.conf)
#   KUBELET_PKI  the directory of kubelet-client-current.pem
#   MARKER       the section line prefix
#   KEY_DIGESTS  1: also print, per leaf certificate, the SHA-256 of the public
#                key derived here from its private key (the key never leaves)
#   CONFIG       a kubeadm config whose certificateValidityPeriod is printed, or ""
#   FILTER       the awk program that drops secrets from a kubeconfig
kd=$1 kp=$2 m=$3 digests=$4 c=$5 filter=$6
printf '%s now %s\n' "$m" "$(date +%s)"
certs() { sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p' "$1"; }
for f in "$kd"/pki/*.crt "$kd"/pki/etcd/*.crt; do
  [ -f "$f" ] || continue
  printf '%s file pki %s\n' "$m" "$f"; certs "$f"
done
for n in admin super-admin controller-manager scheduler; do
  f="$kd/$n.conf"
  if [ -f "$f" ]; then printf '%s file kubeconfig %s\n' "$m" "$f"; awk "$filter" "$f"
  else printf '%s missing kubeconfig %s\n' "$m" "$f"; fi
done
f="$kp/kubelet-client-current.pem"
if [ -f "$f" ]; then printf '%s file kubelet %s\n' "$m" "$f"; certs "$f"
else printf '%s missing kubelet %s\n' "$m" "$f"; fi
for k in "$kd/pki/ca.key" "$kd/pki/front-proxy-ca.key" "$kd/pki/etcd/ca.key"; do
  if [ -f "$k" ]; then printf '%s cakey yes %s\n' "$m" "$k"; else printf '%s cakey no %s\n' "$m" "$k"; fi
done
if [ "$digests" = 1 ]; then
  if command -v openssl >/dev/null 2>&1; then
    spki() { openssl pkey "$@" -pubout -outform DER 2>/dev/null | sha256sum | cut -d' ' -f1; }
    for f in "$kd"/pki/*.crt "$kd"/pki/etcd/*.crt; do
      [ -f "${f%.crt}.key" ] || continue
      printf '%s keydigest %s %s\n' "$m" "$(spki -in "${f%.crt}.key")" "$f"
    done
    for n in admin super-admin controller-manager scheduler; do
      f="$kd/$n.conf"
      [ -f "$f" ] || continue
      d=$(awk '/^[ \t]*client-key-data:/ { print $2; exit }' "$f" | tr -d "\"'" | base64 -d 2>/dev/null | spki)
      printf '%s keydigest %s %s\n' "$m" "$d" "$f"
    done
  else
    printf '%s noopenssl\n' "$m"
  fi
fi
if [ -n "$c" ]; then
  [ -r "$c" ] || { echo "kubeadm config $c is not readable" >&2; exit 2; }
  printf '%s validity %s\n' "$m" "$(sed -n 's/^[ \t]*certificateValidityPeriod:[ \t]*//p' "$c" | tr -d "\"' " | head -n 1)"
fi
