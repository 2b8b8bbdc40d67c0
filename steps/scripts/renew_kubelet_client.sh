# shellcheck shell=sh
# renew_kubelet_client.sh: issue a new kubelet client certificate ON the host
# and switch the kubelet to it (the renew_kubelet_client step). kplay runs
# it after renew_kubelet_client_restore.sh (which defines rkc_restore) as
#
#   sh -c "$restore$script" sh KUBERNETES_DIR KUBELET_PKI KUBELET_CONF NODE DAYS \
#       BACKUP_DIR CONF_SHA256 WRITE_CONF MARKER RESTORE_SH
#
# with, when WRITE_CONF is 1, the new kubelet.conf on stdin (kplay makes it
# from the probe's redacted copy: it holds no secret, since its user points
# at kubelet-client-current.pem).
#
# 1. Nothing changes yet: a new ECDSA P-256 key is made by openssl in a
#    0700 temp dir under KUBELET_PKI, a CSR for CN=system:node:NODE,
#    O=system:nodes is signed with KUBERNETES_DIR/pki/ca.key for DAYS days,
#    and the result is verified here: it chains to ca.crt for client auth,
#    and the SHA-256 of its public key equals that of the key's.
# 2. Backup: BACKUP_DIR (which must not exist yet) gets kubelet.conf,
#    the previous symlink target (or file) of kubelet-client-current.pem,
#    and restore.sh (RESTORE_SH).
# 3. The switch: kubelet-client-DATE.pem (0600, certificate then key) is
#    moved into place, kubelet-client-current.pem is re-pointed at it
#    (ln -s to a temp name, mv -T), kubelet.conf is replaced (temp file with
#    the old one's mode and owner, mv). If any of that fails, everything is
#    put back (rkc_restore) before exiting.
#
# Prints MARKER lines and the new certificate (public) only; the key never
# leaves the host. Exit status: 0 done; 10-19 refused or failed before
# anything changed (10: no ca.key, an external CA); 20 failed during the
# switch and everything was put back; 21 failed during the switch and
# putting it back failed too.
set -eu
umask 077
kd=$1 kp=$2 conf=$3 node=$4 days=$5 b=$6 confsum=$7 writeconf=$8 m=$9 restore_sh=${10}
cur=$kp/kubelet-client-current.pem
ca=$kd/pki/ca.crt
cakey=$kd/pki/ca.key
empty=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

phase=0 tmp='' ctmp='' new=''
cleanup() {
	st=$?
	trap - EXIT
	if [ -n "$ctmp" ]; then rm -f -- "$ctmp"; fi
	if [ "$st" -ne 0 ] && [ "$phase" = 2 ]; then
		echo "the switch failed half way; putting back kubelet.conf and $cur from $b" >&2
		if rkc_restore "$kp" "$conf" "$b" "$new" >&2; then st=20; else st=21; fi
	elif [ "$st" -ne 0 ] && [ "$phase" = 1 ]; then
		rm -rf -- "$b"
	fi
	if [ -n "$tmp" ]; then rm -rf -- "$tmp"; fi
	exit "$st"
}
trap cleanup EXIT
fail() {
	st=$1
	shift
	echo "$*; nothing was changed" >&2
	exit "$st"
}

[ -f "$cakey" ] || fail 10 "external CA: $cakey is absent, so this host cannot sign a kubelet client certificate; sign one with the CA that holds the key"
[ -f "$ca" ] || fail 11 "$ca is absent"
command -v openssl >/dev/null 2>&1 || fail 12 "openssl is not installed on the host"
[ -d "$kp" ] || fail 13 "$kp does not exist"
[ -f "$conf" ] || fail 13 "$conf does not exist"
[ "$(sha256sum <"$conf" | cut -d' ' -f1)" = "$confsum" ] || fail 13 "$conf changed since kplay read it; run the step again"

tmp=$(mktemp -d "$kp/.kplay-kubelet-client.XXXXXX")
if [ "$writeconf" = 1 ]; then cat >"$tmp/kubelet.conf"; fi
# kubelet's own name for a rotated certificate; one made in this same
# second already (a rotation that just happened) gets the next second's.
n=0
while :; do
	new=$kp/kubelet-client-$(date -u +%Y-%m-%d-%H-%M-%S).pem
	if [ ! -e "$new" ] && [ ! -L "$new" ]; then break; fi
	n=$((n + 1))
	[ "$n" -le 3 ] || fail 14 "$new already exists"
	sleep 1
done

# 1. Key, CSR, certificate, checks.
openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/key.pem" || fail 15 "openssl could not make a key"
openssl req -new -key "$tmp/key.pem" -subj "/O=system:nodes/CN=system:node:$node" -out "$tmp/csr.pem" 2>"$tmp/req.log" ||
	{ cat "$tmp/req.log" >&2; fail 15 "openssl could not make the CSR"; }
printf '%s\n' 'basicConstraints=critical,CA:FALSE' 'keyUsage=critical,digitalSignature' \
	'extendedKeyUsage=clientAuth' 'authorityKeyIdentifier=keyid' >"$tmp/ext.cnf"
serial=$(openssl rand -hex 16)
openssl x509 -req -in "$tmp/csr.pem" -CA "$ca" -CAkey "$cakey" -set_serial "0x$serial" -days "$days" -sha256 \
	-extfile "$tmp/ext.cnf" -out "$tmp/cert.pem" 2>"$tmp/sign.log" ||
	{ cat "$tmp/sign.log" >&2; fail 15 "openssl could not sign the certificate with $cakey"; }
openssl verify -CAfile "$ca" -purpose sslclient "$tmp/cert.pem" >"$tmp/verify.log" 2>&1 ||
	{ cat "$tmp/verify.log" >&2; fail 16 "the new certificate does not verify against $ca"; }
spki() { openssl pkey "$@" -pubout -outform DER 2>/dev/null | sha256sum | cut -d' ' -f1; }
cdig=$(openssl x509 -in "$tmp/cert.pem" -noout -pubkey | spki -pubin)
kdig=$(spki -in "$tmp/key.pem")
cat "$tmp/cert.pem" "$tmp/key.pem" >"$tmp/new.pem"
chmod 600 "$tmp/new.pem"
ndig=$(spki -in "$tmp/new.pem")
if [ "$cdig" = "$empty" ] || [ "$cdig" != "$kdig" ] || [ "$ndig" != "$kdig" ]; then
	fail 16 "the new certificate's public key does not match its private key"
fi

# 2. Backup. The file "new" is written last: restoring from a backup
# without it would not know what the switch replaced.
mkdir -p -- "$(dirname -- "$b")"
mkdir -- "$b" || fail 17 "backup directory $b already exists"
phase=1
cp -p -- "$conf" "$b/kubelet.conf"
target=$new
if [ -L "$cur" ]; then
	old=$(readlink -- "$cur")
	printf '%s\n' "$old" >"$b/kubelet-client-current.link"
	case $old in
	/*) ;;
	*) target=${new##*/} ;; # keep a relative link relative
	esac
elif [ -e "$cur" ]; then
	cp -p -- "$cur" "$b/kubelet-client-current.pem"
fi
printf '%s\n' "$kp" >"$b/kubelet_pki"
printf '%s\n' "$conf" >"$b/kubelet_conf"
printf '%s' "$restore_sh" >"$b/restore.sh"
chmod 700 "$b/restore.sh"
printf '%s\n' "$new" >"$b/new"

# 3. The switch.
phase=2
mv -- "$tmp/new.pem" "$new"
ln -s -- "$target" "$tmp/current"
mv -T -- "$tmp/current" "$cur"
if [ "$writeconf" = 1 ]; then
	ctmp=$(dirname -- "$conf")/.$(basename -- "$conf").kplay-new.$$
	cp -p -- "$conf" "$ctmp"
	cat -- "$tmp/kubelet.conf" >"$ctmp"
	mv -f -- "$ctmp" "$conf"
	ctmp=
fi
phase=3

printf '%s new %s\n' "$m" "$new"
printf '%s target %s\n' "$m" "$target"
printf '%s backup %s\n' "$m" "$b"
printf '%s digests %s %s\n' "$m" "$cdig" "$kdig"
printf '%s cert\n' "$m"
cat -- "$tmp/cert.pem"
