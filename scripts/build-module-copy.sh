#!/usr/bin/env bash
# Builds dm_mirror_rs.ko against a kernel tree other than the one the top
# directory is built for, in a copy of the sources, so the objects of the
# two builds never mix (make demo and make bench build against the non-debug
# kernel while the tests use the debug one; make check builds against the
# second supported kernel).
#
#   [KERNEL=7.3] [CLIPPY=1] scripts/build-module-copy.sh KDIR DEST LOG
#
# Copies the sources (no objects, git data, host crate, results or build
# dirs) to DEST, runs the kernel's module build there, keeps its output in
# LOG (printed on failure) and prints the path of the module. KERNEL=7.3:
# with 7.3's toolchain (the env file of scripts/setup-k73.sh, LLVM=<its
# prefix>); otherwise LLVM=1 (Debian's clang, 6.12). CLIPPY=1: with clippy.
set -euo pipefail
[ $# = 3 ] || { echo "usage: $0 KDIR DEST LOG" >&2; exit 2; }
kdir=$1 dest=$2 log=$3
top=$(cd "$(dirname "$0")/.." && pwd)
llvm=1
if [ "${KERNEL:-6.12}" = 7.3 ]; then
	# shellcheck disable=SC1091
	. "${DMRS_CACHE:-$HOME/.cache/dm-mirror-rs}/k73.env"
	llvm=$KERNEL_LLVM
fi
mkdir -p "$dest"
rsync -a --delete --exclude /build/ --exclude /host/ --exclude /.git --exclude /bench/ \
	--exclude '*.o' --exclude '*.ko' --exclude '*.cmd' --exclude '*.mod' --exclude '*.mod.c' \
	--exclude Module.symvers --exclude modules.order --exclude bindings_generated.rs \
	"$top/" "$dest/"
if ! make -s -C "$kdir" M="$dest" LLVM="$llvm" ${CLIPPY:+CLIPPY=$CLIPPY} modules > "$log" 2>&1; then
	cat "$log" >&2
	echo "build-module-copy: the module build against $kdir failed" >&2
	exit 1
fi
echo "$dest/dm_mirror_rs.ko"
