#!/bin/sh
# make-initramfs.sh OUT - builds a tiny gzip'd cpio (newc) initramfs at OUT.
#
# Contents: /bin/busybox from busybox-static (BUSYBOX=path overrides), one
# symlink per applet in /bin and /sbin, the mount points /proc /sys /dev,
# a /dev/console node, and an /init that mounts proc, sysfs and devtmpfs,
# prints "simuboost-initramfs: hello" on the console and powers the machine
# off with `poweroff -f`. Tests look for that line.
#
# No root needed: files are staged in a temp directory and archived with
# `cpio -H newc -R 0:0`; the /dev/console device node, which only root could
# mknod, is written as a hand-made newc record appended to the archive (the
# kernel unpacks concatenated cpio archives). Timestamps are fixed, so the
# output is reproducible for a given busybox.
#
# Needs: busybox-static, cpio, gzip.
set -eu

usage() {
	echo "usage: $0 OUT" >&2
	exit 2
}
[ $# -eq 1 ] || usage
OUT=$1
BUSYBOX=${BUSYBOX:-/bin/busybox}

[ -x "$BUSYBOX" ] || { echo "make-initramfs: $BUSYBOX not found (apt-get install busybox-static)" >&2; exit 1; }
# A dynamically linked busybox would die in the initramfs, which has no libc.
if ldd "$BUSYBOX" >/dev/null 2>&1; then
	echo "make-initramfs: $BUSYBOX is dynamically linked; install busybox-static" >&2
	exit 1
fi
command -v cpio >/dev/null || { echo "make-initramfs: cpio not found" >&2; exit 1; }

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/initramfs.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT INT TERM

mkdir -p "$STAGE/bin" "$STAGE/sbin" "$STAGE/proc" "$STAGE/sys" "$STAGE/dev" "$STAGE/tmp"
cp "$BUSYBOX" "$STAGE/bin/busybox"
chmod 755 "$STAGE/bin/busybox"
for applet in $("$BUSYBOX" --list); do
	[ "$applet" = busybox ] && continue
	ln -sf busybox "$STAGE/bin/$applet"
done
# poweroff and friends are looked up in /sbin by some callers.
for applet in poweroff reboot halt init; do
	ln -sf ../bin/busybox "$STAGE/sbin/$applet"
done

cat >"$STAGE/init" <<'EOF'
#!/bin/sh
# simuboost test initramfs: say hello, then power off.
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# The kernel opened /dev/console for us if the node exists; if not, our
# output would go nowhere, so reopen it from devtmpfs.
[ -t 1 ] || exec </dev/console >/dev/console 2>&1
echo "simuboost-initramfs: hello"
poweroff -f
EOF
chmod 755 "$STAGE/init"

# One newc record: name, mode (octal), rdev major/minor; no file data.
newc_node() {
	name=$1 mode=$2 rmaj=$3 rmin=$4 ino=$5
	namesize=$((${#name} + 1))
	printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%s\0' \
		"$ino" "$mode" 0 0 1 0 0 0 0 "$rmaj" "$rmin" "$namesize" 0 "$name"
	# header (110 bytes) + name padded to a multiple of 4
	pad=$(((4 - (110 + namesize) % 4) % 4))
	[ "$pad" -eq 0 ] || head -c "$pad" /dev/zero
}

find "$STAGE" -exec touch -h -d @0 {} +
TMPOUT="$OUT.tmp.$$"
{
	(cd "$STAGE" && find . -mindepth 1 | LC_ALL=C sort |
		cpio -o -H newc -R 0:0 --reproducible --quiet)
	newc_node dev/console $((0020600)) 5 1 999999
	newc_node TRAILER!!! 0 0 0 0
} | gzip -9 -n >"$TMPOUT"
mv "$TMPOUT" "$OUT"
echo "make-initramfs: wrote $OUT ($(wc -c <"$OUT") bytes)"
