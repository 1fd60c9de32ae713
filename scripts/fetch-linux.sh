#!/bin/sh
# fetch-linux.sh DIR - puts Debian's stock x86-64 kernel at DIR/vmlinuz,
# and the modules scripts/nested-kvm.sh loads (KVM, virtio block) in
# DIR/modules.
#
# Resolves the versioned package behind the linux-image-amd64 metapackage
# (its Depends: linux-image-<version>-amd64, or the -unsigned variant),
# downloads it with `apt-get download` (no root, nothing installed) and
# extracts /boot/vmlinuz-* from it. DIR/vmlinuz-version records which
# kernel it is. Idempotent: does nothing if both are there already.
#
# Needs: apt-get, apt-cache, dpkg-deb and an apt source with the package
# (run `apt-get update` once if apt-cache knows nothing about it).
# Used by tests/slow/linux-boot.sh; the vnode loader boots the bzImage by
# extracting the vmlinux on the host and entering it through PVH.
set -eu

usage() {
	echo "usage: $0 DIR" >&2
	exit 2
}
[ $# -eq 1 ] || usage
DIR=$1

if [ -s "$DIR/vmlinuz" ] && [ -d "$DIR/modules" ]; then
	echo "fetch-linux: $DIR/vmlinuz already present ($(cat "$DIR/vmlinuz-version" 2>/dev/null || echo unknown version))"
	exit 0
fi
mkdir -p "$DIR"

# linux-image-amd64 -> "linux-image-6.1.0-NN-amd64" (first Depends entry
# that is a kernel image, ignoring alternatives' extra names).
PKG=$(apt-cache depends linux-image-amd64 2>/dev/null |
	sed -n 's/^ *|\{0,1\}Depends: \(linux-image-[0-9][^ ]*\).*/\1/p' | head -n 1)
if [ -z "$PKG" ]; then
	echo "fetch-linux: cannot resolve linux-image-amd64's kernel package; run 'apt-get update'?" >&2
	exit 1
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/fetch-linux.XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM

echo "fetch-linux: downloading $PKG"
# apt-get download writes into the current directory.
# As root, apt would first try to drop to the _apt user, which cannot
# write to our private temp dir, and warn about it.
SANDBOX=""
[ "$(id -u)" -ne 0 ] || SANDBOX="-o APT::Sandbox::User=root"
# shellcheck disable=SC2086
if ! (cd "$TMP" && apt-get download -q $SANDBOX "$PKG" >/dev/null); then
	echo "fetch-linux: 'apt-get download $PKG' failed" >&2
	exit 1
fi
DEB=$(ls "$TMP"/*.deb 2>/dev/null | head -n 1)
[ -n "$DEB" ] || { echo "fetch-linux: no .deb downloaded for $PKG" >&2; exit 1; }

mkdir "$TMP/x"
dpkg-deb -x "$DEB" "$TMP/x"
KERNEL=$(ls "$TMP"/x/boot/vmlinuz-* 2>/dev/null | head -n 1)
if [ -z "$KERNEL" ]; then
	echo "fetch-linux: $DEB contains no /boot/vmlinuz-*" >&2
	exit 1
fi

# The modules, in the order they load (each after what it depends on).
rm -rf "$DIR/modules.part"
mkdir "$DIR/modules.part"
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk \
	irqbypass kvm ccp kvm-amd; do
	f=$(find "$TMP"/x/lib/modules -name "$m.ko" | head -n 1)
	[ -n "$f" ] || { echo "fetch-linux: $DEB has no $m.ko" >&2; exit 1; }
	cp "$f" "$DIR/modules.part/"
	echo "$m" >>"$DIR/modules.part/order"
done
rm -rf "$DIR/modules"
mv "$DIR/modules.part" "$DIR/modules"

# Write under a temporary name first so an interrupted run never leaves a
# partial DIR/vmlinuz that the idempotence check would then trust.
cp "$KERNEL" "$DIR/vmlinuz.part"
basename "$KERNEL" | sed 's/^vmlinuz-//' >"$DIR/vmlinuz-version"
mv "$DIR/vmlinuz.part" "$DIR/vmlinuz"
echo "fetch-linux: $DIR/vmlinuz is $(cat "$DIR/vmlinuz-version") ($(wc -c <"$DIR/vmlinuz") bytes)"
