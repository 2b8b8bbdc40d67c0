#!/bin/sh
# kplay: print the certificates a TLS server at ADDR (host:port) presents,
# as seen from this host, in PEM (public data only).
#
# Usage: served_chain.sh ADDR
# Exit 127 when openssl is not installed.
a=$1
command -v openssl >/dev/null 2>&1 || { echo "openssl is not installed on the host" >&2; exit 127; }
echo | timeout 15 openssl s_client -connect "$a" -showcerts 2>/dev/null | sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p'
