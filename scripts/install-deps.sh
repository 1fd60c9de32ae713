#!/bin/sh
# Installs every build and test dependency of simuboost on Debian 12 (bookworm).
# QEMU 10.0.2 and meson >= 1.5 come from bookworm-backports.
set -eu

# --if-missing: do nothing when every package is already installed, so the
# test command stays fast on a warm machine.
PACKAGES="build-essential clang lld pkg-config ninja-build git ca-certificates xz-utils
	libconfig-dev libcmocka-dev libjansson-dev liblz4-dev libxxhash-dev libzmq3-dev libsodium-dev
	libarchive-dev libcairo2-dev libclang-rt-14-dev llvm-14 python3 python3-venv libfdt-dev libglib2.0-dev
	zstd cpio busybox-static curl bzip2 patch"
BPO_PACKAGES="meson python3-pycotap qemu-system-x86"
all_installed() {
	for p in $PACKAGES $BPO_PACKAGES; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			return 1
	done
	meson --version 2>/dev/null | grep -qE '^1\.([5-9]|[1-9][0-9])'
}
if [ "${1:-}" = "--if-missing" ] && all_installed; then
	exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

BPO=/etc/apt/sources.list.d/bookworm-backports.list
if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
	echo "deb http://deb.debian.org/debian bookworm-backports main" | $SUDO tee "$BPO" >/dev/null
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $PACKAGES
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
	-t bookworm-backports $BPO_PACKAGES
