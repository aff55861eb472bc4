#!/usr/bin/env bash
# Assembles the lean initramfs the QEMU test guest boots from.
#
#   scripts/mkinitramfs.sh [--fio] [--init FILE] [--bin PATH]...
#                          [--fuzz-seed N] [--fuzz-count N]
#                          OUT.cpio.gz KERNEL_TREE [EXTRA_KO...]
#
#   --init FILE   use FILE as /init instead of scripts/guest-init.sh
#   --bin PATH    also copy the host binary PATH (and its libraries) to the
#                 same directory in the initramfs (e.g. /usr/sbin/mdadm)
#   --fuzz-seed N, --fuzz-count N   the table fuzz's cases (tests/40-tablefuzz.sh):
#                 scripts/table-fuzz.py --seed N --count N (default: seed 11,
#                 300 cases, or $DMRS_FUZZ_SEED / $DMRS_FUZZ_COUNT)
#
# Contents:
#   /init                  scripts/guest-init.sh (PID 1)
#   /tests/*.sh            the guest test scripts and tests/lib.sh
#   /tests/tablefuzz.cases the table fuzz's cases (scripts/table-fuzz.py)
#   /bin/busybox + applet symlinks in /bin
#   /usr/sbin/{dmsetup,mke2fs,mkfs.ext4,e2fsck,fsck.ext4,blockdev}
#                          (dmsetup: the static build of the host's version,
#                          scripts/build-dmsetup-static.sh, or $DMRS_DMSETUP)
#   /usr/bin/{sha256sum,cmp,dd,timeout}   (GNU; cmp -n/-i, dd *_bytes flags)
#   /usr/bin/fio           only with --fio (it pulls ~80 MB of libraries)
#   /usr/sbin/dmraid       dmraid (NVIDIA fakeRAID sets on the SATA disks)
#   /usr/sbin/lvm + pvcreate, vgcreate, lvcreate, lvs, ... symlinks, and
#   /etc/lvm/lvm.conf      for a guest without udev, dmeventd or lvmpolld
#   /sbin/dmeventd and its lvm2 mirror plugin (libdevmapper-event-lvm2mirror.so
#                          in the multiarch library directory, as on the host:
#                          a link into device-mapper/), for tests/22-dmeventd.sh
#                          (which brings its own lvm.conf, monitoring on)
#   every library ldd names for those, and the dynamic loader
#   /modules/c/*.ko        every module the kernel tree built (C dm-mirror,
#                          dm-log, dm-region-hash, dm-flakey, dm-delay, ...)
#   /modules/*.ko          EXTRA_KO (our dm_mirror_rs.ko)
#   /modules/index         "<modname> <path> <dep,dep,...>" for every module
#                          above; tests/lib.sh resolves dependencies with it
set -euo pipefail

log() { printf '[initramfs] %s\n' "$*" >&2; }
die() { printf '[initramfs] error: %s\n' "$*" >&2; exit 1; }

with_fio=0
init_script=
extra_bins=()
fuzz_seed=${DMRS_FUZZ_SEED:-11}
fuzz_count=${DMRS_FUZZ_COUNT:-300}
while [ $# -gt 0 ]; do
	case "$1" in
	--fio) with_fio=1; shift ;;
	--init) init_script=$2; shift 2 ;;
	--bin) extra_bins+=("$2"); shift 2 ;;
	--fuzz-seed) fuzz_seed=$2; shift 2 ;;
	--fuzz-count) fuzz_count=$2; shift 2 ;;
	--) shift; break ;;
	-*) die "unknown option $1" ;;
	*) break ;;
	esac
done
[ $# -ge 2 ] || die "usage: $0 [--fio] OUT.cpio.gz KERNEL_TREE [EXTRA_KO...]"
out=$1
tree=$2
shift 2
[ -d "$tree" ] || die "no kernel tree $tree"
repo=$(cd "$(dirname "$0")/.." && pwd)

stage=$(mktemp -d /tmp/dmrs-initramfs.XXXXXX)
trap 'rm -rf "$stage"' EXIT

log "staging in $stage"
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,lib,lib64,etc,proc,sys,dev,tmp,run,var/lock,root,tests,modules/c}
ln -s /proc/self/mounts "$stage/etc/mtab"

# --- busybox ---------------------------------------------------------------
bb=$(command -v busybox || true)
[ -n "$bb" ] || die "busybox not found (scripts/setup-host.sh installs busybox-static)"
! ldd "$bb" >/dev/null 2>&1 || die "$bb is not static (need busybox-static)"
cp -L "$bb" "$stage/bin/busybox"
n=0
for applet in $("$bb" --list); do
	[ "$applet" = busybox ] && continue
	[ -e "$stage/bin/$applet" ] || { ln -s busybox "$stage/bin/$applet"; n=$((n + 1)); }
done
log "busybox: $n applets"

# --- dynamic binaries + their libraries ------------------------------------
copy_libs() { # BINARY: copy what ldd names (and the loader), same paths
	local f
	for f in $(ldd "$1" 2>/dev/null | grep -o '/[^ ]*' | sort -u); do
		[ -e "$f" ] || continue
		[ -e "$stage$f" ] && continue
		mkdir -p "$stage$(dirname "$f")"
		cp -L "$f" "$stage$f"
	done
}
add_bin() { # SRC DESTDIR [ALIAS...]
	local src=$1 dir=$2 name
	shift 2
	[ -x "$src" ] || die "missing $src (run scripts/setup-host.sh)"
	name=$(basename "$src")
	cp -L "$src" "$stage$dir/$name"
	copy_libs "$src"
	for alias in "$@"; do ln -sf "$name" "$stage$dir/$alias"; done
}
# dmsetup: a static build of the host's version (scripts/build-dmsetup-static.sh:
# a call costs 1/4 to 1/7 of the dynamic one in the debug guest), else the host's.
dmsetup_bin=${DMRS_DMSETUP:-}
if [ -z "$dmsetup_bin" ]; then
	dmsetup_bin=$("$repo/scripts/build-dmsetup-static.sh") || {
		log "warning: no static dmsetup; the host's dynamic one (slower in the guest)"
		dmsetup_bin=$(command -v dmsetup)
	}
fi
[ "$(basename "$dmsetup_bin")" = dmsetup ] || die "DMRS_DMSETUP must name a file called dmsetup"
add_bin "$dmsetup_bin" /usr/sbin
log "dmsetup: $dmsetup_bin"
add_bin "$(command -v mke2fs)" /usr/sbin mkfs.ext4
add_bin "$(command -v e2fsck)" /usr/sbin fsck.ext4
add_bin "$(command -v blockdev)" /usr/sbin
for b in sha256sum cmp dd timeout; do
	add_bin "$(command -v $b)" /usr/bin
done
[ -f /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$stage/etc/"
# the real clients of the "mirror" target: dmraid and LVM2
add_bin "$(command -v dmraid || echo /usr/sbin/dmraid)" /usr/sbin
add_bin "$(command -v lvm || echo /usr/sbin/lvm)" /usr/sbin \
	pvcreate pvremove pvs pvscan pvmove pvdisplay vgcreate vgremove vgs vgchange \
	vgscan vgdisplay lvcreate lvremove lvs lvconvert lvchange lvdisplay lvextend lvscan
mkdir -p "$stage/etc/lvm"
cat > "$stage/etc/lvm/lvm.conf" <<'EOF'
# lvm2 2.03 in the dm-mirror-rs test guest: no udev, no dmeventd, no
# lvmpolld, no dbus; lvm creates the /dev nodes itself. Only the virtio disks
# hold PVs (the SATA disks carry dmraid's NVIDIA set). (tests/22-dmeventd.sh
# runs dmeventd with its own lvm.conf, LVM_SYSTEM_DIR.)
devices {
	obtain_device_list_from_udev = 0
	external_device_info_source = "none"
	use_devicesfile = 0
	hints = "none"
	multipath_component_detection = 0
	md_component_detection = 0
	global_filter = [ "a|^/dev/vd[a-z]$|", "r|.*|" ]
}
activation {
	udev_sync = 0
	udev_rules = 0
	monitoring = 0
}
global {
	use_lvmpolld = 0
	notify_dbus = 0
	event_activation = 0
}
backup {
	# backup = 0 makes every change print "WARNING: This metadata update is
	# NOT backed up", which the console check takes for a kernel warning
	backup = 1
	backup_dir = "/run/lvm/backup"
	archive = 0
}
EOF
# dmeventd (Debian package dmeventd) and the plugin that repairs lvm2
# mirrors; lvm and the test run it as /sbin/dmeventd (lvm's default
# dmeventd/executable), and it dlopen()s the plugin by its bare name from
# the loader's default path, the library directory of libdevmapper
dmeventd_bin=$(command -v dmeventd || echo /sbin/dmeventd)
add_bin "$dmeventd_bin" /sbin
libdir=$(dirname "$(ldd "$dmeventd_bin" | grep -o '/[^ ]*/libdevmapper\.so[^ ]*')")
plugin=$libdir/libdevmapper-event-lvm2mirror.so
[ -e "$plugin" ] || die "missing $plugin (run scripts/setup-host.sh: package dmeventd)"
if link=$(readlink "$plugin"); then
	# Debian: libdevmapper-event-lvm2mirror.so -> device-mapper/...
	case "$link" in /*) target=$link ;; *) target=$libdir/$link ;; esac
	mkdir -p "$stage$(dirname "$target")"
	cp -L "$plugin" "$stage$target"
	ln -s "$link" "$stage$plugin"
else
	cp "$plugin" "$stage$plugin"
fi
copy_libs "$plugin"
log "dmeventd: $plugin${link:+ -> $link}"
if [ "$with_fio" = 1 ]; then
	add_bin "$(command -v fio)" /usr/bin
	log "fio included"
fi
for b in "${extra_bins[@]}"; do
	mkdir -p "$stage$(dirname "$b")"
	add_bin "$b" "$(dirname "$b")"
	log "extra binary $b"
done
# the tests' helpers in C (tests/*.c: atomic-write), built static here
for c in "$repo"/tests/*.c; do
	[ -e "$c" ] || continue
	b=$(basename "$c" .c)
	gcc -static -O2 -Wall -Wextra -Werror -o "$stage/usr/bin/$b" "$c" || die "building $c failed"
	log "test helper /usr/bin/$b (from tests/$b.c)"
done
# the loader's default search path covers /lib/x86_64-linux-gnu; keep
# /lib64 and /usr/lib as well for the loader path ldd prints
log "binaries: $(cd "$stage" && ls usr/sbin usr/bin | grep -vc ':$' || true), libraries: $(find "$stage/lib" "$stage/lib64" "$stage/usr/lib" -type f 2>/dev/null | wc -l)"

# --- scripts ---------------------------------------------------------------
install -m 0755 "${init_script:-$repo/scripts/guest-init.sh}" "$stage/init"
for t in "$repo"/tests/*.sh; do
	[ -e "$t" ] || continue
	install -m 0755 "$t" "$stage/tests/"
done
[ -f "$stage/tests/lib.sh" ] || die "tests/lib.sh missing"
# The table fuzz's model of C follows the guest kernel's sscanf on numbers
# of 2^64 or more: 6.12 wraps them, 7.3 saturates them (its lib/kstrtox.c
# sets ULLONG_MAX on overflow), so C no longer takes 2^64 + k as k there.
overflow=wrap
! grep -q 'res = ULLONG_MAX;' "$tree/lib/kstrtox.c" 2>/dev/null || overflow=saturate
python3 "$repo/scripts/table-fuzz.py" --seed "$fuzz_seed" --count "$fuzz_count" \
	--overflow "$overflow" -o "$stage/tests/tablefuzz.cases" || die "scripts/table-fuzz.py failed"
log "table fuzz: $fuzz_count cases, seed $fuzz_seed, numbers >= 2^64: $overflow"
log "tests: $(cd "$stage/tests" && ls | grep -v '^lib.sh$' | tr '\n' ' ')"

# --- modules ---------------------------------------------------------------
strip_cmd=$(command -v llvm-strip || command -v strip)
index="$stage/modules/index"
: > "$index"
add_module() { # KO DESTDIR
	local ko=$1 dir=$2 base name deps
	base=$(basename "$ko")
	cp "$ko" "$stage$dir/$base"
	"$strip_cmd" --strip-debug "$stage$dir/$base" 2>/dev/null || true
	name=$(modinfo -F name "$ko" 2>/dev/null || true)
	[ -n "$name" ] || name=${base%.ko}
	name=$(echo "$name" | tr - _)
	deps=$(modinfo -F depends "$ko" 2>/dev/null | tr - _ || true)
	echo "$name $dir/$base ${deps:--}" >> "$index"
}
nc=0
while IFS= read -r ko; do
	add_module "$ko" /modules/c
	nc=$((nc + 1))
done < <(find "$tree" -name '*.ko' -not -path '*/.tmp*' | sort)
log "C modules from the tree: $nc ($(cd "$stage/modules/c" && ls | tr '\n' ' '))"
[ -e "$stage/modules/c/dm-mirror.ko" ] || log "warning: the tree has no dm-mirror.ko"
for ko in "$@"; do
	[ -f "$ko" ] || die "no module $ko"
	add_module "$ko" /modules
	log "module under test: /modules/$(basename "$ko")"
done

# --- pack ------------------------------------------------------------------
mkdir -p "$(dirname "$out")"
(cd "$stage" && find . -print0 | LC_ALL=C sort -z |
	cpio --null -o -H newc --quiet --owner 0:0) | gzip -1 > "$out.tmp"
mv "$out.tmp" "$out"
log "wrote $out ($(du -h "$out" | cut -f1), unpacked $(du -sh "$stage" | cut -f1))"
