#!/usr/bin/env bash
# make demo: from a fresh Debian 12 machine, installs what is missing, builds
# the non-debug kernel (scripts/build-kernel.sh bench, cached; the tests keep
# the debug kernel) and dm_mirror_rs.ko against it in build/demo-module/,
# boots a QEMU guest and runs tests/demo.sh there: a 2-leg mirror over two
# virtio disks is created with dmsetup, resyncs, takes data, and both legs
# are checked identical. The guest's lines (TAP and the narration with what
# dmsetup prints) reach the terminal as they happen (run-guest.sh --live).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
cd "$top"
t0=$SECONDS
echo "=== [1/4] host packages, rust-src, bindgen"
"$here/setup-host.sh"
export PATH="$HOME/.cargo/bin:$PATH"
echo "=== [2/4] demo kernel, without debugging (built once, then cached)"
kdir=$("$here/build-kernel.sh" bench | tail -n 1)
[ -f "$kdir/arch/x86/boot/bzImage" ] || { echo "no kernel at $kdir" >&2; exit 1; }
echo "=== [3/4] dm_mirror_rs.ko against it, in build/demo-module/"
# A copy of the sources, so the objects of this build never mix with those
# of the debug build in the top directory.
mkdir -p "$top/build"
ko=$("$here/build-module-copy.sh" "$kdir" "$top/build/demo-module" "$top/build/demo-module.log")
echo "=== [4/4] guest: create a mirror, resync, write, compare legs ($((SECONDS - t0))s so far)"
rc=0
"$here/run-guest.sh" --live --kernel "$kdir" --module "$ko" --tests demo \
	--timeout 600 || rc=$?
echo "=== demo: $((SECONDS - t0))s in all"
exit $rc
