#!/usr/bin/env bash
# make demo: from a fresh Debian 12 machine, installs what is missing, builds
# the test kernel (cached) and dm_mirror_rs.ko, boots a QEMU guest and runs
# tests/demo.sh there: a 2-leg mirror over two virtio disks is created with
# dmsetup, resyncs, takes data, and both legs are checked identical.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
cd "$top"
echo "=== [1/4] host packages, rust-src, bindgen"
"$here/setup-host.sh"
export PATH="$HOME/.cargo/bin:$PATH"
echo "=== [2/4] test kernel (built once, then cached)"
kdir=$("$here/build-kernel.sh" debug)
echo "=== [3/4] dm_mirror_rs.ko"
make -s KDIR="$kdir" 2>&1 | grep -v '^make\[' || true
[ -f dm_mirror_rs.ko ] || { echo "module build failed" >&2; exit 1; }
echo "=== [4/4] guest: create a mirror, resync, write, compare legs"
"$here/run-guest.sh" --kernel "$kdir" --module "$top/dm_mirror_rs.ko" --tests demo
