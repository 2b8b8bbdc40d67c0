# shellcheck shell=sh
# renew_kubelet_client_restore.sh: defines rkc_restore, which puts back what
# the renew_kubelet_client step changed, from the backup directory it made:
#
#   rkc_restore KUBELET_PKI KUBELET_CONF BACKUP_DIR NEW_FILE
#
# kubelet.conf is copied back (content, mode, owner and times), then
# KUBELET_PKI/kubelet-client-current.pem gets its previous symlink target
# (kubelet-client-current.link), or its previous content if it was a
# regular file (kubelet-client-current.pem), or is removed if there was
# none; each by a temp file and a rename. NEW_FILE, the certificate the
# step made, is removed. kplay prepends this file to the step's issue
# script (which restores by itself when the switch fails half way) and to
# its undo; restore.sh in the backup directory holds it too.

rkc_restore() {
	rkc_kp=$1 rkc_conf=$2 rkc_b=$3 rkc_new=$4
	rkc_cur=$rkc_kp/kubelet-client-current.pem
	if [ ! -f "$rkc_b/kubelet.conf" ]; then
		echo "restore: $rkc_b/kubelet.conf is missing; nothing was restored" >&2
		return 1
	fi
	rkc_t=$(dirname -- "$rkc_conf")/.$(basename -- "$rkc_conf").kplay-restore.$$
	if ! { cp -p -- "$rkc_b/kubelet.conf" "$rkc_t" && mv -f -- "$rkc_t" "$rkc_conf"; }; then
		rm -f -- "$rkc_t"
		echo "restore: could not put back $rkc_conf from $rkc_b/kubelet.conf" >&2
		return 1
	fi
	rkc_l=$rkc_kp/.kubelet-client-current.pem.kplay-restore.$$
	rm -f -- "$rkc_l"
	if [ -f "$rkc_b/kubelet-client-current.link" ]; then
		if ! { ln -s -- "$(cat -- "$rkc_b/kubelet-client-current.link")" "$rkc_l" && mv -T -- "$rkc_l" "$rkc_cur"; }; then
			rm -f -- "$rkc_l"
			echo "restore: could not point $rkc_cur back at $(cat -- "$rkc_b/kubelet-client-current.link")" >&2
			return 1
		fi
	elif [ -f "$rkc_b/kubelet-client-current.pem" ]; then
		if ! { cp -p -- "$rkc_b/kubelet-client-current.pem" "$rkc_l" && mv -T -- "$rkc_l" "$rkc_cur"; }; then
			rm -f -- "$rkc_l"
			echo "restore: could not put back $rkc_cur from $rkc_b/kubelet-client-current.pem" >&2
			return 1
		fi
	elif ! rm -f -- "$rkc_cur"; then
		echo "restore: could not remove $rkc_cur (there was none before)" >&2
		return 1
	fi
	if [ -n "$rkc_new" ] && [ "$rkc_new" != "$rkc_cur" ] && ! rm -f -- "$rkc_new"; then
		echo "restore: could not remove $rkc_new" >&2
		return 1
	fi
	if ! cmp -s -- "$rkc_b/kubelet.conf" "$rkc_conf"; then
		echo "restore: $rkc_conf does not match $rkc_b/kubelet.conf after restoring it" >&2
		return 1
	fi
	echo "restored $rkc_conf and $rkc_cur from $rkc_b"
}
