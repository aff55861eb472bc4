#!/usr/bin/env bash
# Installs everything dm-mirror-rs needs on a Debian 12 host: the kernel
# source, the LLVM toolchain the kernel's Rust support wants, QEMU and the
# userspace tools copied into the test guest. Safe to run again: it only
# installs what is missing.
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '[setup] %s\n' "$*"; }

PKGS=(
	linux-source-6.12 build-essential flex bison bc libelf-dev libssl-dev
	clang lld llvm libclang-dev cpio xz-utils zstd kmod rsync
	qemu-system-x86 busybox-static dmsetup e2fsprogs fio
	mdadm pkg-config
	dmraid lvm2 dmeventd python3
)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	log "installing Debian packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
	log "Debian packages present"
fi

if ! rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
	log "installing rust-src"
	rustup component add rust-src
fi

BINDGEN_VER=0.69.5
if ! command -v bindgen >/dev/null || ! bindgen --version 2>/dev/null | grep -q "$BINDGEN_VER"; then
	log "installing bindgen-cli $BINDGEN_VER (takes a few minutes)"
	cargo install --quiet bindgen-cli --version "$BINDGEN_VER" --locked
fi
# the guest's dmsetup: a static build of the host's version (cached)
"$(dirname "$0")/build-dmsetup-static.sh" >/dev/null
log "host ready"
