#!/bin/sh
# Builds the simnode's QEMU: Debian's QEMU 10.0.2 source with our patch
# series (patches/, applied in order), qemu-system-x86_64 only, TCG with
# plugins. The result is cached outside the work tree, keyed by the QEMU
# version and a hash of the patches and the configure flags:
#
#   $CACHE/qemu/10.0.2-<key>/bin/qemu-system-x86_64
#   $CACHE/qemu/10.0.2-<key>/include/qemu-plugin.h
#
# CACHE is $SIMUBOOST_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/simuboost.
# Prints the install directory on stdout (the only thing printed there).
#
#   build.sh            build if not cached, print the directory
#   build.sh --print    print the directory the current patches map to
set -eu

VERSION=10.0.2
TARBALL="qemu_${VERSION}+ds.orig.tar.xz"
# The +ds tarball of bookworm-backports (same file as trixie's).
SHA256=0901da33844a331bf8b3602b9c1fbd178e60b737c8e3ade678255bd090c9b9f1
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CONFIGURE_FLAGS="--target-list=x86_64-softmmu --enable-plugins --enable-tcg
	--without-default-features --disable-docs --disable-install-blobs"

here=$(cd "$(dirname "$0")" && pwd)
cache=${SIMUBOOST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/simuboost}
key=$( (cat "$here"/patches/*.patch; echo "$CONFIGURE_FLAGS") | sha256sum | cut -c1-12)
prefix="$cache/qemu/$VERSION-$key"

if [ "${1:-}" = "--print" ]; then
	echo "$prefix"
	exit 0
fi
if [ -x "$prefix/bin/qemu-system-x86_64" ] && [ -f "$prefix/include/qemu-plugin.h" ]; then
	echo "$prefix"
	exit 0
fi

log() { echo "qemu build: $*" >&2; }

mkdir -p "$cache/qemu"
if [ ! -f "$cache/qemu/$TARBALL" ] ||
	! echo "$SHA256  $cache/qemu/$TARBALL" | sha256sum -c --status; then
	log "fetching $TARBALL from $MIRROR"
	curl -fsSL -o "$cache/qemu/$TARBALL.part" "$MIRROR/pool/main/q/qemu/$TARBALL"
	if ! echo "$SHA256  $cache/qemu/$TARBALL.part" | sha256sum -c --status; then
		echo "qemu build: $TARBALL: sha256 mismatch (expected $SHA256)" >&2
		exit 1
	fi
	mv "$cache/qemu/$TARBALL.part" "$cache/qemu/$TARBALL"
fi

work="$cache/qemu/build-$key"
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
log "unpacking into $work"
tar -C "$work" --no-same-owner -xJf "$cache/qemu/$TARBALL"
src="$work/qemu-$VERSION"
for p in "$here"/patches/*.patch; do
	log "applying $(basename "$p")"
	patch -d "$src" -p1 --quiet --forward < "$p"
done
# The +ds tarball drops the EDK2 firmware; configure wants to unpack it
# whenever bzip2 exists. The simnode boots no firmware, so empty stand-ins
# do.
for fd in $(sed -n '/fds = \[/,/\]/p' "$src/pc-bios/meson.build" | grep -o "edk2-[a-z0-9_-]*\.fd"); do
	[ -e "$src/pc-bios/$fd.bz2" ] || : | bzip2 > "$src/pc-bios/$fd.bz2"
done

mkdir -p "$work/build"
log "configuring"
# QEMU's configure must find meson in the interpreter it runs with: the
# system python3, not a pyenv or venv one earlier in PATH.
# shellcheck disable=SC2086
(cd "$work/build" && "$src/configure" --python=/usr/bin/python3 \
	--with-pkgversion="simuboost-$key" $CONFIGURE_FLAGS) > "$work/configure.log" 2>&1 || {
	tail -20 "$work/configure.log" >&2
	exit 1
}
log "compiling (about 3 minutes on 2 cores)"
ninja -C "$work/build" qemu-system-x86_64 > "$work/ninja.log" 2>&1 || {
	tail -30 "$work/ninja.log" >&2
	exit 1
}

# Install atomically: a half-built prefix must never look cached.
stage="$prefix.tmp.$$"
rm -rf "$stage"
mkdir -p "$stage/bin" "$stage/include"
strip -o "$stage/bin/qemu-system-x86_64" "$work/build/qemu-system-x86_64"
cp "$src/include/qemu/qemu-plugin.h" "$stage/include/"
rm -rf "$prefix"
mv "$stage" "$prefix"
log "installed in $prefix"
echo "$prefix"
