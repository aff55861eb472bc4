# The scratch disks of the tests outside the project's QEMU guests. Sourced
# by tests/lib.sh and tests/run_kselftest.sh; not a test.
#
# The tests write to /dev/vda, /dev/vdb (256 MiB or more each), /dev/vdc
# (16 MiB or more) and, for the dmraid tests, /dev/sda and /dev/sdb (32 MiB
# or more): the names of the QEMU guest's disks. Elsewhere they run only if
# DMRS_DISKS names the disks to use, which are overwritten:
#
#   DMRS_DISKS="/dev/sdx /dev/sdy /dev/sdz"                 # vda vdb vdc
#   DMRS_DISKS="/dev/sdx /dev/sdy /dev/sdz /dev/sdv /dev/sdw" # + sda sdb
#   DMRS_DISKS="vda=/dev/nvme1n1 vdb=/dev/nvme2n1 vdc=/dev/loop7"
#
# Each must be a block device that is not mounted, not in use by another
# device (no holders, no mounted partition) and big enough; the same disk
# may not be named twice. The test (or the whole suite) then runs as root
# in a private mount namespace (unshare) whose /dev is a tmpfs holding
# symlinks to every node of the real /dev, except that vda, vdb, ... are
# device nodes of the named disks (the real /dev/vda, if any, is hidden
# there). Device-mapper nodes are created in the real /dev/mapper as usual.

# dmrs_disk_list: "NAME DEV" per line from DMRS_DISKS (positional entries
# are vda, vdb, vdc, sda, sdb in that order)
dmrs_disk_list() {
	local i=0 w names="vda vdb vdc sda sdb" n
	for w in $DMRS_DISKS; do
		case "$w" in
		vd[abc]=* | sd[ab]=*) echo "${w%%=*} ${w#*=}" ;;
		*=*) echo "bad-entry $w" ;;
		*)
			i=$((i + 1))
			n=$(echo $names | cut -d' ' -f$i)
			echo "${n:-too-many} $w"
			;;
		esac
	done
}

# dmrs_check_disks: every named disk is usable; prints why not, returns 1
dmrs_check_disks() {
	local name dev min b sz real bad="" seen=""
	[ -n "${DMRS_DISKS:-}" ] || { echo "DMRS_DISKS is not set"; return 1; }
	while read -r name dev; do
		case "$name" in
		vda | vdb) min=256 ;;
		vdc) min=16 ;;
		sda | sdb) min=32 ;;
		*) echo "DMRS_DISKS: cannot use '$dev' ($name): give at most 5 disks, or NAME=DEV with NAME one of vda vdb vdc sda sdb"; bad=1; continue ;;
		esac
		if [ ! -b "$dev" ]; then
			echo "$name=$dev: not a block device"; bad=1; continue
		fi
		real=$(readlink -f "$dev")
		b=$(basename "$real")
		case " $seen " in *" $real "*) echo "$dev is named twice"; bad=1 ;; esac
		seen="$seen $real"
		if grep -q "^${real}[p0-9]* " /proc/mounts; then
			echo "$name=$dev: $real (or a partition of it) is mounted"; bad=1
		fi
		if [ -n "$(ls /sys/class/block/"$b"/holders 2>/dev/null)" ]; then
			echo "$name=$dev: in use by $(ls /sys/class/block/"$b"/holders | tr '\n' ' ')"; bad=1
		fi
		if grep -q "^${real}[p0-9]* " /proc/swaps 2>/dev/null; then
			echo "$name=$dev: used as swap"; bad=1
		fi
		sz=$(($(cat /sys/class/block/"$b"/size 2>/dev/null || echo 0) / 2048))
		if [ "$sz" -lt "$min" ]; then
			echo "$name=$dev: $sz MiB, the tests need $min MiB or more"; bad=1
		fi
	done <<EOT
$(dmrs_disk_list)
EOT
	[ -z "$bad" ]
}

# dmrs_enter_ns CMD [ARGS...]: check the disks and run CMD in the private
# mount namespace (DMRS_NS=1 there); exit 4 (skip) without DMRS_DISKS,
# 1 if the disks are not usable
dmrs_enter_ns() {
	local why
	if [ -z "${DMRS_DISKS:-}" ]; then
		echo "KTAP version 1"
		echo "1..0 # SKIP refusing to run outside the QEMU guest without DMRS_DISKS naming the scratch disks (tests/lib-disks.sh)"
		return 4
	fi
	if [ "$(id -u)" != 0 ]; then
		echo "dm-mirror-rs tests: must run as root" >&2
		return 1
	fi
	command -v unshare > /dev/null || { echo "dm-mirror-rs tests: unshare (util-linux) is needed" >&2; return 1; }
	if ! why=$(dmrs_check_disks); then
		echo "dm-mirror-rs tests: refusing DMRS_DISKS='$DMRS_DISKS':" >&2
		echo "$why" | sed 's/^/  /' >&2
		return 1
	fi
	DMRS_NS=1 unshare --mount --propagation private \
		sh "$(dirname "$0")/lib-disks.sh" --inside "$@"
}

# --inside CMD [ARGS...]: (in the new namespace) the private /dev, then CMD
if [ "${1:-}" = --inside ] && [ "${DMRS_NS:-0}" = 1 ]; then
	shift
	export DMRS_NS
	_ns=$(mktemp -d /tmp/dmrs-ns.XXXXXX) || exit 1
	mkdir "$_ns/dev"
	mount --rbind /dev "$_ns/dev" || { echo "dm-mirror-rs tests: bind mount of /dev failed" >&2; exit 1; }
	mount -t tmpfs -o mode=0755 dmrs-dev /dev || exit 1
	for _e in "$_ns"/dev/* "$_ns"/dev/.[!.]*; do
		[ -e "$_e" ] || [ -L "$_e" ] || continue
		case "${_e##*/}" in
		vd[abc] | vd[abc][0-9]* | sd[ab] | sd[ab][0-9]*) continue ;;
		esac
		ln -s "$_e" "/dev/${_e##*/}"
	done
	while read -r _n _d; do
		_mm=$(cat /sys/class/block/"$(basename "$(readlink -f "$_d")")"/dev) || exit 1
		mknod "/dev/$_n" b "${_mm%:*}" "${_mm#*:}" || exit 1
	done <<EOT
$(dmrs_disk_list)
EOT
	"$@"
	_rc=$?
	umount -l /dev
	umount -l "$_ns/dev" && rmdir "$_ns/dev" "$_ns"
	exit $_rc
fi
