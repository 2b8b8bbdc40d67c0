#!/bin/sh
# kplay: GET a URL with curl on the host and print the body, then MARKER and
# the HTTP status ("000" when the request failed). The client certificate
# and key stay on the host.
#
# Usage: http_get.sh URL CERT KEY CA MARKER
#   CERT, KEY  a client certificate and its key, used when both are readable
#   CA         verify the server against it; "" means do not verify (-k).
#              With a CA but no readable client certificate, print MARKER
#              and "no-cert" and fetch nothing.
# Exit 127 when curl is not installed.
u=$1 c=$2 k=$3 ca=$4 m=$5
command -v curl >/dev/null 2>&1 || { echo "curl is not installed on the host" >&2; exit 127; }
set --
if [ -n "$c" ] && [ -r "$c" ] && [ -r "$k" ]; then set -- --cert "$c" --key "$k"
elif [ -n "$ca" ]; then printf '%s no-cert' "$m"; exit 0; fi
if [ -n "$ca" ]; then set -- "$@" --cacert "$ca"; else set -- "$@" -k; fi
curl -sS -w "$m%{http_code}" --max-time 5 "$@" "$u" 2>/dev/null || true
