#!/bin/sh
# kplay: GET SERVER/api from this host with the client certificate and key
# embedded in the kubeconfig CONF (kubeadm's admin.conf), trusting only the
# kubeconfig's CA (or none: -k, when INSECURE is 1). Prints MARKER, the HTTP
# status ("000" when the request failed) and curl's exit status. The
# certificate and key are decoded into a private temp dir, removed on exit.
#
# Usage: verify_credential.sh CONF SERVER INSECURE MARKER
# Exit 127 when curl or base64 is missing, 3 when CONF embeds no client
# certificate and key.
conf=$1 server=$2 insecure=$3 m=$4
for c in curl base64; do
	command -v "$c" >/dev/null 2>&1 || { echo "$c is not installed on the host" >&2; exit 127; }
done
umask 077
d=$(mktemp -d) || exit 1
trap 'rm -rf "$d"' EXIT
field() { sed -n "s/^ *$1: *//p" "$conf" | head -n 1 | base64 -d 2>/dev/null; }
field client-certificate-data >"$d/crt"
field client-key-data >"$d/key"
if [ ! -s "$d/crt" ] || [ ! -s "$d/key" ]; then
	echo "$conf embeds no client certificate and key" >&2
	exit 3
fi
set -- --cert "$d/crt" --key "$d/key"
if [ "$insecure" = 1 ]; then
	set -- "$@" -k
else
	field certificate-authority-data >"$d/ca"
	if [ -s "$d/ca" ]; then set -- "$@" --cacert "$d/ca"; fi
fi
rc=0
curl -sS -o /dev/null -w "$m%{http_code}" --max-time 10 "$@" "${server%/}/api" 2>/dev/null || rc=$?
echo " $rc"
