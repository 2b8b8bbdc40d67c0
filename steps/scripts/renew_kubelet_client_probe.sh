# shellcheck shell=sh
# renew_kubelet_client_probe.sh: the read-only probe of the
# renew_kubelet_client step (its Plan, and the first thing its Apply does).
#
#   sh -c "$script" sh KUBERNETES_DIR KUBELET_PKI KUBELET_CONF MARKER
#
# Prints lines starting with MARKER, each followed by public data only:
# certificate PEM blocks (never a key), the mode and SHA-256 of kubelet.conf,
# and kubelet.conf itself with every client-key-data, token and password
# entry (key and value) replaced by "kplay-redacted-LINE: secret". A
# kubelet.conf in which a secret cannot be redacted that way (JSON, flow
# style) is not printed at all: "MARKER confunsafe" instead. Changes nothing.
set -u
kd=$1 kp=$2 conf=$3 m=$4
cur=$kp/kubelet-client-current.pem

certs() { sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p' "$1"; }

printf '%s now %s\n' "$m" "$(date +%s)"
if [ -d "$kp" ]; then printf '%s pkidir\n' "$m"; fi
if [ -L "$cur" ]; then printf '%s link %s\n' "$m" "$(readlink -- "$cur")"; fi
if [ -f "$cur" ]; then
	printf '%s current\n' "$m"
	certs "$cur"
fi
if [ -f "$kd/pki/ca.crt" ]; then
	printf '%s ca\n' "$m"
	certs "$kd/pki/ca.crt"
fi
if [ -f "$kd/pki/ca.key" ]; then printf '%s cakey\n' "$m"; fi
if command -v openssl >/dev/null 2>&1; then printf '%s openssl\n' "$m"; fi
if [ -f "$conf" ]; then
	printf '%s confsum %s\n' "$m" "$(sha256sum <"$conf" | cut -d' ' -f1)"
	printf '%s conf %s\n' "$m" "$(stat -c %a -- "$conf")"
	# Block-style YAML, as kubeadm and kubectl write it: a secret's value is
	# replaced, with any continuation lines (deeper indented) after it.
	# Anything else that looks secret makes the whole file withheld.
	awk -v m="$m" '
		{ match($0, /^[ \t]*/); ind = RLENGTH }
		skip && ($0 ~ /^[ \t]*$/ || ind > kind) { next }
		{ skip = 0 }
		/^[ \t]*(- )?(client-key-data|token|password)[ \t]*:/ {
			k = $0; sub(/[a-z-]+[ \t]*:.*/, "", k)
			out = out k "kplay-redacted-" NR ": secret\n"; skip = 1; kind = ind; next
		}
		/client-key-data|PRIVATE KEY|[Tt]oken|[Pp]assword/ { bad = 1 }
		{ out = out $0 "\n" }
		END { if (bad) print m " confunsafe"; else printf "%s", out }
	' "$conf"
fi
