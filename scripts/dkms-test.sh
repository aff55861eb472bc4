#!/usr/bin/env bash
# make dkms-test: checks that dkms.conf works with DKMS, the way a user
# would run it, against the project's Rust-enabled 6.12 debug kernel tree
# (scripts/build-kernel.sh debug, cached):
#
#   dkms add, dkms build (--kernelsourcedir the tree, -k its kernelrelease),
#   dkms install, then: the installed .ko's vermagic is the tree's, depmod
#   resolves every symbol it needs against the tree's System.map, dkms
#   status says installed; dkms remove, and nothing is left.
#
#   scripts/dkms-test.sh [--keep] [--guest]
#
#   --keep   keep the private DKMS trees (the path is printed)
#   --guest  also boot the debug kernel (scripts/run-guest.sh) with the
#            module DKMS installed and run tests/01-module.sh with it
#
# Installs Debian's dkms package if it is missing (as setup-host.sh does
# for the rest). Everything else stays under a private directory in /tmp,
# removed at the end: DKMS's source, build and install trees are passed as
# --sourcetree, --dkmstree and --installtree, so neither /usr/src,
# /var/lib/dkms nor /lib/modules is touched, and depmod runs on the private
# install tree (-b) instead of the host's. Any step that fails ends the test
# with "dkms-test: FAIL: ..." and exit status 1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
export PATH="$HOME/.cargo/bin:$PATH"

keep=
guest=
for a in "$@"; do
	case "$a" in
	--keep) keep=1 ;;
	--guest) guest=1 ;;
	-h|--help) sed -n '2,24p' "$0"; exit 0 ;;
	*) echo "dkms-test: unknown argument $a" >&2; exit 2 ;;
	esac
done

say() { printf '\n=== dkms-test: %s\n' "$*"; }
fail() { printf '\ndkms-test: FAIL: %s\n' "$*" >&2; exit 1; }

if ! dpkg-query -W -f='${Status}' dkms 2>/dev/null | grep -q "ok installed"; then
	say "installing Debian's dkms package"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq || fail "apt-get update"
	apt-get install -y -qq --no-install-recommends dkms > /dev/null || fail "apt-get install dkms"
fi
command -v dkms > /dev/null || fail "no dkms command after installing the package"

kdir=$("$here/build-kernel.sh" debug | tail -n 1)
[ -f "$kdir/Module.symvers" ] || fail "no built kernel tree at $kdir"
kver=$(cat "$kdir/include/config/kernel.release") || fail "no kernelrelease in $kdir"
pkg=$(sed -n 's/^PACKAGE_NAME="\(.*\)"$/\1/p' "$top/dkms.conf")
ver=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' "$top/dkms.conf")
[ -n "$pkg" ] && [ -n "$ver" ] || fail "dkms.conf has no PACKAGE_NAME or PACKAGE_VERSION"
echo "dkms-test: $(dkms --version), $pkg $ver, kernel $kver ($kdir)"

# nothing of ours in the host's DKMS places, before and after
host_state() {
	ls -d /usr/src/"$pkg"-* /var/lib/dkms/"$pkg" /lib/modules/"$kver" 2> /dev/null || true
}
before=$(host_state)

tmp=$(mktemp -d /tmp/dmrs-dkms.XXXXXX)
cleanup() {
	if [ -n "$keep" ]; then
		echo "dkms-test: kept $tmp"
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
src=$tmp/src
root=$tmp/root
inst=$root/lib/modules
mkdir -p "$src" "$tmp/dkms" "$inst/$kver"
trees=(--sourcetree "$src" --dkmstree "$tmp/dkms" --installtree "$inst")
mv_args=(-m "$pkg" -v "$ver")
k_args=(-k "$kver" --kernelsourcedir "$kdir")

# The sources as a release would ship them: what git tracks plus the working
# tree's changes, without build products (as scripts/bench.sh copies them).
say "sources to $src/$pkg-$ver"
rsync -a --exclude /build/ --exclude /host/ --exclude /.git --exclude /bench/ --exclude /docs/ \
	--exclude '*.o' --exclude '*.ko' --exclude '*.cmd' --exclude '*.mod' --exclude '*.mod.c' \
	--exclude Module.symvers --exclude modules.order --exclude bindings_generated.rs \
	"$top/" "$src/$pkg-$ver/"

say "dkms add"
dkms add "${mv_args[@]}" "${trees[@]}" || fail "dkms add"

say "dkms build -k $kver --kernelsourcedir $kdir"
t0=$SECONDS
if ! dkms build "${mv_args[@]}" "${k_args[@]}" "${trees[@]}"; then
	for log in "$tmp/dkms/$pkg/$ver/build/make.log" "$tmp/dkms/$pkg/$ver/$kver"/*/log/make.log; do
		[ -f "$log" ] && { echo "--- $log (last 60 lines)"; tail -n 60 "$log"; }
	done
	fail "dkms build"
fi
echo "dkms-test: build took $((SECONDS - t0))s"

# --no-depmod: DKMS's depmod would work on /lib/modules/$kver of the host;
# depmod runs below on the private tree instead.
say "dkms install (into $inst)"
dkms install "${mv_args[@]}" "${k_args[@]}" "${trees[@]}" --no-depmod || fail "dkms install"

# Where: DEST_MODULE_LOCATION (kernel/drivers/md) on most distributions;
# Debian's and Ubuntu's DKMS put every module under updates/dkms/ instead.
kos=$(cd "$inst/$kver" && find . -name 'dm_mirror_rs.ko*' | sed 's|^\./||')
[ -n "$kos" ] || fail "dkms install left no dm_mirror_rs.ko under $inst/$kver"
[ "$(echo "$kos" | wc -l)" = 1 ] || fail "more than one dm_mirror_rs.ko installed: $kos"
rel=$kos
ko=$inst/$kver/$rel
say "checks on $ko"
vm=$(modinfo -F vermagic "$ko") || fail "modinfo $ko"
ref_ko=$kdir/drivers/md/dm-mirror.ko
[ -f "$ref_ko" ] || ref_ko=$(find "$kdir" -name '*.ko' -print -quit)
[ -n "$ref_ko" ] || fail "no module in $kdir to compare vermagic with"
ref=$(modinfo -F vermagic "$ref_ko")
echo "vermagic: $vm"
echo "tree's  : $ref (${ref_ko#"$kdir"/})"
[ "${vm%% *}" = "$kver" ] || fail "vermagic says ${vm%% *}, the tree is $kver"
[ "$vm" = "$ref" ] || fail "vermagic differs from the tree's modules"
echo "name: $(modinfo -F name "$ko"), license: $(modinfo -F license "$ko"), depends: '$(modinfo -F depends "$ko")'"

# what /lib/modules/$kver has beside the modules (else depmod warns)
cp "$kdir/modules.builtin" "$kdir/modules.builtin.modinfo" "$inst/$kver/" || fail "no modules.builtin* in $kdir"
: > "$inst/$kver/modules.order"
depmod -b "$root" -e -F "$kdir/System.map" "$kver" 2> "$tmp/depmod.err" || {
	cat "$tmp/depmod.err" >&2
	fail "depmod -b $root $kver"
}
if grep -q . "$tmp/depmod.err"; then
	cat "$tmp/depmod.err" >&2
	fail "depmod complained (unknown symbols?)"
fi
grep -qx "$rel:" "$inst/$kver/modules.dep" || fail "modules.dep has no line '$rel:'"
echo "depmod: modules.dep has '$(grep "^$rel:" "$inst/$kver/modules.dep")', every symbol resolved"

status=$(dkms status "${mv_args[@]}" -k "$kver" "${trees[@]}")
echo "dkms status: $status"
echo "$status" | grep -q "installed" || fail "dkms status does not say installed"

if [ -n "$guest" ]; then
	say "booting the debug kernel with the DKMS-installed module (tests/01-module.sh)"
	nice -n 5 "$here/run-guest.sh" --kernel "$kdir" --module "$ko" --tests 01 ||
		fail "the guest test with the DKMS-built module"
fi

say "dkms remove"
dkms remove "${mv_args[@]}" -k "$kver" "${trees[@]}" --no-depmod || fail "dkms remove"
[ ! -e "$ko" ] || fail "dkms remove left $ko"
left=$(dkms status "${mv_args[@]}" "${trees[@]}")
[ -z "$left" ] || fail "dkms status after remove: $left"
[ ! -e "$tmp/dkms/$pkg/$ver" ] || fail "dkms remove left $tmp/dkms/$pkg/$ver"
after=$(host_state)
[ "$before" = "$after" ] || fail "the host's DKMS places changed: before '$before', after '$after'"
echo "dkms-test: removed; /usr/src, /var/lib/dkms and /lib/modules as before"

echo
echo "dkms-test: PASS (add, build, install, vermagic $kver, depmod, remove)"
