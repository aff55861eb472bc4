#!/usr/bin/env bash
# Builds the dm-mirror-rs test kernel from Debian's linux-source-6.12 with
# LLVM=1 into a cache outside the source tree. The build is reused until the
# config fragment, this script or the kernel version changes.
#
#   scripts/build-kernel.sh [debug]      prints the kernel tree path at the end
#
# Environment: DMRS_CACHE (default ~/.cache/dm-mirror-rs).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
flavour=${1:-debug}
fragment="$here/kernel-$flavour.config"
[ -f "$fragment" ] || { echo "no config fragment $fragment" >&2; exit 1; }
cache=${DMRS_CACHE:-$HOME/.cache/dm-mirror-rs}
tarball=/usr/src/linux-source-6.12.tar.xz
log() { printf '[kernel] %s\n' "$*" >&2; }

[ -f "$tarball" ] || "$here/setup-host.sh" >&2

pkgver=$(dpkg-query -W -f='${Version}' linux-source-6.12)
key=$( { echo "$pkgver"; rustc --version; cat "$fragment" "$0"; } | sha256sum | cut -c1-16)
tree="$cache/linux-$flavour"
stamp="$tree/.dmrs-stamp"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ] && [ -f "$tree/arch/x86/boot/bzImage" ]; then
	log "cached $flavour kernel $pkgver ($tree)"
	echo "$tree"
	exit 0
fi

log "building the $flavour test kernel from linux-source-6.12 $pkgver (LLVM=1); ~10-20 min on 2 cores"
rm -rf "$tree" "$tree.tmp"
mkdir -p "$tree.tmp"
tar -xJf "$tarball" -C "$tree.tmp" --strip-components=1
mv "$tree.tmp" "$tree"
cd "$tree"
make -s LLVM=1 tinyconfig >&2
./scripts/kconfig/merge_config.sh -m .config "$fragment" >/dev/null
make -s LLVM=1 olddefconfig >&2
# Every line of the fragment must have survived olddefconfig, or a
# dependency is missing and the kernel is not the one we asked for.
bad=0
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=*) want="$line" ;;
	"# CONFIG_"*" is not set") want=$line ;;
	*) continue ;;
	esac
	if ! grep -qxF "$want" .config; then
		# an unset option may also be absent from .config altogether
		opt=$(echo "$want" | sed -n 's/^# \(CONFIG_[A-Za-z0-9_]*\) is not set$/\1/p')
		if [ -z "$opt" ] || grep -q "^$opt=" .config; then
			log "config did not take: $want"
			bad=1
		fi
	fi
done < "$fragment"
[ "$bad" = 0 ] || exit 1
log "make bzImage modules (output in $tree/build.log)"
if ! make LLVM=1 -j"$(nproc)" bzImage modules > build.log 2>&1; then
	tail -50 build.log >&2
	exit 1
fi
echo "$key" > "$stamp"
log "kernel ready: $tree"
echo "$tree"
