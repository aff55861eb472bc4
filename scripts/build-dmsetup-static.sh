#!/usr/bin/env bash
# Builds a statically linked dmsetup for the test guest from the Debian
# source of the host's own dmsetup (package lvm2, same version, same Debian
# patches), cached in $DMRS_CACHE/dmsetup-static/.
#
#   scripts/build-dmsetup-static.sh      prints the path of the binary
#
# Why: in the debug guest (KASAN, lockdep, TCG) starting Debian's dynamic
# dmsetup costs ~7x a static one (it loads libdevmapper, libselinux,
# libudev, libpcre2 and libm and runs their constructors): measured 3.1 s
# against 0.44 s per `dmsetup version` in a loaded 1-vCPU guest, and the
# guest tests call dmsetup thousands of times. The guest has no udev and no
# SELinux, so the static build leaves both out (--disable-udev_sync,
# --disable-selinux); what dmsetup sends to the kernel is the same.
# Needs build-essential (scripts/setup-host.sh); the source comes from the
# Debian archive through a private sources list (the host's apt
# configuration is not touched). Takes ~2 minutes the first time.
set -euo pipefail

log() { printf '[dmsetup-static] %s\n' "$*" >&2; }
die() { printf '[dmsetup-static] error: %s\n' "$*" >&2; exit 1; }

cache=${DMRS_CACHE:-$HOME/.cache/dm-mirror-rs}
dir=$cache/dmsetup-static
out=$dir/dmsetup

src=$(dpkg-query -W -f='${source:Package} ${source:Version}' dmsetup 2>/dev/null) ||
	die "dmsetup is not installed (run scripts/setup-host.sh)"
pkg=${src% *}
ver=${src#* }
opts=(--enable-static_link --disable-selinux --disable-udev_sync --disable-udev_rules
	--disable-blkid_wiping --disable-readline --disable-systemd-journal
	--disable-app-machineid --disable-dmeventd)
key=$( { echo "$src"; echo "${opts[*]}"; cat "$0"; } | sha256sum | cut -c1-16)
if [ -x "$out" ] && [ "$(cat "$dir/stamp" 2>/dev/null)" = "$key" ]; then
	log "cached static dmsetup of $pkg $ver ($out)"
	echo "$out"
	exit 0
fi

log "building a static dmsetup from Debian's $pkg $ver"
work=$(mktemp -d "${TMPDIR:-/tmp}/dmrs-dmsetup.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/src"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
{
	echo "deb-src [signed-by=$keyring] http://deb.debian.org/debian bookworm main"
	echo "deb-src [signed-by=$keyring] http://deb.debian.org/debian bookworm-updates main"
	echo "deb-src [signed-by=$keyring] http://deb.debian.org/debian-security bookworm-security main"
} > "$work/apt/sources.list"
aopts=(-o "Dir::Etc::SourceList=$work/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
	-o APT::Sandbox::User=root -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache")
apt-get "${aopts[@]}" update -qq || die "apt-get update (deb-src) failed"
(cd "$work/src" && apt-get "${aopts[@]}" source -qq "$pkg=$ver" >/dev/null) ||
	die "apt-get source $pkg=$ver failed"
tree=$(find "$work/src" -mindepth 1 -maxdepth 1 -type d | head -n 1)
[ -n "$tree" ] && [ -f "$tree/libdm/dm-tools/dmsetup.c" ] || die "no libdm/dm-tools/dmsetup.c in $pkg's source"
(cd "$tree" && ./configure "${opts[@]}" > "$work/configure.log" 2>&1) ||
	{ tail -n 20 "$work/configure.log" >&2; die "configure failed"; }
make -C "$tree/libdm" -j"$(nproc)" > "$work/make.log" 2>&1 ||
	{ tail -n 20 "$work/make.log" >&2; die "make -C libdm failed"; }
bin=$tree/libdm/dm-tools/dmsetup.static
[ -x "$bin" ] || die "the build made no dmsetup.static"
# It must be static and the same library version as the host's dmsetup.
! ldd "$bin" >/dev/null 2>&1 || die "$bin is not static"
# (--version fails after printing it where the kernel has no device-mapper)
want=$( (dmsetup --version 2>/dev/null || true) | sed -n 's/^Library version: *//p')
got=$( ("$bin" --version 2>/dev/null || true) | sed -n 's/^Library version: *//p')
[ -n "$want" ] && [ "$got" = "$want" ] || die "library version '$got', the host's dmsetup has '$want'"
mkdir -p "$dir"
strip -o "$out.new.$$" "$bin"
mv "$out.new.$$" "$out"
echo "$key" > "$dir/stamp"
log "static dmsetup $got ($out)"
echo "$out"
