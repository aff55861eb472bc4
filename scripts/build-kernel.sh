#!/usr/bin/env bash
# Builds the dm-mirror-rs test kernel from Debian's linux-source-6.12 (or,
# opt-in, linux-source-7.3) with LLVM into a cache outside the source tree.
# The build is reused until the config fragment, this script, the toolchain
# or the kernel version changes.
#
#   scripts/build-kernel.sh [debug|bench] [6.12|7.3]
#                         prints the kernel tree path at the end:
#                         linux-<flavour> for 6.12, linux-7.3-<flavour> for 7.3
#
# 6.12 uses Debian's clang 14 (LLVM=1) and ~/.cargo/bin/bindgen 0.69.5. 7.3
# uses the toolchain of scripts/setup-k73.sh (LLVM 23 wheels, bindgen 0.73.2).
# Both merge the same fragment scripts/kernel-<flavour>.config; a kernel may
# add scripts/kernel-<flavour>-<version>.config, merged after it, for options
# it renamed, and name there the options it dropped as "#dropped CONFIG_X":
# those must be absent from the tree's Kconfig files, and are not checked in
# .config.
#
# Environment: DMRS_CACHE (default ~/.cache/dm-mirror-rs).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
flavour=${1:-debug}
kver=${2:-6.12}
fragment="$here/kernel-$flavour.config"
[ -f "$fragment" ] || { echo "no config fragment $fragment" >&2; exit 1; }
override="$here/kernel-$flavour-$kver.config"
[ -f "$override" ] || override=
cache=${DMRS_CACHE:-$HOME/.cache/dm-mirror-rs}
log() { printf '[kernel] %s\n' "$*" >&2; }

case "$kver" in
6.12)
	tarball=/usr/src/linux-source-6.12.tar.xz
	[ -f "$tarball" ] || "$here/setup-host.sh" >&2
	pkgver=$(dpkg-query -W -f='${Version}' linux-source-6.12)
	llvm=1
	tree="$cache/linux-$flavour"
	tools=$(rustc --version)
	;;
7.3)
	"$here/setup-k73.sh" >/dev/null
	# shellcheck disable=SC1091
	. "$cache/k73.env"
	tarball=$KSRC_TARBALL
	pkgver=$(cat "${tarball%.tar.xz}.version")
	llvm=$KERNEL_LLVM
	tree="$cache/linux-7.3-$flavour"
	tools=$(rustc --version; bindgen --version; "${llvm}clang" --version | head -1)
	;;
*) echo "unknown kernel version $kver (6.12 or 7.3)" >&2; exit 1 ;;
esac

key=$( { echo "$pkgver"; echo "$tools"; cat "$fragment" ${override:+"$override"} "$0"; } |
	sha256sum | cut -c1-16)
stamp="$tree/.dmrs-stamp"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ] && [ -f "$tree/arch/x86/boot/bzImage" ]; then
	log "cached $flavour kernel $pkgver ($tree)"
	echo "$tree"
	exit 0
fi

log "building the $flavour test kernel from linux-source-$kver $pkgver (LLVM=$llvm); ~10-20 min on 2 cores (6.12)"
rm -rf "$tree" "$tree.tmp"
mkdir -p "$tree.tmp"
tar -xJf "$tarball" -C "$tree.tmp" --strip-components=1
mv "$tree.tmp" "$tree"
cd "$tree"
make -s LLVM="$llvm" tinyconfig >&2
./scripts/kconfig/merge_config.sh -m .config "$fragment" ${override:+"$override"} >/dev/null
make -s LLVM="$llvm" olddefconfig >&2
# Options the override says this kernel dropped: they must really be gone.
bad=0
dropped=$( [ -z "$override" ] || sed -n 's/^#dropped \(CONFIG_[A-Za-z0-9_]*\).*/\1/p' "$override")
for opt in $dropped; do
	if grep -rqx --include='Kconfig*' "[[:space:]]*\(menu\)\?config ${opt#CONFIG_}" .; then
		log "$opt is marked dropped in $override but $kver's Kconfig has it"
		bad=1
	fi
done
# Every line of the fragments must have survived olddefconfig, or a
# dependency is missing and the kernel is not the one we asked for. A line
# of the override wins over the same option in the common fragment.
while IFS=' ' read -r src line; do
	case "$line" in
	CONFIG_*=*) want="$line" ;;
	"# CONFIG_"*" is not set") want=$line ;;
	*) continue ;;
	esac
	opt=$(echo "$want" | sed -n 's/^# \(CONFIG_[A-Za-z0-9_]*\) is not set$/\1/p; s/^\(CONFIG_[A-Za-z0-9_]*\)=.*/\1/p')
	for d in $dropped; do [ "$d" != "$opt" ] || continue 2; done
	if [ -n "$override" ] && [ "$src" = common ] &&
		grep -qE "^$opt=|^# $opt is not set$" "$override"; then
		continue
	fi
	if ! grep -qxF "$want" .config; then
		# an unset option may also be absent from .config altogether
		opt=$(echo "$want" | sed -n 's/^# \(CONFIG_[A-Za-z0-9_]*\) is not set$/\1/p')
		if [ -z "$opt" ] || grep -q "^$opt=" .config; then
			log "config did not take: $want"
			bad=1
		fi
	fi
done < <(sed 's/^/common /' "$fragment"; [ -z "$override" ] || sed 's/^/override /' "$override")
[ "$bad" = 0 ] || exit 1
log "make bzImage modules (output in $tree/build.log)"
if ! make LLVM="$llvm" -j"$(nproc)" bzImage modules > build.log 2>&1; then
	tail -50 build.log >&2
	exit 1
fi
echo "$key" > "$stamp"
log "kernel ready: $tree"
echo "$tree"
